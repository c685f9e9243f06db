/// `GET /calls/{callId}` and `GET /calls/{callId}/events` on the real app: calls are created and moved in
/// its store (and published on its feed) by the test, as the monitor does.
module Callback.Tests.CallsEndpointsTests

open System
open System.IO
open System.Net
open System.Net.Http
open System.Text.Json
open System.Threading
open Expecto
open Microsoft.Extensions.DependencyInjection
open Callback.Calls
open Callback.Domain
open Callback.Http
open Callback.Tests.FakeAmi
open Callback.Tests.Loopback
open Callback.Tests.TestSidecar

let private cancel = CancellationToken.None

let private t0 = DateTimeOffset(2026, 12, 1, 12, 0, 0, 250, TimeSpan.Zero)

let private monitor = [ "Monitor:Username", "callback-monitor"; "Monitor:Secret", "monitor-s3cret" ]

/// A sidecar whose AMI is nowhere (status reads send nothing to Asterisk), with a monitor configured or
/// not, and these stream options.
let private sidecarWith (monitored: bool) (options: CallStreamOptions) =
    new Sidecar(
        fakeAmiConfig (if monitored then monitor else []) (freePort ()),
        fun services -> services.AddSingleton<CallStreamOptions> options |> ignore
    )

let private quick = {
    CallStreamOptions.defaults with
        Heartbeat = TimeSpan.FromMilliseconds 200.0
}

let private storeOf (sidecar: Sidecar) =
    sidecar.App.Services.GetRequiredService<ICallStore>()

/// A new call in the sidecar's store, `queued` at t0.
let private created (sidecar: Sidecar) =
    let call: NewCall = {
        CallId = CallId.create ()
        Attempt = Attempt.first
        Language = French
        MaskedNumber = "1514*****34"
        CreatedAt = t0
    }

    Expect.isTrue ((storeOf sidecar).Create(call, cancel).Result) "created"
    call.CallId

/// Moves the call from `from` to `status` at t0 + `seconds`, then publishes it as stored, as the monitor does.
let private move (sidecar: Sidecar) (callId: CallId) (from: State) (status: CallStatus) (seconds: float) =
    let at = t0.AddSeconds seconds

    let expected: Expected = {
        Attempt = Attempt.first
        State = from
    }

    let change: Change = {
        Attempt = Attempt.first
        Status = status
        Transitions = [
            {
                State = Store.stateOf status
                At = at
            }
        ]
        At = at
    }

    let store = storeOf sidecar
    Expect.equal (store.Save(callId, expected, change, cancel).Result) Saved "saved"
    let stored = Expect.wantSome (store.Find(callId, cancel).Result) "found"
    sidecar.App.Services.GetRequiredService<CallFeed>().Publish stored

let private busy = {
    Code = 17
    Text = "User busy"
    SipCode = Some 486
}

/// A call moved through `statuses` (each from the one before), one second apart.
let private through (sidecar: Sidecar) (statuses: CallStatus list) =
    let callId = created sidecar

    statuses
    |> List.fold
        (fun (from, seconds) status ->
            move sidecar callId from status seconds
            Store.stateOf status, seconds + 1.0)
        (State.Queued, 1.0)
    |> ignore

    callId

let private completed =
    Ended(
        Completed(TimeSpan.FromMilliseconds 8250.0),
        Some {
            Code = 16
            Text = "Normal Clearing"
            SipCode = None
        }
    )

let private toCompleted = [ Live Ringing; Live Answered; Live Connecting; Live Bridged; completed ]

let private get (sidecar: Sidecar) (path: string) =
    let response = sidecar.Client.GetAsync(path).Result
    response, response.Content.ReadAsStringAsync().Result

let private getCall (sidecar: Sidecar) (callId: CallId) =
    let response, body = get sidecar $"/calls/{CallId.value callId}"
    Expect.equal response.StatusCode HttpStatusCode.OK $"200: {body}"
    Expect.equal (string response.Headers.CacheControl) "no-store" "never cached"
    JsonDocument.Parse(body).RootElement

let private text (e: JsonElement) (name: string) = e.GetProperty(name).GetString()

let private isNull' (e: JsonElement) (name: string) =
    e.GetProperty(name).ValueKind = JsonValueKind.Null

let private historyStates (e: JsonElement) = [ for t in e.GetProperty("history").EnumerateArray() -> text t "state" ]

