module Callback.Tests.LanguageTests

open Expecto
open Callback.Domain

[<Tests>]
let tests =
    testList "Language" [
        test "FR in any case is French" {
            for input in [ "FR"; "fr"; "Fr"; "fR" ] do
                Expect.equal (Language.tryParse input) (Ok French) input
        }

        test "EN in any case is English" {
            for input in [ "EN"; "en"; "En" ] do
                Expect.equal (Language.tryParse input) (Ok English) input
        }

        test "anything else is refused with a sentence naming the choices" {
            for input in [ ""; "de"; " fr"; "fr "; " en"; "EN\r\n"; "FRA"; "english"; "f"; null ] do
                match Language.tryParse input with
                | Ok lang -> failtest $"%A{input} was taken for %A{lang}"
                | Error message -> Expect.equal message "Choose FR or EN." $"%A{input}"
        }

        test "the code is the lower-case one used in dialplan contexts" {
            Expect.equal (Language.code French) "fr" "French"
            Expect.equal (Language.code English) "en" "English"
        }

        test "a parsed language's code reads back as the same language" {
            for lang in [ French; English ] do
                Expect.equal (Language.tryParse (Language.code lang)) (Ok lang) $"%A{lang}"
        }
    ]
