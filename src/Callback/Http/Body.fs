namespace Callback.Http

open System
open System.Text
open System.Text.Json
open System.Text.Unicode
open Microsoft.AspNetCore.WebUtilities
open Callback.Domain

/// Why a body was refused before its fields were looked at: the status and what to tell the client.
type BodyRefusal = { Status: int; Errors: FieldError list }

/// The two body formats `POST /callback` reads.
type BodyFormat =
    | Json
    | Form

/// Reading the callback's fields from a body, pure: bytes and content type in, fields or a refusal
/// out. Only UTF-8 is read, whatever the content type says (RFC 8259 allows nothing else for JSON).
[<RequireQualifiedAccess>]
module Body =

    let private refusal status message =
        Error {
            Status = status
            Errors = [ { Field = "body"; Message = message } ]
        }

    /// The media type, lower case, without parameters; "" when there is none.
    let mediaType (contentType: string) =
        match contentType with
        | null -> ""
        | ct -> ct.Split(';').[0].Trim().ToLowerInvariant()

    /// The `charset` parameter, lower case and unquoted, if any.
    let private charset (contentType: string) =
        match contentType with
        | null -> None
        | ct ->
            ct.Split(';')
            |> Array.skip 1
            |> Array.map (fun p -> p.Split('=', 2))
            |> Array.tryFind (fun kv -> kv.Length = 2 && kv[0].Trim().ToLowerInvariant() = "charset")
            |> Option.map (fun kv -> kv[1].Trim().Trim('"').ToLowerInvariant())

    let private fromJson (body: byte[]) : Result<BoundForm, BodyRefusal> =
        let parsed =
            try
                Some(JsonDocument.Parse(ReadOnlyMemory body))
            with :? JsonException ->
                None

        match parsed with
        | None -> refusal 400 "The body is not valid JSON."
        | Some document ->
            use document = document

            if not (JsonText.isUnicode document.RootElement) then
                refusal 400 "The body holds a string that is not Unicode text (a lone surrogate escape)."
            else
                CallbackJson.decode document.RootElement
                |> Result.mapError (fun errors -> { Status = 422; Errors = errors })

    let private fromForm (body: byte[]) : Result<BoundForm, BodyRefusal> =
        let fields =
            try
                use reader = new FormReader(Encoding.UTF8.GetString body)
                Some(reader.ReadForm())
            with :? IO.InvalidDataException ->
                None

        let field name : BoundField =
            match fields.Value.TryGetValue name with
            | true, values when values.Count > 1 ->
                Error {
                    Field = name
                    Message = "Give this field once."
                }
            | true, values -> Ok(Some(values.ToString()))
            | false, _ -> Ok None

        match fields with
        | None -> refusal 400 "The body is not a valid URL-encoded form."
        | Some _ ->
            Ok {
                PhoneNumber = field CallbackRequest.PhoneNumberField
                Language = field CallbackRequest.LanguageField
                CallAt = field CallAt.Field
            }

    /// Which body format the content type names: 415 for another type, or another charset than UTF-8.
    let format (contentType: string) : Result<BodyFormat, BodyRefusal> =
        let utf8 =
            match charset contentType with
            | None
            | Some "utf-8"
            | Some "utf8" -> true
            | Some _ -> false

        match mediaType contentType with
        | "application/json" when utf8 -> Ok Json
        | "application/x-www-form-urlencoded" when utf8 -> Ok Form
        | "application/json"
        | "application/x-www-form-urlencoded" -> refusal 415 "Send the body as UTF-8 (charset=utf-8, or no charset)."
        | _ -> refusal 415 "Send application/json or application/x-www-form-urlencoded."

    /// The fields of a body: 400 when its bytes are not UTF-8 or do not parse, 422 when a JSON body is
    /// not an object.
    let read (format: BodyFormat) (body: byte[]) : Result<BoundForm, BodyRefusal> =
        if not (Utf8.IsValid(ReadOnlySpan body)) then
            refusal 400 "The body is not UTF-8 text."
        else
            match format with
            | Json -> fromJson body
            | Form -> fromForm body