let private statusTests =
    testList "GET /calls/{callId}" [
        // Catches a POST answer without statusUrl, or one that points elsewhere than the call's status.
        test "POST /callback answers statusUrl /calls/{callId} beside its callId" {
            use server = new Server(script asterisk, Some pki.Value.Server)
            use sidecar = new Sidecar(fakeAmiConfig [] server.Port)

            let status, body =
                sidecar.Post(form [ "phoneNumber", TestNumbers.Allowed; "language", "en" ])

            Expect.equal (int status) 200 "spooled"
            let root = JsonDocument.Parse(body).RootElement
            Expect.equal (text root "statusUrl") $"""/calls/{text root "callId"}""" "statusUrl"
        }

        // Catches a call not recorded before its answer (the statusUrl would 404), or recorded unmasked.
        test "a spooled callback's statusUrl answers it at once: queued, masked, tracking false without a monitor" {
            use server = new Server(script asterisk, Some pki.Value.Server)
            use sidecar = new Sidecar(fakeAmiConfig [] server.Port)

            let _, body =
                sidecar.Post(form [ "phoneNumber", TestNumbers.Allowed; "language", "fr" ])

            let posted = JsonDocument.Parse(body).RootElement
            let response, status = get sidecar (text posted "statusUrl")
            Expect.equal response.StatusCode HttpStatusCode.OK $"200: {status}"
            let root = JsonDocument.Parse(status).RootElement
            Expect.equal (text root "callId") (text posted "callId") "the same call"
            Expect.equal (text root "state") "queued" "queued"
            Expect.isTrue (isNull' root "outcome") "no outcome"
            Expect.equal (text root "language") "fr" "its language"
            Expect.equal (text root "number") "1514*****34" "masked, as in the log"
            Expect.isFalse (root.GetProperty("tracking").GetBoolean()) "no monitor"
        }

        // Catches a wrong field name, a time not in UTC ISO 8601, an unmasked number or a missing null.
        test "a queued call answers its fields, times in UTC ISO 8601 and tracking false without a monitor" {
            use sidecar = sidecarWith false quick
            let callId = created sidecar
            let root = getCall sidecar callId
            Expect.equal (text root "callId") (CallId.value callId) "callId"
            Expect.equal (root.GetProperty("attempt").GetInt32()) 1 "attempt"
            Expect.equal (text root "state") "queued" "state"
            Expect.isTrue (isNull' root "outcome") "no outcome yet"
            Expect.equal (text root "language") "fr" "language"
            Expect.equal (text root "number") "1514*****34" "masked"
            Expect.equal (text root "createdAt") "2026-12-01T12:00:00.250Z" "createdAt"
            Expect.equal (text root "updatedAt") "2026-12-01T12:00:00.250Z" "updatedAt"
            Expect.equal (historyStates root) [ "queued" ] "history"
            Expect.equal (text (root.GetProperty("history").[0]) "at") "2026-12-01T12:00:00.250Z" "at"

            for field in [ "hangupCause"; "sipCode"; "talkSeconds" ] do
                Expect.isTrue (isNull' root field) $"{field} null"

            Expect.isFalse (root.GetProperty("tracking").GetBoolean()) "tracking false"
        }

        // Catches `tracking` written as a constant.
        test "with a monitor configured, tracking is true" {
            use sidecar = sidecarWith true quick
            let root = getCall sidecar (created sidecar)
            Expect.isTrue (root.GetProperty("tracking").GetBoolean()) "tracking"
        }

        // Catches talk seconds dropped or in the wrong unit, or an outcome named otherwise than the contract.
        test "a completed call answers ended, completed, its talk seconds, its cause and the whole history" {
            use sidecar = sidecarWith true quick
            let root = getCall sidecar (through sidecar toCompleted)
            Expect.equal (text root "state") "ended" "state"
            Expect.equal (text root "outcome") "completed" "outcome"
            Expect.equal (root.GetProperty("talkSeconds").GetDouble()) 8.25 "talk seconds"
            Expect.equal (root.GetProperty("hangupCause").GetProperty("code").GetInt32()) 16 "cause code"
            Expect.equal (text (root.GetProperty "hangupCause") "text") "Normal Clearing" "cause text"
            Expect.isTrue (isNull' root "sipCode") "no SIP code given"
            Expect.equal (text root "updatedAt") "2026-12-01T12:00:05.250Z" "updatedAt: the last move"

            Expect.equal
                (historyStates root)
                [ "queued"; "ringing"; "answered"; "connecting"; "bridged"; "ended" ]
                "history"
        }

        // Catches a cause or SIP code left out of a failed call, or talk seconds given to one.
        test "a busy call answers failed, busy, its hangup cause and its SIP code, and no talk seconds" {
            use sidecar = sidecarWith true quick

            let root =
                getCall sidecar (through sidecar [ Live Ringing; Failed(FailedOutcome.Busy, Some busy) ])

            Expect.equal (text root "state") "failed" "state"
            Expect.equal (text root "outcome") "busy" "outcome"
            Expect.equal (root.GetProperty("hangupCause").GetProperty("code").GetInt32()) 17 "cause code"
            Expect.equal (text (root.GetProperty "hangupCause") "text") "User busy" "cause text"
            Expect.equal (root.GetProperty("sipCode").GetInt32()) 486 "SIP code"
            Expect.isTrue (isNull' root "talkSeconds") "no talk"
        }

        // Catches a lost call given an invented cause, or named otherwise than `lost`.
        test "a lost call answers failed, lost, without a cause or SIP code" {
            use sidecar = sidecarWith true quick

            let root =
                getCall sidecar (through sidecar [ Live Ringing; Failed(FailedOutcome.Lost, None) ])

            Expect.equal (text root "outcome") "lost" "outcome"
            Expect.isTrue (isNull' root "hangupCause") "no cause"
            Expect.isTrue (isNull' root "sipCode") "no SIP code"
        }

        // Catches a spelling of an outcome that is not the issue's.
        test "every outcome is named as the contract spells it" {
            let names = [
                for status in
                    [
                        Ended(Completed TimeSpan.Zero, None)
                        Ended(VisitorHungUp, None)
                        Ended(OwnerBusy, None)
                        Ended(OwnerNoAnswer, None)
                        Failed(FailedOutcome.Busy, None)
                        Failed(NoAnswer, None)
                        Failed(Rejected, None)
                        Failed(Unreachable, None)
                        Failed(Congestion, None)
                        Failed(FailedOutcome.Error, None)
                        Failed(FailedOutcome.Lost, None)
                    ] -> Names.outcome status |> Option.get
            ]

            Expect.equal
                names
                [
                    "completed"
                    "visitor-hung-up"
                    "owner-busy"
                    "owner-no-answer"
                    "busy"
                    "no-answer"
                    "rejected"
                    "unreachable"
                    "congestion"
                    "error"
                    "lost"
                ]
                "names"
        }

        // Catches a 404 outside the contract, a cached 404, or a path echoed back.
        test "an unknown call id and a path that is no call id both answer 404 in the contract, not cached" {
            use sidecar = sidecarWith false quick

            for path in
                [
                    $"/calls/{CallId.value (CallId.create ())}"
                    "/calls/not-a-call-id"
                    "/calls/0123456789ABCDEF0123456789ABCDEF"
                ] do
                let response, body = get sidecar path
                Expect.equal response.StatusCode HttpStatusCode.NotFound $"{path}: 404"
                HttpContractTests.expectContract body
                Expect.equal (errorFields body) [ "callId" ] "the id is named"
                Expect.equal (string response.Headers.CacheControl) "no-store" "not cached"
                Expect.isFalse (body.Contains "not-a-call-id") "path not echoed"
        }
    ]

/// What an event stream sent: a frame (its event name, id and data), a comment, or its end.
type private Sent =
    | Frame of name: string * id: int64 * data: JsonElement
    | Comment of string
    | End

/// Reads one thing at a time from an open event stream, failing a test that waits longer than `within`.
type private EventReader(response: HttpResponseMessage) =
    let reader = new StreamReader(response.Content.ReadAsStream())

    let line (within: TimeSpan) =
        let read: Threading.Tasks.Task<string> = reader.ReadLineAsync()

        if not (read.Wait within) then
            failtestf "nothing on the stream within %O" within

        read.Result

    member _.Response = response

    /// The next frame, comment or the end, within 3 s (or `within`).
    member _.Next(?within: TimeSpan) =
        let within = defaultArg within (TimeSpan.FromSeconds 3.0)
        let fields = ResizeArray<string>()
        let mutable finished = false
        let mutable ended = false

        while not finished do
            match line within with
            | null ->
                ended <- true
                finished <- true
            | "" -> finished <- fields.Count > 0
            | text -> fields.Add text

        let field (name: string) =
            fields
            |> Seq.tryFind (fun f -> f.StartsWith(name + ": "))
            |> Option.map (fun f -> f.Substring(name.Length + 2))

        match List.ofSeq fields with
        | [] when ended -> End
        | [ comment ] when comment.StartsWith ":" -> Comment(comment.Substring(1).Trim())
        | _ ->
            match field "event", field "id", field "data" with
            | Some name, Some id, Some data -> Frame(name, int64 id, JsonDocument.Parse(data).RootElement)
            | _ -> failtestf "not a frame: %A" (List.ofSeq fields)

    interface IDisposable with
        member _.Dispose() =
            reader.Dispose()
            response.Dispose()

/// Opens the call's event stream, with `Last-Event-ID` when given.
let private events (sidecar: Sidecar) (callId: CallId) (lastEventId: string option) =
    let request =
        new HttpRequestMessage(HttpMethod.Get, $"/calls/{CallId.value callId}/events")

    lastEventId |> Option.iter (fun id -> request.Headers.Add("Last-Event-ID", id))

    let response =
        sidecar.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).Result

    Expect.equal response.StatusCode HttpStatusCode.OK "200"
    Expect.equal response.Content.Headers.ContentType.MediaType "text/event-stream" "an event stream"
    Expect.equal (string response.Headers.CacheControl) "no-store" "never cached"
    new EventReader(response)

/// The next thing sent must be the frame `id` of state `state`; answers its data.
let private expectFrame (stream: EventReader) (id: int64) (state: string) =
    match stream.Next() with
    | Frame(name, sent, data) ->
        Expect.equal name "state" "event: state"
        Expect.equal sent id "its sequence"
        Expect.equal (text data "state") state $"frame {id}'s state"
        data
    | other -> failtestf "expected frame %d (%s), got %A" id state other

let private expectEnd (stream: EventReader) =
    Expect.equal (stream.Next()) End "the stream ends"

let private eventTests =
    testList "GET /calls/{callId}/events" [
        // Catches a stream that starts at the next transition, or frames whose data is the call as it is now.
        test "the history so far is sent first, each frame the call as of its transition" {
            use sidecar = sidecarWith true quick
            let callId = through sidecar [ Live Ringing; Live Answered ]
            use stream = events sidecar callId None
            let first = expectFrame stream 1L "queued"
            Expect.equal (historyStates first) [ "queued" ] "the history up to it"
            Expect.equal (text first "updatedAt") "2026-12-01T12:00:00.250Z" "as of the transition"
            let second = expectFrame stream 2L "ringing"
            Expect.equal (historyStates second) [ "queued"; "ringing" ] "the history up to it"
            expectFrame stream 3L "answered" |> ignore
        }

        // Catches a stream that sends only the history, that resends it, or that stays open after the end.
        test "each new transition follows as it is saved, and the stream ends right after the final state" {
            use sidecar = sidecarWith true quick
            let callId = created sidecar
            use stream = events sidecar callId None
            expectFrame stream 1L "queued" |> ignore
            move sidecar callId State.Queued (Live Ringing) 1.0
            expectFrame stream 2L "ringing" |> ignore
            move sidecar callId State.Ringing (Failed(FailedOutcome.Busy, Some busy)) 2.0
            let final = expectFrame stream 3L "failed"
            Expect.equal (text final "outcome") "busy" "the outcome on the final frame"
            Expect.equal (final.GetProperty("sipCode").GetInt32()) 486 "and its SIP code"
            expectEnd stream
        }

        // Catches outcome, cause or talk time on a frame before the final one (the call's current status).
        test "only the final frame carries the outcome, the cause and the talk seconds" {
            use sidecar = sidecarWith true quick
            use stream = events sidecar (through sidecar toCompleted) None

            for id, state in List.indexed [ "queued"; "ringing"; "answered"; "connecting"; "bridged" ] do
                let data = expectFrame stream (int64 id + 1L) state

                for field in [ "outcome"; "hangupCause"; "talkSeconds" ] do
                    Expect.isTrue (isNull' data field) $"no {field} while {state}"

            let final = expectFrame stream 6L "ended"
            Expect.equal (text final "outcome") "completed" "outcome"
            Expect.equal (final.GetProperty("talkSeconds").GetDouble()) 8.25 "talk seconds"
            expectEnd stream
        }

        // Catches a stream that trusts each snapshot instead of the sequences: it would resend transitions
        // (a snapshot twice, an older one late) or lose the ones of a snapshot the feed dropped.
        test "snapshots twice, late or missing still give every transition once, in order" {
            use sidecar = sidecarWith true quick
            let callId = created sidecar
            use stream = events sidecar callId None
            expectFrame stream 1L "queued" |> ignore
            let store = storeOf sidecar
            let feed = sidecar.App.Services.GetRequiredService<CallFeed>()

            let snapshot () =
                (store.Find(callId, cancel).Result).Value

            move sidecar callId State.Queued (Live Ringing) 1.0
            let ringing = snapshot ()
            feed.Publish ringing
            // Saved without being published: as if the feed had dropped its snapshot.
            let at = t0.AddSeconds 2.0

            store
                .Save(
                    callId,
                    {
                        Attempt = Attempt.first
                        State = State.Ringing
                    },
                    {
                        Attempt = Attempt.first
                        Status = Live Answered
                        Transitions = [ { State = State.Answered; At = at } ]
                        At = at
                    },
                    cancel
                )
                .Result
            |> ignore

            // An older snapshot after a newer save, and twice.
            feed.Publish ringing
            move sidecar callId State.Answered (Ended(VisitorHungUp, None)) 3.0

            let ids = [
                for _ in 1..3 do
                    match stream.Next() with
                    | Frame(_, id, data) -> id, text data "state"
                    | other -> failtestf "expected a frame, got %A" other
            ]

            Expect.equal ids [ 2L, "ringing"; 3L, "answered"; 4L, "ended" ] "each once, in order"
            expectEnd stream
        }

        // Catches Last-Event-ID ignored (the whole history again) or read off by one.
        test "with Last-Event-ID only the later transitions are sent" {
            use sidecar = sidecarWith true quick
            let callId = through sidecar [ Live Ringing; Live Answered ]
            use stream = events sidecar callId (Some "2")
            expectFrame stream 3L "answered" |> ignore
            move sidecar callId State.Answered (Ended(VisitorHungUp, None)) 4.0
            expectFrame stream 4L "ended" |> ignore
            expectEnd stream
        }

        // Catches a stream that waits for changes that can no longer come, or resends the final frame.
        test "with the final frame's id as Last-Event-ID nothing is sent and the stream ends at once" {
            use sidecar = sidecarWith true quick
            let callId = through sidecar [ Live Ringing; Failed(FailedOutcome.Lost, None) ]
            use stream = events sidecar callId (Some "3")
            expectEnd stream
        }

        // Catches a Last-Event-ID that is no sequence (or a negative one) taken as one.
        test "a Last-Event-ID that is not a positive integer is ignored: the whole history is sent" {
            use sidecar = sidecarWith false quick
            let callId = created sidecar

            for id in [ "x"; "-4"; "" ] do
                use stream = events sidecar callId (Some id)
                expectFrame stream 1L "queued" |> ignore
                expectEnd stream
        }

        // Catches a posted call whose stream finds nothing (or never ends without a monitor).
        test "a spooled callback's event stream sends its queued state, and without a monitor ends" {
            use server = new Server(script asterisk, Some pki.Value.Server)
            use sidecar = new Sidecar(fakeAmiConfig [] server.Port)

            let _, body =
                sidecar.Post(form [ "phoneNumber", TestNumbers.Allowed; "language", "en" ])

            let callId =
                text (JsonDocument.Parse(body).RootElement) "callId"
                |> CallId.tryParse
                |> Option.get

            use stream = events sidecar callId None
            expectFrame stream 1L "queued" |> ignore
            expectEnd stream
        }

        // Catches a stream that waits for a monitor that is not there (it would hang until the client leaves).
        test "without a monitor the stream sends the history and ends" {
            use sidecar = sidecarWith false quick
            use stream = events sidecar (created sidecar) None
            let data = expectFrame stream 1L "queued"
            Expect.isFalse (data.GetProperty("tracking").GetBoolean()) "tracking false"
            expectEnd stream
        }

        // Catches a quiet stream left without heartbeats (proxies and browsers would drop it).
        test "a quiet stream gets a heartbeat comment every interval, and frames still follow" {
            use sidecar = sidecarWith true quick
            let callId = created sidecar
            use stream = events sidecar callId None
            expectFrame stream 1L "queued" |> ignore
            let within = TimeSpan.FromSeconds 1.0
            Expect.equal (stream.Next within) (Comment "heartbeat") "a heartbeat after 200 ms"
            Expect.equal (stream.Next within) (Comment "heartbeat") "and another"
            move sidecar callId State.Queued (Live Ringing) 1.0

            let rec nextFrame () =
                match stream.Next() with
                | Comment _ -> nextFrame ()
                | Frame(_, id, data) -> id, text data "state"
                | End -> failtest "ended"

            Expect.equal (nextFrame ()) (2L, "ringing") "the next frame"
        }

        // Catches a stream started (200 and text/event-stream) for a call that does not exist.
        test "an unknown call id answers 404 in the contract before any stream" {
            use sidecar = sidecarWith true quick

            for path in [ $"/calls/{CallId.value (CallId.create ())}/events"; "/calls/nope/events" ] do
                let response, body = get sidecar path
                Expect.equal response.StatusCode HttpStatusCode.NotFound $"{path}: 404"
                Expect.equal response.Content.Headers.ContentType.MediaType "application/json" "no stream"
                HttpContractTests.expectContract body
        }

        // Catches unbounded streams (one client could hold every connection) or a slot never given back.
        test "streams beyond MaxPerCall answer 429 and beyond MaxOpen 503; a closed stream frees its slot" {
            use sidecar =
                sidecarWith true {
                    quick with
                        MaxPerCall = 2
                        MaxOpen = 3
                }

            let one, two = created sidecar, created sidecar
            let first = events sidecar one None
            use _second = events sidecar one None

            let status callId =
                fst (get sidecar $"/calls/{CallId.value callId}/events")

            Expect.equal (status one).StatusCode HttpStatusCode.TooManyRequests "a third on one call"
            use _third = events sidecar two None
            let refused = status two
            Expect.equal refused.StatusCode HttpStatusCode.ServiceUnavailable "a fourth in all"
            Expect.isTrue refused.Headers.RetryAfter.Delta.HasValue "Retry-After"
            (first :> IDisposable).Dispose()

            Expect.isTrue
                (Programs.eventually (TimeSpan.FromSeconds 3.0) (fun () ->
                    let response =
                        sidecar.Client
                            .GetAsync($"/calls/{CallId.value two}/events", HttpCompletionOption.ResponseHeadersRead)
                            .Result

                    let opened = response.StatusCode = HttpStatusCode.OK
                    response.Dispose()
                    opened))
                "a slot is free again once a stream is closed"
        }

        // Catches a gauge that counts requests instead of the streams open now (or never goes down).
        test "the streams open now are the callback_status_streams_open gauge in /metrics" {
            use sidecar = sidecarWith true quick
            let callId = created sidecar

            let gauge () =
                (snd (get sidecar "/metrics")).Split('\n')
                |> Array.find _.StartsWith("callback_status_streams_open ")

            Expect.equal (gauge ()) "callback_status_streams_open 0" "none yet"
            let first = events sidecar callId None
            use _second = events sidecar callId None
            Expect.equal (gauge ()) "callback_status_streams_open 2" "two open"
            (first :> IDisposable).Dispose()

            Expect.isTrue
                (Programs.eventually (TimeSpan.FromSeconds 3.0) (fun () -> gauge () = "callback_status_streams_open 1"))
                "one once the other is closed"
        }

        // Catches streams that outlive the app: the host would wait for them up to its shutdown timeout.
        test "stopping the app ends every open stream at once" {
            use sidecar =
                sidecarWith true {
                    quick with
                        Heartbeat = TimeSpan.FromSeconds 30.0
                }

            use stream = events sidecar (created sidecar) None
            expectFrame stream 1L "queued" |> ignore
            let watch = Diagnostics.Stopwatch.StartNew()
            let stopping = sidecar.App.StopAsync()
            expectEnd stream
            Expect.isTrue (stopping.Wait(TimeSpan.FromSeconds 5.0)) "the app stopped"
            Expect.isLessThan watch.Elapsed (TimeSpan.FromSeconds 3.0) "promptly"
        }
    ]

[<Tests>]
let tests = testList "Call status API" [ statusTests; eventTests ]
