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
                    ] -> CallJson.outcomeName status |> Option.get
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

[<Tests>]
let tests = testList "Call status API" [ statusTests ]
