namespace Callback.Http

open System.Text.Json
open Callback
open Callback.Domain

/// A JSON value written straight to a `Utf8JsonWriter`: explicit encoders in the style of Thoth.Json,
/// so the wire format is spelled out here and never inferred by reflection from a domain type.
type JsonValue = Utf8JsonWriter -> unit

[<RequireQualifiedAccess>]
module Encode =
    let bool (b: bool) : JsonValue = fun w -> w.WriteBooleanValue b
    let string (s: string) : JsonValue = fun w -> w.WriteStringValue s
    let nil: JsonValue = fun w -> w.WriteNullValue()

    let option (encode: 'T -> JsonValue) (value: 'T option) : JsonValue =
        match value with
        | Some v -> encode v
        | None -> nil

    let list (items: JsonValue list) : JsonValue =
        fun w ->
            w.WriteStartArray()
            items |> List.iter (fun item -> item w)
            w.WriteEndArray()

    let object (fields: (string * JsonValue) list) : JsonValue =
        fun w ->
            w.WriteStartObject()

            for name, value in fields do
                w.WritePropertyName name
                value w

            w.WriteEndObject()

/// Reading a field of a JSON object: absent and null are "not given"; a present field of another type
/// is an error for that field.
[<RequireQualifiedAccess>]
module Decode =

    let optionalString (name: string) (o: JsonElement) : Result<string option, FieldError> =
        match o.TryGetProperty name with
        | false, _ -> Ok None
        | true, v when v.ValueKind = JsonValueKind.Null -> Ok None
        | true, v when v.ValueKind = JsonValueKind.String -> Ok(Some(v.GetString()))
        | true, _ ->
            Error {
                Field = name
                Message = "Must be a string."
            }

/// The callback endpoint's body, in and out.
[<RequireQualifiedAccess>]
module CallbackJson =

    let private stageFields (s: StageResults) = [
        "socket", Encode.bool s.Socket
        "amiLogin", Encode.bool s.AmiLogin
        "amiOrig", Encode.bool s.AmiOrig
        "amiLogoff", Encode.bool s.AmiLogoff
        "callSpooled", Encode.bool s.CallSpooled
    ]

    let fieldError (e: FieldError) =
        Encode.object [ "field", Encode.string e.Field; "message", Encode.string e.Message ]

    /// The answer to a callback that reached the pipeline: the five booleans, and `callId` when spooled.
    let outcome (o: CallbackOutcome) : JsonValue =
        Encode.object (
            stageFields o.Stages
            @ [
                match o.CallId with
                | Some id -> "callId", Encode.string id
                | None -> ()
            ]
        )

    /// The answer to a request refused before any AMI traffic: five false booleans and every error.
    let refused (errors: FieldError list) : JsonValue =
        Encode.object (
            stageFields StageResults.None
            @ [ "errors", Encode.list (List.map fieldError errors) ]
        )

    /// The form's fields from a JSON body, which must be an object.
    let decode (root: JsonElement) : Result<UnvalidatedCallback, FieldError list> =
        if root.ValueKind <> JsonValueKind.Object then
            Error [
                {
                    Field = "body"
                    Message = "The body must be a JSON object."
                }
            ]
        else
            UnvalidatedCallback.ofFields
                (Decode.optionalString CallbackRequest.PhoneNumberField root)
                (Decode.optionalString CallbackRequest.LanguageField root)
