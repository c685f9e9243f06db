/// The properties every parse must keep, over generated numbers, formatting and hostile text; the rules
/// one example at a time are in PhoneNumberTests.
module Callback.Tests.PhoneNumberPropertiesTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Callback.Domain

let private digitsOf (result: Result<PhoneNumber, PhoneNumberError>) = result |> Result.map _.Digits

let private isAllowed c =
    Char.IsAsciiDigit c
    || c = ' '
    || c = '-'
    || c = '.'
    || c = '('
    || c = ')'
    || c = '+'

/// Eleven ASCII digits, the first one `1`: the only shape an accepted number may have.
let private isNanpDialString (digits: string) =
    digits.Length = 11 && digits[0] = '1' && Seq.forall Char.IsAsciiDigit digits

// Area codes that are in service in the US and Canada; every exchange 200-999 but the N11 codes and 976
// is valid behind them according to libphonenumber.
let private areaCodes =
    "201 202 206 212 213 303 305 312 404 415 416 418 438 450 503 514 604 613 617 647 702 713 778 819 905".Split ' '

let private exchange =
    Gen.choose (200, 999)
    |> Gen.map string
    |> Gen.filter (fun e -> not (e[1] = '1' && e[2] = '1') && e <> "976")

/// Ten digits that make a real US or Canadian number.
let private nationalNumber =
    gen {
        let! area = Gen.elements areaCodes
        let! exchange = exchange
        let! line = Gen.choose (0, 9999)
        return $"{area}{exchange}{line:D4}"
    }

/// The same number as a visitor may write the country code in front of it.
let private withCountryCode national =
    Gen.elements [ national; "1" + national; "+1" + national ]

let private stringOf (chars: Gen<char>) (length: int) =
    Gen.sequenceToList (List.replicate length chars)
    |> Gen.map (Array.ofList >> String)

let private formatting =
    Gen.choose (0, 2)
    |> Gen.bind (stringOf (Gen.elements [ ' '; '-'; '.'; '('; ')' ]))

/// Puts up to two formatting characters before, between and after the characters of `s`; for the 12
/// characters or fewer it is given, the result stays within `MaxInputLength`.
let private sprinkle (s: string) =
    gen {
        let! runs = Gen.sequenceToList (List.replicate (s.Length + 1) formatting)
        return String.Concat(Seq.map2 (+) runs (Seq.append (Seq.map string s) [ "" ]))
    }

let private validInput = nationalNumber |> Gen.bind withCountryCode

/// Country codes other than North America's 1, of one, two and three digits.
let private foreignCountryCodes = [
    "7"
    "20"
    "27"
    "33"
    "36"
    "39"
    "44"
    "49"
    "52"
    "55"
    "61"
    "81"
    "86"
    "91"
    "353"
    "380"
    "972"
]

/// A `+`, a country code other than 1 and a subscriber number, sized so that the digits alone would be
/// 10 or 11 long: exactly the inputs that read as North American numbers if the `+` is overlooked.
let private foreignInput =
    gen {
        let! country = Gen.elements foreignCountryCodes
        let! total = Gen.elements [ 10; 11 ]
        let! rest = stringOf (Gen.elements [ '0' .. '9' ]) (total - country.Length)
        return $"+{country}{rest}"
    }

let private digitString =
    Gen.choose (0, 12) |> Gen.bind (stringOf (Gen.elements [ '0' .. '9' ]))

/// Strings that look like phone numbers: valid ones, digit strings of every length, and valid ones with
/// one character swapped for something a visitor (or an attacker) might type.
let private digitHeavy =
    let oddOne =
        // letters, a stray '+', symbols, control characters, non-ASCII digits, a no-break space, more digits
        Gen.elements (List.ofSeq "ax+#*/\t\r\n\000٥５\u00A0910")

    let withOddOne =
        gen {
            let! input = validInput
            let! at = Gen.choose (0, input.Length - 1)
            let! c = oddOne
            let! replace = Gen.elements [ true; false ]
            return input.Remove(at, (if replace then 1 else 0)).Insert(at, string c)
        }

    Gen.frequency [
        4, validInput |> Gen.bind sprinkle
        3, digitString |> Gen.bind sprinkle
        2, foreignInput |> Gen.bind sprinkle
        3, withOddOne
    ]

/// Any Unicode scalar, from ASCII to the supplementary planes, as a 1- or 2-char string.
let private anyCodePoint =
    Gen.frequency [
        3, Gen.choose (0x20, 0x7E)
        2, Gen.choose (0, 0xD7FF)
        2, Gen.choose (0xE000, 0xFFFF)
        2, Gen.choose (0x10000, 0x10FFFF)
    ]
    |> Gen.map Char.ConvertFromUtf32

let private unicodeString =
    Gen.choose (0, 45)
    |> Gen.bind (fun n -> Gen.sequenceToList (List.replicate n anyCodePoint))
    |> Gen.map String.Concat

/// A character (or surrogate pair) that has no place in a phone number, lone surrogates included.
let private foreignText =
    Gen.oneof [
        anyCodePoint |> Gen.filter (fun s -> not (s.Length = 1 && isAllowed s[0]))
        Gen.choose (0xD800, 0xDFFF) |> Gen.map (char >> string)
    ]

let private insertSomewhere (text: Gen<string>) (input: string) =
    gen {
        let! at = Gen.choose (0, input.Length)
        let! t = text
        return input.Insert(at, t)
    }

let private config = {
    FsCheckConfig.defaultConfig with
        maxTest = 500
}

