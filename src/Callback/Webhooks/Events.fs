namespace Callback.Webhooks

open System
open System.Buffers
open System.Text.Json
open Callback.Calls
open Callback.Domain
open Callback.Http

/// What a webhook reports: a call entered one of the states its receiver cares about.
[<RequireQualifiedAccess>]
type EventType =
    | Queued
    | Ringing
    | Answered
    /// The visitor answered and the call is over (`outcome` says how: `completed`, `owner-busy`, …).
    | Completed
    /// The visitor's phone never answered (`outcome` says why: `busy`, `no-answer`, …).
    | Failed
    /// The sidecar could not learn the call's end (`outcome` is `lost`).
    | Lost
    /// A failed attempt is followed by another one (the call is `queued` again, with the next attempt).
    | RetryScheduled

[<RequireQualifiedAccess>]
module EventType =

    /// The event's `type`, as the receiver reads it.
    let name (eventType: EventType) =
        match eventType with
        | EventType.Queued -> "call.queued"
        | EventType.Ringing -> "call.ringing"
        | EventType.Answered -> "call.answered"
        | EventType.Completed -> "call.completed"
        | EventType.Failed -> "call.failed"
        | EventType.Lost -> "call.lost"
        | EventType.RetryScheduled -> "call.retry-scheduled"

/// One event, ready for the outbox: its type, the transition it reports and the exact bytes to post.
type WebhookEvent = {
    Type: EventType
    CallId: CallId
    /// The transition's sequence in the store: the event's place in the call's history.
    Sequence: int64
    At: DateTimeOffset
    Payload: byte array
}

/// From a saved move of a call to the webhook events it causes: one per transition a receiver cares
/// about, none for `connecting` and `bridged` (steps between the visitor's answer and the end). Pure.
[<RequireQualifiedAccess>]
module Events =

    /// The event of one transition: `previous` is the call's state before it (None for the first), and
    /// `status` its status when the transition is the call's last one (a final outcome is known only
    /// then). A new transition of the call model is one line here.
    let typeOf (previous: State option) (transition: SavedTransition) (status: CallStatus option) =
        match previous, transition.Transition.State, status with
        | Some _, State.Queued, _ when Attempt.number transition.Attempt > 1 -> Some EventType.RetryScheduled
        | _, State.Queued, _ -> Some EventType.Queued
        | _, State.Ringing, _ -> Some EventType.Ringing
        | _, State.Answered, _ -> Some EventType.Answered
        | _, State.Connecting, _
        | _, State.Bridged, _ -> None
        | _, State.Ended, _ -> Some EventType.Completed
        | _, State.Failed, Some(CallStatus.Failed(FailedOutcome.Lost, _)) -> Some EventType.Lost
        | _, State.Failed, _ -> Some EventType.Failed

    /// `{type, timestamp, data}`: `timestamp` the transition's time, `data` the call as `GET /calls/{id}`
    /// answers it as of that transition (the same encoder, so the two never drift).
    let payload (tracking: bool) (eventType: EventType) (call: StoredCall) (transition: SavedTransition) =
        let buffer = ArrayBufferWriter<byte>()

        do
            use writer = new Utf8JsonWriter(buffer)

            Encode.object
                [
                    "type", Encode.string (EventType.name eventType)
                    "timestamp", CallJson.instant transition.Transition.At
                    "data", CallJson.asOf tracking call transition.Sequence
                ]
                writer

        buffer.WrittenSpan.ToArray()

    /// The events of one write of `call` (as now stored) that added the transitions `added`, oldest first.
    let ofWrite (tracking: bool) (call: StoredCall) (added: SavedTransition list) : WebhookEvent list =
        let last = List.tryLast call.History |> Option.map _.Sequence

        added
        |> List.choose (fun transition ->
            let previous =
                call.History
                |> List.takeWhile (fun t -> t.Sequence < transition.Sequence)
                |> List.tryLast
                |> Option.map _.Transition.State

            let status =
                if Some transition.Sequence = last then
                    Some call.Status
                else
                    None

            typeOf previous transition status
            |> Option.map (fun eventType -> {
                Type = eventType
                CallId = call.CallId
                Sequence = transition.Sequence
                At = transition.Transition.At
                Payload = payload tracking eventType call transition
            }))
