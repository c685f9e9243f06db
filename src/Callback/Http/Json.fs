namespace Callback.Http

open System
open System.Text.Json
open Callback
open Callback.Domain

/// A JSON value written straight to a `Utf8JsonWriter`: explicit encoders in the style of Thoth.Json,
/// so the wire format is spelled out here and never inferred by reflection from a domain type.
type JsonValue = Utf8JsonWriter -> unit

/// One field of the form as a body gave it: its value (`None` when absent), or why it could not be read.
type BoundField = Result<string option, FieldError>

/// The form's fields as a body gave them, each read or refused on its own.
type BoundForm = {
    PhoneNumber: BoundField
    Language: BoundField
    /// Optional: when the visitor wants to be called (ISO 8601 with its offset).
    CallAt: BoundField
}

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

/// Reading a field of a JSON object: absent and null are "not given"; a present field of another type,
/// or one given twice, is an error for that field.
[<RequireQualifiedAccess>]
module Decode =

    let private fieldError name message =
        Error { Field = name; Message = message }

    /// The field's one value, `None` when absent: a repeated key is refused (System.Text.Json would
    /// quietly keep the last one), exactly as a repeated form field is. Names match in any case, as
    /// form fields do (and as ASP.NET Core's web defaults read JSON), so `PhoneNumber` is the same field.
    let optionalString (name: string) (o: JsonElement) : BoundField =
        let values = [
            for p in o.EnumerateObject() do
                if String.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase) then
                    p.Value
        ]

        match values with
        | [] -> Ok None
        | [ v ] when v.ValueKind = JsonValueKind.Null -> Ok None
        | [ v ] when v.ValueKind = JsonValueKind.String -> Ok(Some(v.GetString()))
        | [ _ ] -> fieldError name "Must be a string."
        | _ -> fieldError name "Give this field once."

/// Whether every string of a parsed document is Unicode text: JSON's `\ud800` escape parses, but a
/// lone surrogate is no text, and reading it later would throw instead of answering 400.
[<RequireQualifiedAccess>]
module JsonText =

    let private readable (read: unit -> string) =
        try
            read () |> ignore
            true
        with :? System.InvalidOperationException ->
            false

    /// True when every string and property name below `e` reads as a .NET string.
    let rec isUnicode (e: JsonElement) : bool =
        match e.ValueKind with
        | JsonValueKind.String -> readable e.GetString
        | JsonValueKind.Array -> e.EnumerateArray() |> Seq.forall isUnicode
        | JsonValueKind.Object ->
            e.EnumerateObject()
            |> Seq.forall (fun p -> readable (fun () -> p.Name) && isUnicode p.Value)
        | _ -> true

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

    /// Where a call's status is read: relative, so it stays on the origin the form was posted to.
    let statusUrl (callId: string) = $"/calls/{callId}"

    /// The answer to a callback that reached the pipeline: the five booleans, and `callId` with its
    /// `statusUrl` when spooled.
    let outcome (o: CallbackOutcome) : JsonValue =
        Encode.object (
            stageFields o.Stages
            @ [
                match o.CallId with
                | Some id ->
                    "callId", Encode.string id
                    "statusUrl", Encode.string (statusUrl id)
                | None -> ()
            ]
        )

    /// The answer to a request whose number already has a call: that call's id and status URL, the five
    /// booleans its own request got, and `duplicate: true`.
    let duplicate (callId: string) (stages: StageResults) : JsonValue =
        Encode.object (
            stageFields stages
            @ [
                "callId", Encode.string callId
                "statusUrl", Encode.string (statusUrl callId)
                "duplicate", Encode.bool true
            ]
        )

    /// The answer to a request refused before any AMI traffic: five false booleans and every error.
    let refused (errors: FieldError list) : JsonValue =
        Encode.object (
            stageFields StageResults.None
            @ [ "errors", Encode.list (List.map fieldError errors) ]
        )

    /// The answer to a callback held for later (202): the five booleans false (nothing reached Asterisk
    /// yet), `queued`, when it will be placed in the hours' zone, and where to follow it.
    let scheduled (hours: OpeningHours) (call: ScheduledCall) : JsonValue =
        let id = CallId.value call.CallId

        Encode.object (
            stageFields StageResults.None
            @ [
                "queued", Encode.bool true
                "scheduledFor", Encode.string (CallAt.format hours call.ScheduledFor)
                "callId", Encode.string id
                "statusUrl", Encode.string (statusUrl id)
            ]
        )

    /// The form's fields from a JSON body, each read or refused on its own; `Error` when the body is
    /// not an object at all.
    let decode (root: JsonElement) : Result<BoundForm, FieldError list> =
        if root.ValueKind <> JsonValueKind.Object then
            Error [
                {
                    Field = "body"
                    Message = "The body must be a JSON object."
                }
            ]
        else
            Ok {
                PhoneNumber = Decode.optionalString CallbackRequest.PhoneNumberField root
                Language = Decode.optionalString CallbackRequest.LanguageField root
                CallAt = Decode.optionalString CallAt.Field root
            }

/// `GET /slots`: the bookable times of one day.
[<RequireQualifiedAccess>]
module SlotsJson =

    /// `{date, timeZone, slots}`: the local date asked for, the hours' IANA zone, and each slot's start in
    /// ISO 8601 with that zone's offset on that day (so a day across a DST change shows both offsets).
    let slots (hours: OpeningHours) (date: NodaTime.LocalDate) (starts: NodaTime.Instant list) : JsonValue =
        Encode.object [
            "date", Encode.string (NodaTime.Text.LocalDatePattern.Iso.Format date)
            "timeZone", Encode.string hours.Zone.Id
            "slots", Encode.list (starts |> List.map (CallAt.format hours >> Encode.string))
        ]
