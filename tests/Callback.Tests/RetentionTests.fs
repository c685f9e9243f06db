/// Bounded retention: the hosted timer prunes the final calls older than `Data__RetentionDays`, once at
/// start and every hour, and logs how many.
module Callback.Tests.RetentionTests

open System
open System.Threading
open Expecto
open Microsoft.Extensions.Logging
open Callback.Calls
open Callback.Domain
open Callback.Tests.MonitorTests

let private cancel = CancellationToken.None

/// A clock stopped at `now`.
let private stoppedAt (now: DateTimeOffset) = {
    new TimeProvider() with
        override _.GetUtcNow() = now
}

/// A call recorded at `at` and, when `final`, failed busy then.
let private callAt (temp: TestStore.TempStore) (at: DateTimeOffset) (final: bool) =
    let callId = CallId.create ()

    temp.Store.Create(TestStore.newCall callId Attempt.first at, cancel).Result
    |> ignore

    if final then
        let change = {
            Attempt = Attempt.first
            Status = Failed(Busy, None)
            Transitions = [ { State = State.Failed; At = at } ]
            At = at
        }

        temp.Store
            .Save(
                callId,
                {
                    Attempt = Attempt.first
                    State = State.Queued
                },
                change,
                cancel
            )
            .Result
        |> ignore

    callId

let private found (temp: TestStore.TempStore) callId =
    (temp.Store.Find(callId, cancel).Result).IsSome

let private now = DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero)

[<Tests>]
let tests =
    testSequenced
    <| testList "Retention" [
        // Catches a cutoff taken the wrong way (now + retention), or live calls pruned with the old ones.
        test "one round deletes the final calls last moved more than the retention ago, and logs how many" {
            use temp = new TestStore.TempStore()
            let old = callAt temp (now.AddDays -31.0) true
            let recent = callAt temp (now.AddDays -29.0) true
            let oldLive = callAt temp (now.AddDays -90.0) false
            let log = new TestSidecar.CapturedLog()

            let retention =
                new CallRetention(
                    temp.Store,
                    TimeSpan.FromDays 30.0,
                    stoppedAt now,
                    (log :> ILoggerProvider).CreateLogger "retention"
                )

            Expect.equal (retention.PruneOnce(cancel).Result) 1 "one deleted"
            Expect.isFalse (found temp old) "the old final call is gone"
            Expect.isTrue (found temp recent) "a recent one is kept"
            Expect.isTrue (found temp oldLive) "a live call is kept whatever its age"
            Expect.exists log.Lines (fun line -> line.Contains "deleted 1 final calls") "the count logged"
        }

        // Catches a timer that only prunes an hour after start (a restarted sidecar would never prune).
        test "the hosted service prunes once at start" {
            use temp = new TestStore.TempStore()
            let old = callAt temp (DateTimeOffset.UtcNow.AddDays -40.0) true

            use retention =
                new CallRetention(
                    temp.Store,
                    TimeSpan.FromDays 30.0,
                    TimeProvider.System,
                    Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance
                )

            retention.StartAsync(cancel).Wait()
            eventually "pruned at start" (fun () -> not (found temp old))
            retention.StopAsync(cancel).Wait()
        }
    ]
