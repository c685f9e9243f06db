module Callback.Tests.CallbackRequestTests

open Expecto
open Callback.Domain

let private form phone lang : UnvalidatedCallback = { PhoneNumber = phone; Language = lang }

let private fieldsOf result =
    match result with
    | Ok request -> failtest $"expected errors, got %A{request}"
    | Error errors -> errors |> List.map _.Field

[<Tests>]
let tests =
    testList "CallbackRequest" [
        test "a valid number and language make a request" {
            match CallbackRequest.validate (form (Some TestNumbers.Allowed) (Some "fr")) with
            | Ok request ->
                Expect.equal request.PhoneNumber.Digits TestNumbers.AllowedDigits "the number"
                Expect.equal request.Language French "the language"
            | Error errors -> failtest $"%A{errors}"
        }

        test "both fields wrong gives exactly two errors, one per field, in form order" {
            let result = CallbackRequest.validate (form (Some "911") (Some "de"))
            Expect.equal (fieldsOf result) [ "phoneNumber"; "language" ] "the fields"
        }

        test "each error carries the sentence for its field" {
            match CallbackRequest.validate (form (Some "514 555 O123") (Some "de")) with
            | Ok request -> failtest $"%A{request}"
            | Error errors ->
                Expect.equal
                    errors
                    [
                        {
                            Field = CallbackRequest.PhoneNumberField
                            Message = PhoneNumber.describe (InvalidCharacter 'O')
                        }
                        {
                            Field = CallbackRequest.LanguageField
                            Message = "Choose FR or EN."
                        }
                    ]
                    "the errors"
        }

        test "a missing field is an error, not a default" {
            Expect.equal
                (fieldsOf (CallbackRequest.validate (form None None)))
                [ "phoneNumber"; "language" ]
                "both missing"

            Expect.equal
                (fieldsOf (CallbackRequest.validate (form None (Some "en"))))
                [ "phoneNumber" ]
                "number missing"

            Expect.equal
                (fieldsOf (CallbackRequest.validate (form (Some TestNumbers.Allowed) None)))
                [ "language" ]
                "language missing"
        }

        test "a missing number is described as missing" {
            match CallbackRequest.validate (form None (Some "en")) with
            | Error [ error ] -> Expect.equal error.Message (PhoneNumber.describe Missing) "the sentence"
            | other -> failtest $"%A{other}"
        }

        test "one field wrong reports only that field" {
            Expect.equal
                (fieldsOf (CallbackRequest.validate (form (Some TestNumbers.Allowed) (Some "es"))))
                [ "language" ]
                "language"

            Expect.equal
                (fieldsOf (CallbackRequest.validate (form (Some "1 900 555 0123") (Some "EN"))))
                [ "phoneNumber" ]
                "number"
        }
    ]
