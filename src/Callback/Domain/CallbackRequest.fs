namespace Callback.Domain

open FsToolkit.ErrorHandling

/// The form as it arrived, before anything is trusted: each field may be absent.
type UnvalidatedCallback = {
    PhoneNumber: string option
    Language: string option
}

/// One thing wrong with one field of the form, worded for the visitor.
type FieldError = { Field: string; Message: string }

/// A callback worth placing: a number we may ring and the language to greet them in.
type CallbackRequest = {
    PhoneNumber: PhoneNumber
    Language: Language
}

[<RequireQualifiedAccess>]
module UnvalidatedCallback =

    /// The form from its two fields as a body format read them, keeping every field's error.
    let ofFields
        (phoneNumber: Result<string option, FieldError>)
        (language: Result<string option, FieldError>)
        : Validation<UnvalidatedCallback, FieldError> =
        validation {
            let! phone = phoneNumber
            and! lang = language
            return ({ PhoneNumber = phone; Language = lang }: UnvalidatedCallback)
        }

[<RequireQualifiedAccess>]
module CallbackRequest =

    [<Literal>]
    let PhoneNumberField = "phoneNumber"

    [<Literal>]
    let LanguageField = "language"

    let private phoneNumber (input: string option) =
        input
        |> Option.defaultValue null
        |> PhoneNumber.tryParse
        |> Result.mapError (fun e -> {
            Field = PhoneNumberField
            Message = PhoneNumber.describe e
        })

    let private language (input: string option) =
        input
        |> Option.defaultValue null
        |> Language.tryParse
        |> Result.mapError (fun message -> {
            Field = LanguageField
            Message = message
        })

    /// Checks both fields and reports every error at once, so the visitor fixes the form in one go.
    let validate (input: UnvalidatedCallback) : Validation<CallbackRequest, FieldError> =
        validation {
            let! number = phoneNumber input.PhoneNumber
            and! lang = language input.Language

            return {
                PhoneNumber = number
                Language = lang
            }
        }