[<Tests>]
let tests =
    testList "PhoneNumber properties" [
        testPropertyWithConfig config "parsing its own digits gives the same number back"
        <| Prop.forAll (Arb.fromGen (validInput |> Gen.bind sprinkle)) (fun input ->
            match PhoneNumber.tryParse input with
            | Ok p ->
                Expect.equal (PhoneNumber.tryParse p.Digits) (Ok p) "11 digits"
                Expect.equal (PhoneNumber.tryParse (p.Digits.Substring 1)) (Ok p) "10 digits"
            | Error e -> failtest $"a valid number was refused: %A{input} %A{e}")

        testPropertyWithConfig config "adding or removing spaces, dashes, dots and brackets does not change the result"
        <| Prop.forAll
            (Arb.fromGen (
                Gen.oneof [ validInput; digitString; foreignInput ]
                |> Gen.bind (fun plain -> sprinkle plain |> Gen.map (fun s -> plain, s))
            ))
            (fun (plain, sprinkled) ->
                Expect.equal
                    (digitsOf (PhoneNumber.tryParse sprinkled))
                    (digitsOf (PhoneNumber.tryParse plain))
                    $"%A{sprinkled} vs %A{plain}")

        // Catches reading "international" off the input's first character instead of the digit scan:
        // "(+36) 1 234 5678" was once rung as 1 361 234 5678 in Texas.
        testPropertyWithConfig
            config
            "a + and a country code other than 1 is never a North American number, whatever formatting comes first"
        <| Prop.forAll (Arb.fromGen (foreignInput |> Gen.bind sprinkle)) (fun input ->
            Expect.equal (digitsOf (PhoneNumber.tryParse input)) (Error NotUsOrCanada) $"%A{input}")

        testPropertyWithConfig config "formatting before the + does not change the result"
        <| Prop.forAll
            (Arb.fromGen (
                gen {
                    let! plain =
                        Gen.oneof [ foreignInput; validInput |> Gen.filter (fun s -> s.StartsWith '+') ]

                    let! before = Gen.elements [ "("; " ("; "-"; "."; " "; "( "; ")" ]
                    return plain, before + plain
                }
            ))
            (fun (plain, formatted) ->
                Expect.equal
                    (digitsOf (PhoneNumber.tryParse formatted))
                    (digitsOf (PhoneNumber.tryParse plain))
                    $"%A{formatted} vs %A{plain}")

        testPropertyWithConfig config "a generated valid number is accepted"
        <| Prop.forAll (Arb.fromGen validInput) (fun input -> Expect.isOk (PhoneNumber.tryParse input) input)

        testPropertyWithConfig config "every accepted string is 11 ASCII digits starting with 1: arbitrary strings"
        <| fun (input: string) ->
            match PhoneNumber.tryParse input with
            | Ok p -> isNanpDialString p.Digits
            | Error _ -> true

        testPropertyWithConfig config "every accepted string is 11 ASCII digits starting with 1, the input's own digits"
        <| Prop.forAll (Arb.fromGen digitHeavy) (fun input ->
            let result = PhoneNumber.tryParse input

            let holds =
                match result with
                | Ok p ->
                    // After a `+` the digits are the whole international number: nothing is added.
                    let typed = String(input.ToCharArray() |> Array.filter Char.IsAsciiDigit)
                    let international = input.Contains '+'

                    isNanpDialString p.Digits
                    && (p.Digits = typed || not international && p.Digits = "1" + typed)
                | Error _ -> true

            holds |> Prop.classify (Result.isOk result) "accepted")

        test "the digit-heavy inputs are accepted often enough for that property to mean something" {
            let samples = Gen.sample 500 digitHeavy

            let accepted =
                samples |> Array.filter (PhoneNumber.tryParse >> Result.isOk) |> Array.length

            Expect.isGreaterThan accepted 100 $"accepted {accepted} of {samples.Length}"
            Expect.isLessThan accepted 450 $"accepted {accepted} of {samples.Length}"
        }

        testPropertyWithConfig config "any input containing CR, LF or NUL is rejected"
        <| Prop.forAll
            (Arb.fromGen (
                Gen.oneof [ digitHeavy; unicodeString ]
                |> Gen.bind (insertSomewhere (Gen.elements [ "\r"; "\n"; "\000" ]))
            ))
            (fun input -> Expect.isError (PhoneNumber.tryParse input) $"%A{input}")

        testPropertyWithConfig config "CR, LF or NUL put into a valid number is a ControlCharacter"
        <| Prop.forAll
            (Arb.fromGen (
                validInput
                |> Gen.bind (insertSomewhere (Gen.elements [ "\r"; "\n"; "\000"; "\r\n" ]))
            ))
            (fun input -> Expect.equal (digitsOf (PhoneNumber.tryParse input)) (Error ControlCharacter) $"%A{input}")

        testPropertyWithConfig config "random Unicode, supplementary planes included, never throws"
        <| Prop.forAll (Arb.fromGen unicodeString) (fun input ->
            match PhoneNumber.tryParse input with
            | Ok p -> isNanpDialString p.Digits
            | Error _ -> true)

        testPropertyWithConfig config "a character other than 0-9, space, - . ( ) + never yields a value"
        <| Prop.forAll
            (Arb.fromGen (Gen.oneof [ digitHeavy; validInput ] |> Gen.bind (insertSomewhere foreignText)))
            (fun input -> Expect.isError (PhoneNumber.tryParse input) $"%A{input}")

        testPropertyWithConfig
            config
            "an arbitrary string with a character outside 0-9, space, - . ( ) + never yields a value"
        <| fun (input: string) ->
            (not (isNull input) && Seq.exists (isAllowed >> not) input)
            ==> lazy Result.isError (PhoneNumber.tryParse input)
    ]
