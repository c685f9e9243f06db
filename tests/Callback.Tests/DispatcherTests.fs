/// The dispatcher on a fake clock and the real store: a due attempt is claimed and placed once, at its
/// time and with its attempt number; one whose socket or Login failed is due again after a backoff, the
/// same attempt; a call due sooner wakes it, with no polling meanwhile.
module Callback.Tests.DispatcherTests

open System
open System.Collections.Concurrent
open System.Diagnostics
open System.Threading
open System.Threading.Tasks
open Expecto
open Microsoft.Extensions.Logging.Abstractions
open Microsoft.Extensions.Time.Testing
open Callback
open Callback.Ami
open Callback.Callbacks
open Callback.Calls
open Callback.Domain

let private cancel = CancellationToken.None
let private at = DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero)

let private spooledOutcome (callId: CallId) = {
    Stages = {
        Socket = true
        AmiLogin = true
        AmiOrig = true
        AmiLogoff = true
        CallSpooled = true
    }
    CallId = Some(CallId.value callId)
    Failure = None
    SkippedMessages = 0L
}

let private loginFailed = {
    Stages = { StageResults.None with Socket = true }
    CallId = None
    Failure = Some(LoginFailed NoResponse)
    SkippedMessages = 0L
}

/// A dispatcher over a fresh store and a fake clock whose `place` records each attempt and answers
/// `answer` for it.
type private Bed(answer: CallId * Attempt -> CallbackOutcome) =
    let temp = new TestStore.TempStore()
    let clock = FakeTimeProvider(at)
    let placed = ConcurrentQueue<CallId * Attempt>()

    let place (call: CallId * Attempt) (_: CallbackRequest) (_: CancellationToken) =
        placed.Enqueue call
        Task.FromResult(answer call)

    let dispatcher =
        new Dispatcher(
            temp.Store :?> IRequestStore,
            place,
            DispatcherTiming.defaults,
            clock,
            (fun () -> 0.5),
            NullLogger.Instance
        )

    member _.Requests = temp.Store :?> IRequestStore
    member _.Clock = clock
    member _.Dispatcher = dispatcher
    member _.Placed = List.ofSeq placed
    member _.Find callId = temp.Find callId

    /// A request for `digits` due at `due`, accepted.
    member this.Schedule (digits: string) (due: DateTimeOffset) =
        let request = RequestStoreTests.request digits (clock.GetUtcNow()) (Some due)
        Expect.equal (this.Requests.Accept(request, cancel).Result) Accepted "accepted"
        request.CallId

    interface IDisposable with
        member _.Dispose() =
            dispatcher.StopAsync(cancel).Wait()
            (temp :> IDisposable).Dispose()

let private within (what: string) (ready: unit -> bool) =
    let clock = Stopwatch.StartNew()

    while not (ready ()) && clock.Elapsed < TimeSpan.FromSeconds 5.0 do
        Thread.Sleep 10

    Expect.isTrue (ready ()) what

[<Tests>]
let tests =
    testSequenced
    <| testList "Dispatcher" [
        // Catches a claim that ignores the due time, or places an attempt twice.
        test "a scheduled call is placed once, at its time, as attempt 1 of its call" {
            use bed = new Bed(fun (callId, _) -> spooledOutcome callId)
            let callId = bed.Schedule "15145550234" (at.AddMinutes 5.0)
            bed.Dispatcher.RunDue().Wait()
            Expect.isEmpty bed.Placed "not before its time"
            bed.Clock.Advance(TimeSpan.FromMinutes 5.0)
            bed.Dispatcher.RunDue().Wait()
            bed.Dispatcher.RunDue().Wait()
            Expect.equal bed.Placed [ callId, Attempt.first ] "placed once, attempt 1"
            Expect.equal (bed.Find callId).ScheduledFor None "no longer due"
        }

        // Catches an unsent attempt given up (the visitor would never be called) or counted as a new one.
        test "an attempt whose Login failed is due again after a backoff, the same attempt, then placed" {
            let mutable tries = 0

            use bed =
                new Bed(fun (callId, _) ->
                    tries <- tries + 1
                    if tries = 1 then loginFailed else spooledOutcome callId)

            let callId = bed.Schedule "15145550234" at
            bed.Dispatcher.RunDue().Wait()
            let due = (bed.Find callId).ScheduledFor
            // Equal jitter on 5 s with random 0.5: 3.75 s.
            Expect.equal due (Some(at.AddSeconds 3.75)) "due again after the backoff"
            Expect.equal (Attempt.number (bed.Find callId).Attempt) 1 "the same attempt"
            bed.Dispatcher.RunDue().Wait()
            Expect.equal bed.Placed.Length 1 "not before the backoff"
            bed.Clock.Advance(TimeSpan.FromSeconds 4.0)
            bed.Dispatcher.RunDue().Wait()
            Expect.equal bed.Placed [ callId, Attempt.first; callId, Attempt.first ] "placed again, attempt 1"
        }

        // Catches a dispatcher that only wakes on its timer (a call due now would wait a minute) or polls.
        test "asleep with nothing due, it is woken by a call due now and places it without the clock moving" {
            use bed = new Bed(fun (callId, _) -> spooledOutcome callId)
            bed.Dispatcher.StartAsync(cancel).Wait()
            within "asleep" (fun () -> bed.Dispatcher.SleepingUntil.IsSome)
            Expect.equal bed.Dispatcher.SleepingUntil (Some(at.AddMinutes 1.0)) "for the idle minute"
            let callId = bed.Schedule "15145550234" at
            Thread.Sleep 200
            Expect.isEmpty bed.Placed "no polling: asleep until woken"
            bed.Dispatcher.Wake at
            within "placed once woken" (fun () -> bed.Placed = [ callId, Attempt.first ])
            within "asleep again" (fun () -> bed.Dispatcher.SleepingUntil.IsSome)
            Expect.equal bed.Placed [ callId, Attempt.first ] "once"
        }

        // Catches a sleep that ignores the next due time (a retry would wait the idle minute).
        test "it sleeps until the next due attempt, and places it when the clock gets there" {
            use bed = new Bed(fun (callId, _) -> spooledOutcome callId)
            let callId = bed.Schedule "15145550234" (at.AddSeconds 20.0)
            bed.Dispatcher.StartAsync(cancel).Wait()
            within "asleep" (fun () -> bed.Dispatcher.SleepingUntil.IsSome)
            Expect.equal bed.Dispatcher.SleepingUntil (Some(at.AddSeconds 20.0)) "until it is due"
            bed.Clock.Advance(TimeSpan.FromSeconds 20.0)
            within "placed" (fun () -> bed.Placed = [ callId, Attempt.first ])
        }
    ]
