namespace Callback.Callbacks

open System
open System.Collections.Concurrent
open System.Threading
open System.Threading.Tasks
open Microsoft.Extensions.Hosting
open Microsoft.Extensions.Logging
open Callback.Ami
open Callback.Calls
open Callback.Domain

/// How the dispatcher waits.
type DispatcherTiming = {
    /// The longest sleep with nothing due (a call scheduled meanwhile wakes it).
    Idle: TimeSpan
    /// The shortest sleep between two rounds, so a store that keeps answering "due" cannot spin it.
    MinSleep: TimeSpan
    /// Attempts claimed per round.
    Batch: int
    /// An attempt nothing of which could be sent (no socket, no Login) is due again after this backoff.
    Backoff: BackoffPolicy
}

[<RequireQualifiedAccess>]
module DispatcherTiming =
    /// A minute asleep at most, a second at least, 8 attempts a round, 5 s doubling to 5 min after a failure.
    let defaults = {
        Idle = TimeSpan.FromMinutes 1.0
        MinSleep = TimeSpan.FromSeconds 1.0
        Batch = 8
        Backoff = {
            Initial = TimeSpan.FromSeconds 5.0
            Max = TimeSpan.FromMinutes 5.0
        }
    }

/// Places the attempts that are due: scheduled calls and retries. It claims them (`due` → `claimed`), so
/// no other worker can take one, places each through the same pipeline as a request (ChannelId
/// `<callId>-<n>`), and sleeps until the next is due, woken early when one becomes due sooner. An attempt
/// whose socket or Login failed sent nothing, so it is due again after a backoff (the same attempt).
[<Sealed>]
type Dispatcher
    (
        requests: IRequestStore,
        place: PlaceAttempt,
        timing: DispatcherTiming,
        time: TimeProvider,
        random: unit -> float,
        logger: ILogger
    ) =
    inherit BackgroundService()

    let mutable wake = new CancellationTokenSource()
    let mutable sleepingUntil = DateTimeOffset.MaxValue
    let gate = obj ()

    /// Failed tries in a row of an attempt nothing of which was sent, for its backoff.
    let unsent = ConcurrentDictionary<CallId * Attempt, int>()

    let attempt (claimed: ClaimedAttempt) =
        task {
            let key = claimed.CallId, claimed.Attempt

            try
                let! outcome = place key claimed.Request CancellationToken.None

                if CallbackRequests.NothingSent outcome then
                    let tries = unsent.AddOrUpdate(key, 1, (fun _ n -> n + 1))
                    let dueAt = time.GetUtcNow() + Backoff.delay timing.Backoff tries (random ())

                    let! _ =
                        requests.Postpone(claimed.CallId, claimed.Attempt, dueAt, CancellationToken.None)

                    logger.LogWarning(
                        "Call {CallId}: attempt {Attempt} could not be sent; due again at {DueAt:O}",
                        CallId.short claimed.CallId,
                        Attempt.number claimed.Attempt,
                        dueAt
                    )
                else
                    unsent.TryRemove key |> ignore
                    do! requests.RecordStages(claimed.CallId, outcome.Stages, false, CancellationToken.None)
            with e ->
                logger.LogError(
                    "Call {CallId}: attempt {Attempt} could not be placed: {Error}",
                    CallId.short claimed.CallId,
                    Attempt.number claimed.Attempt,
                    e.Message
                )
        }

    /// Claims and places what is due now; true when a whole batch was claimed (more may be due).
    let round () =
        task {
            let! claimed =
                requests.ClaimDue(time.GetUtcNow(), timing.Batch, CancellationToken.None)

            do! Task.WhenAll(claimed |> List.map (fun c -> attempt c :> Task))
            return claimed.Length = timing.Batch
        }

    let sleep (stop: CancellationToken) =
        task {
            let! next = requests.NextDue stop
            let now = time.GetUtcNow()

            let untilNext =
                next |> Option.map (fun at -> at - now) |> Option.defaultValue timing.Idle

            let span = max timing.MinSleep (min timing.Idle untilNext)

            use linked =
                lock gate (fun () ->
                    sleepingUntil <- now + span
                    CancellationTokenSource.CreateLinkedTokenSource(stop, wake.Token))

            try
                do! Task.Delay(span, time, linked.Token)
            with :? OperationCanceledException when not stop.IsCancellationRequested ->
                ()

            lock gate (fun () ->
                if wake.IsCancellationRequested then
                    wake.Dispose()
                    wake <- new CancellationTokenSource()

                sleepingUntil <- DateTimeOffset.MaxValue)
        }

    /// A call became due at `at`: the dispatcher wakes now if it would sleep past it.
    member _.Wake(at: DateTimeOffset) =
        lock gate (fun () ->
            if at < sleepingUntil then
                wake.Cancel())

    /// Until when the dispatcher sleeps now, if it does (the tests wait for it to be asleep).
    member _.SleepingUntil =
        lock gate (fun () ->
            if sleepingUntil = DateTimeOffset.MaxValue then
                None
            else
                Some sleepingUntil)

    /// One claim-and-place round now (the tests drive it; the service loops on it).
    member _.RunDue() = round ()

    override _.ExecuteAsync(stop: CancellationToken) =
        task {
            while not stop.IsCancellationRequested do
                let! failed =
                    task {
                        try
                            let! full = round ()

                            if not full then
                                do! sleep stop

                            return false
                        with
                        | :? OperationCanceledException when stop.IsCancellationRequested -> return false
                        | e ->
                            logger.LogError("Dispatcher: the store could not be read: {Error}", e.Message)
                            return true
                    }

                if failed then
                    try
                        do! Task.Delay(timing.Backoff.Initial, time, stop)
                    with :? OperationCanceledException ->
                        ()
        }
