/// The pipeline and the store: every call is recorded, queued, before its Originate is sent (with or
/// without a monitor); a call the store cannot record gets no Originate; a refused Originate's call is
/// failed with `error`; one left without an answer stays queued.
module Callback.Tests.TrackingTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Microsoft.Extensions.Logging
open Callback
open Callback.Ami
open Callback.Calls
open Callback.Domain
open Callback.Tests.FakeAmi
open Callback.Tests.PipelineTests

/// A store whose disk is gone: `Create` throws.
type private BrokenStore(inner: ICallStore) =
    interface ICallStore with
        member _.Create(_, _) =
            Task.FromException<bool>(IO.IOException "disk I/O error")

        member _.Save(id, expected, change, ct) = inner.Save(id, expected, change, ct)
        member _.Find(id, ct) = inner.Find(id, ct)
        member _.ListLive ct = inner.ListLive ct
        member _.Prune(cutoff, ct) = inner.Prune(cutoff, ct)

/// The call id an Originate names in its ActionID (`<callId>-<attempt>`).
let private callOf (action: ReceivedAction) =
    fst (ChannelId.tryParse action.ActionId).Value

/// One callback through the pipeline against `answer`, recording in `store`; the outcome, the server's
/// actions and the log.
let private place (store: ICallStore) (answer: ReceivedAction -> Reply) =
    use server = new Server(script answer, Some pki.Value.Server)
    let log = new TestSidecar.CapturedLog()
    let outcomes = OutcomeCounts()

    let tracking =
        CallTracking.create store None outcomes TimeProvider.System ((log :> ILoggerProvider).CreateLogger "tracking")

    let outcome =
        (Pipeline.runTracked
            tracking
            (settingsFor server.Port (trustedTls ()))
            roomyGate
            frenchCallback
            CancellationToken.None)
            .Result

    outcome, server.Actions, log.Lines, outcomes

let private originateOf (actions: ReceivedAction list) =
    actions |> List.find (fun a -> a.Name = "Originate")

[<Tests>]
let tests =
    testList "Call tracking" [
        // Catches a call recorded after its Originate (a GET right after the answer, or the first event,
        // would find nothing) or never.
        test "the call is in the store, queued, with its masked number and language, when its Originate arrives" {
            use temp = new TestStore.TempStore()
            let mutable found = None

            let answer (a: ReceivedAction) =
                if a.Name = "Originate" then
                    found <- temp.Store.Find(callOf a, CancellationToken.None).Result

                asterisk a

            let outcome, _, _, _ = place temp.Store answer
            let stored = Expect.wantSome found "already recorded when the Originate arrived"
            Expect.equal (Some(CallId.value stored.CallId)) outcome.CallId "the call answered"
            Expect.equal stored.Status (Live Queued) "queued"
            Expect.equal stored.Language French "its language"
            Expect.equal stored.MaskedNumber (PhoneNumber.masked frenchCallback.PhoneNumber) "masked as in the log"
            Expect.equal stored.Attempt Attempt.first "attempt 1"
            Expect.equal (TestStore.states stored) [ State.Queued ] "its history"
        }

        // Catches an Originate sent without the `sent` mark (a restart would then redial it blindly) or for
        // an attempt another worker already took.
        test "durable: the attempt is marked sent before its Originate arrives, and one not claimed gets none" {
            use temp = new TestStore.TempStore()
            let requests = temp.Store :?> IRequestStore
            let mutable sentWhenOriginated = None

            let answer (a: ReceivedAction) =
                if a.Name = "Originate" && sentWhenOriginated.IsNone then
                    sentWhenOriginated <- Some (temp.Find(callOf a)).Attempts.Length

                asterisk a

            use server = new Server(script answer, Some pki.Value.Server)
            let log = new TestSidecar.CapturedLog()

            let tracking =
                CallTracking.durable
                    requests
                    temp.Store
                    None
                    (OutcomeCounts())
                    TimeProvider.System
                    ((log :> ILoggerProvider).CreateLogger "tracking")

            let placeOnce (request: Request) =
                (Pipeline.place
                    tracking
                    (settingsFor server.Port (trustedTls ()))
                    roomyGate
                    (request.CallId, Attempt.first)
                    frenchCallback
                    CancellationToken.None)
                    .Result

            let request =
                RequestStoreTests.request TestNumbers.AllowedDigits DateTimeOffset.UtcNow None

            Expect.equal (requests.Accept(request, CancellationToken.None).Result) Accepted "claimed"
            let first = placeOnce request
            Expect.isTrue first.Stages.CallSpooled "placed"
            Expect.equal sentWhenOriginated (Some 1) "marked sent (its attempt started) when the Originate arrived"
            let again = placeOnce request
            Expect.equal again.Failure (Some NotRecorded) "no longer claimed"

            Expect.equal
                (server.ActionNames |> List.filter ((=) "Originate") |> List.length)
                1
                "one Originate for the attempt"
        }

        // Catches an Originate sent for a call nobody could ever read, or a log line with the number.
        test "a store that cannot record the call: no Originate, the stage fails, one error line without the number" {
            use temp = new TestStore.TempStore()
            let outcome, actions, log, _ = place (BrokenStore temp.Store) asterisk
            Expect.equal (actions |> List.map _.Name) [ "Login"; "Logoff" ] "no Originate"
            Expect.equal outcome.Failure (Some NotRecorded) "the failure"
            Expect.isFalse outcome.Stages.AmiOrig "amiOrig false"
            Expect.isFalse outcome.Stages.CallSpooled "not spooled"
            let errors = log |> List.filter (fun line -> line.StartsWith "Error")
            Expect.hasLength errors 1 "one error line"
            Expect.stringContains errors.Head "disk I/O error" "says why"
            let digits = frenchCallback.PhoneNumber.Digits
            let masked = PhoneNumber.masked frenchCallback.PhoneNumber

            Expect.all log (fun line -> not (line.Contains digits || line.Contains masked)) "never the number"
        }

        // Catches a refused Originate's call left queued for ever (or followed until declared lost).
        test "an Originate Asterisk refuses leaves its call failed with error in the store, counted" {
            use temp = new TestStore.TempStore()

            let outcome, actions, _, outcomes =
                place temp.Store (asteriskExcept "Originate" (fun a -> Send(response "Error" a.ActionId "Denied")))

            Expect.isNone outcome.CallId "not spooled"
            let stored = temp.Find(callOf (originateOf actions))
            Expect.equal stored.Status (Failed(FailedOutcome.Error, None)) "failed, error"
            Expect.equal (TestStore.states stored) [ State.Queued; State.Failed ] "its history"
            Expect.equal (outcomes.Of "error") 1L "counted by outcome"
        }

        // Catches a call declared failed when Asterisk may still have placed it: without an answer it may ring.
        test "an Originate left without an answer stays queued in the store" {
            use temp = new TestStore.TempStore()

            let _, actions, _, _ =
                place temp.Store (asteriskExcept "Originate" (fun _ -> Silent))

            Expect.equal (temp.Find(callOf (originateOf actions))).Status (Live Queued) "queued"
        }
    ]
