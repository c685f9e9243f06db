module Callback.Tests.WebhookEventsTests

open System
open System.IO
open System.Text.Json
open Expecto
open FsCheck
open FsCheck.FSharp
open Callback.Calls
open Callback.Domain
open Callback.Http
open Callback.Webhooks

let private t0 = DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero)

let private second n = Attempt.tryCreate n |> Option.get

/// A stored call whose history is `states` (each with its attempt), one second apart, and whose status is
/// `status`: what the store holds after the last of them.
let private callOf (states: (State * int) list) (status: CallStatus) : StoredCall =
    let history =
        states
        |> List.mapi (fun i (state, attempt) -> {
            Sequence = int64 (i + 1)
            Attempt = second attempt
            Transition = {
                State = state
                At = t0.AddSeconds(float i)
            }
        })

    {
        CallId = CallId.create ()
        Attempt = (List.last history).Attempt
        Language = French
        MaskedNumber = "1514*****34"
        CreatedAt = t0
        UpdatedAt = (List.last history).Transition.At
        Status = status
        History = history
        Attempts = []
        ScheduledFor = None
    }

let private completedLife = [
    State.Queued, 1
    State.Ringing, 1
    State.Answered, 1
    State.Connecting, 1
    State.Bridged, 1
    State.Ended, 1
]

let private completed =
    Ended(
        Completed(TimeSpan.FromSeconds 13.0),
        Some {
            Code = 16
            Text = "Normal Clearing"
            SipCode = None
        }
    )

/// The events of saving `call`'s history one transition per write, as the monitor often does.
let private oneByOne (call: StoredCall) =
    call.History
    |> List.mapi (fun i transition ->
        let soFar = List.truncate (i + 1) call.History

        let asThen =
            if i = call.History.Length - 1 then
                call
            else
                {
                    call with
                        History = soFar
                        Status = Live Queued
                }

        Events.ofWrite true asThen [ transition ])
    |> List.concat

let private json (bytes: byte array) = JsonDocument.Parse(bytes).RootElement

let private encode (value: JsonValue) =
    use stream = new MemoryStream()

    do
        use writer = new Utf8JsonWriter(stream)
        value writer

    stream.ToArray()

[<Tests>]
let tests =
    testList "Webhook events" [
        // Catches an event for connecting/bridged, one missing, or the wrong order.
        test "a completed call gives queued, ringing, answered and completed, in that order" {
            let call = callOf completedLife completed

            Expect.equal
                (oneByOne call |> List.map (_.Type >> EventType.name))
                [ "call.queued"; "call.ringing"; "call.answered"; "call.completed" ]
                "four events"
        }

        // Catches events lost (or doubled) when the monitor saves several transitions in one write.
        test "one write of several transitions gives one event for each, each as of its own transition" {
            let call = callOf completedLife completed
            let events = Events.ofWrite true call (List.skip 1 call.History)

            Expect.equal (events |> List.map _.Sequence) [ 2L; 3L; 6L ] "ringing, answered, ended"

            let ringing = json events[0].Payload
            Expect.equal (ringing.GetProperty("data").GetProperty("state").GetString()) "ringing" "as of ringing"
            Expect.equal (ringing.GetProperty("data").GetProperty("history").GetArrayLength()) 2 "history to it"

            Expect.equal
                (ringing.GetProperty("data").GetProperty("outcome").ValueKind)
                JsonValueKind.Null
                "no outcome yet"
        }

        // Catches a payload that is not {type, timestamp, data}, or data that differs from GET's JSON.
        test "the payload is type, timestamp and data, data being the call's JSON as GET /calls/{id} gives it" {
            let call = callOf completedLife completed
            let last = List.last call.History
            let event = Events.ofWrite true call [ last ] |> List.exactlyOne
            let root = json event.Payload

            Expect.equal
                [ for p in root.EnumerateObject() -> p.Name ]
                [ "type"; "timestamp"; "data" ]
                "three fields, in order"

            Expect.equal (root.GetProperty("type").GetString()) "call.completed" "type"
            Expect.equal (root.GetProperty("timestamp").GetString()) "2026-12-01T12:00:05.000Z" "the transition's time"

            Expect.equal
                (root.GetProperty("data").GetRawText())
                (Text.Encoding.UTF8.GetString(encode (CallJson.call true call)))
                "GET's JSON"

            Expect.equal (root.GetProperty("data").GetProperty("outcome").GetString()) "completed" "outcome"
        }

        // Catches a failure reported without its outcome, or lost reported as an ordinary failure.
        test "failed carries its outcome, and lost is its own event" {
            let failed =
                callOf [ State.Queued, 1; State.Ringing, 1; State.Failed, 1 ] (Failed(FailedOutcome.Busy, None))

            let lost =
                callOf [ State.Queued, 1; State.Failed, 1 ] (Failed(FailedOutcome.Lost, None))

            let failedEvent =
                Events.ofWrite true failed [ List.last failed.History ] |> List.exactlyOne

            let lostEvent =
                Events.ofWrite true lost [ List.last lost.History ] |> List.exactlyOne

            Expect.equal failedEvent.Type EventType.Failed "failed"

            Expect.equal
                ((json failedEvent.Payload).GetProperty("data").GetProperty("outcome").GetString())
                "busy"
                "with its outcome"

            Expect.equal lostEvent.Type EventType.Lost "lost"
        }

        // Catches the next attempt's queued reported as a new call.
        test "queued again for a later attempt is call.retry-scheduled" {
            let call =
                callOf [ State.Queued, 1; State.Ringing, 1; State.Failed, 1; State.Queued, 2 ] (Live Queued)

            Expect.equal
                (Events.ofWrite true call (List.skip 2 call.History) |> List.map _.Type)
                [ EventType.Failed; EventType.RetryScheduled ]
                "failed, then retry-scheduled"
        }

        // Catches a mapping that depends on how transitions were batched into writes.
        testProperty
            "however the writes cut the history, each reportable transition gives exactly one event"
            (fun (cuts: bool list) ->
                let call = callOf completedLife completed

                // Transition i starts a new write when `cuts` holds a true before it.
                let writeOf i =
                    cuts |> List.truncate i |> List.filter id |> List.length

                let writes =
                    call.History
                    |> List.mapi (fun i t -> writeOf i, t)
                    |> List.groupBy fst
                    |> List.map (snd >> List.map snd)

                let events =
                    writes
                    |> List.collect (fun added ->
                        let upTo = (List.last added).Sequence
                        let isLast = upTo = (List.last call.History).Sequence

                        let asThen =
                            if isLast then
                                call
                            else
                                {
                                    call with
                                        History = call.History |> List.filter (fun t -> t.Sequence <= upTo)
                                        Status = Live Queued
                                }

                        Events.ofWrite true asThen added)

                events |> List.map _.Sequence = [ 1L; 2L; 3L; 6L ])
    ]
