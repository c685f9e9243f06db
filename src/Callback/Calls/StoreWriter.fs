namespace Callback.Calls

open System
open System.Collections.Concurrent
open System.Collections.Generic
open System.Threading
open System.Threading.Channels
open System.Threading.Tasks
open Microsoft.Extensions.Logging
open Callback.Domain

/// Calls that reached their outcome in the store, by the outcome's name (`completed`, `busy`, …, `lost`):
/// what the metrics report as calls by outcome.
[<Sealed>]
type OutcomeCounts() =
    let counts = ConcurrentDictionary<string, int64>()

    /// Counts a call just saved with the final `status` (a live status counts nothing).
    member _.Add(status: CallStatus) =
        match Names.outcome status with
        | Some name -> counts.AddOrUpdate(name, 1L, (fun _ n -> n + 1L)) |> ignore
        | None -> ()

    /// How many calls ended with outcome `name` so far.
    member _.Of(name: string) =
        match counts.TryGetValue name with
        | true, n -> n
        | _ -> 0L

/// What the writer is told, in the order the monitor decided it.
type internal StoreWrite =
    /// From now on the writer moves `callId`, which the store holds as `expected` with `saved`
    /// transitions of this attempt.
    | Follow of callId: CallId * expected: Expected * saved: int
    /// The fold's latest state of a followed call.
    | Move of TrackedCall
    /// The writer stops moving `callId` (its Originate was refused: whoever refused it marks it).
    | Unfollow of CallId

/// The monitor's one writer to the store: changes are queued (unbounded, so neither the AMI reader nor
/// the fold ever waits for the disk) and saved by one loop, in order, each with the compare-and-set on what
/// this writer saved last; then the call as stored is published on the feed. Moves of one call that pile
/// up while the disk is busy are saved as one: each carries the whole call, so the latest holds them all.
[<Sealed>]
type internal StoreWriter
    (
        store: ICallStore,
        feed: CallFeed,
        outcomes: OutcomeCounts,
        leave: CallId -> unit,
        retryDelay: TimeSpan,
        logger: ILogger,
        retrying: Retrying
    ) =
    let queue =
        Channel.CreateUnbounded<StoreWrite>(UnboundedChannelOptions(SingleReader = true))

    /// What the store holds of each followed call: the guard of its next save, and how many of this
    /// attempt's transitions it has.
    let followed = Dictionary<CallId, Expected * int>()

    /// Failed saves in a row, per call.
    let failures = Dictionary<CallId, int>()

    let stopFollowing callId =
        followed.Remove callId |> ignore
        leave callId

    /// Reads the call back and publishes it as stored; a read that fails is logged and publishes nothing
    /// (what was saved stays saved: the next snapshot, or a `GET`, holds it).
    let publishStored callId =
        task {
            try
                match! store.Find(callId, CancellationToken.None) with
                | Some stored ->
                    feed.Publish stored
                    return Some stored
                | None -> return None
            with e ->
                logger.LogWarning(
                    "Call {CallId}: saved, but could not be read back to publish: {Error}",
                    CallId.short callId,
                    e.Message
                )

                return None
        }

    let saved (tracked: TrackedCall) =
        task {
            if Call.isFinal tracked.Call then
                outcomes.Add tracked.Call.Status
                followed.Remove tracked.CallId |> ignore
            else
                followed[tracked.CallId] <-
                    ({
                        Attempt = tracked.Attempt
                        State = Store.stateOf tracked.Call.Status
                     },
                     tracked.Call.History.Length)

            let! _ = publishStored tracked.CallId

            if Call.isFinal tracked.Call then
                leave tracked.CallId
        }

    let stale (tracked: TrackedCall) =
        task {
            stopFollowing tracked.CallId
            let! stored = publishStored tracked.CallId

            let state =
                stored
                |> Option.map (fun s -> Names.state (Store.stateOf s.Status))
                |> Option.defaultValue "gone"

            logger.LogWarning(
                "Call {CallId}: another writer moved it first (the store has it {State}); this monitor leaves it as stored",
                CallId.short tracked.CallId,
                state
            )
        }

    /// The attempt ended and the next one is queued (due): the monitor is done with this attempt; the
    /// dispatcher places the next.
    let rescheduled (tracked: TrackedCall) (dueAt: DateTimeOffset) =
        task {
            stopFollowing tracked.CallId
            let! _ = publishStored tracked.CallId

            logger.LogInformation(
                "Call {CallId}: attempt {Attempt} ended {Outcome}; the next is due at {DueAt:O}",
                CallId.short tracked.CallId,
                Attempt.number tracked.Attempt,
                Names.outcome tracked.Call.Status |> Option.defaultValue "",
                dueAt
            )
        }

    let save (tracked: TrackedCall) (expected: Expected, count: int) =
        task {
            let fresh =
                tracked.Call.History |> List.skip (min count tracked.Call.History.Length)

            if not fresh.IsEmpty then
                let change = {
                    Attempt = tracked.Attempt
                    Status = tracked.Call.Status
                    Transitions = fresh
                    At = tracked.UpdatedAt
                }

                // Decided on the attempt's end and applied in the same save, so the call goes from its
                // live state straight back to queued: nobody is ever told it failed before the retry.
                let retryAt = retrying.Next tracked.Attempt tracked.Call.Status tracked.UpdatedAt

                let! result =
                    match retryAt with
                    | Some dueAt -> retrying.Reschedule tracked.CallId expected change dueAt
                    | None -> store.Save(tracked.CallId, expected, change, CancellationToken.None)

                match result, retryAt with
                | Saved, Some dueAt -> do! rescheduled tracked dueAt
                | Saved, None -> do! saved tracked
                | Stale, _ -> do! stale tracked
                | UnknownCall, _ ->
                    stopFollowing tracked.CallId

                    logger.LogWarning(
                        "Call {CallId}: not in the store (pruned?); the monitor stops following it",
                        CallId.short tracked.CallId
                    )
        }

    /// Saves one move. A store that fails is logged and the move retried `retryDelay` later, at most
    /// `Retries` times in a row for one call (a newer move of the call makes a retry a no-op: the
    /// transitions saved are counted); then the call is left as stored, so a broken disk cannot flood the
    /// log or keep calls in memory for ever.
    let write (tracked: TrackedCall) =
        task {
            match followed.TryGetValue tracked.CallId with
            | true, guard ->
                try
                    do! save tracked guard
                    failures.Remove tracked.CallId |> ignore
                with e ->
                    let failed =
                        match failures.TryGetValue tracked.CallId with
                        | true, n -> n + 1
                        | _ -> 1

                    let state = Names.state (Store.stateOf tracked.Call.Status)

                    if failed <= StoreWriter.Retries then
                        failures[tracked.CallId] <- failed

                        logger.LogError(
                            "Call {CallId}: the store could not save its move to {State}, retried in {Delay} ms: {Error}",
                            CallId.short tracked.CallId,
                            state,
                            retryDelay.TotalMilliseconds,
                            e.Message
                        )

                        Task
                            .Delay(retryDelay)
                            .ContinueWith(fun (_: Task) -> queue.Writer.TryWrite(Move tracked) |> ignore)
                        |> ignore
                    else
                        failures.Remove tracked.CallId |> ignore
                        stopFollowing tracked.CallId

                        logger.LogError(
                            "Call {CallId}: the store still cannot save its move to {State}; the monitor leaves it as stored: {Error}",
                            CallId.short tracked.CallId,
                            state,
                            e.Message
                        )
            | _ -> ()
        }

    /// Everything queued now, the follows applied at once and the moves kept latest per call, in order.
    let batch (first: StoreWrite) =
        let moves = List<TrackedCall>()
        let at = Dictionary<CallId, int>()
        let mutable next = first
        let mutable more = true

        while more do
            match next with
            | Follow(callId, expected, count) -> followed[callId] <- (expected, count)
            | Unfollow callId -> followed.Remove callId |> ignore
            | Move tracked ->
                match at.TryGetValue tracked.CallId with
                | true, i -> moves[i] <- tracked
                | _ ->
                    at[tracked.CallId] <- moves.Count
                    moves.Add tracked

            more <- queue.Reader.TryRead &next

        moves

    /// A writer without retries.
    new(store, feed, outcomes, leave, retryDelay, logger) =
        StoreWriter(store, feed, outcomes, leave, retryDelay, logger, Retries.never)

    /// How many times in a row a failed save of one call is retried.
    static member Retries = 5

    /// The writer's loop: until `Complete` and everything queued is saved.
    member _.Run() : Task =
        task {
            let reader = queue.Reader

            while! reader.WaitToReadAsync() do
                let mutable first = Unchecked.defaultof<StoreWrite>

                if reader.TryRead &first then
                    for tracked in batch first do
                        do! write tracked
        }

    member _.Follow(callId: CallId, expected: Expected, saved: int) =
        queue.Writer.TryWrite(Follow(callId, expected, saved)) |> ignore

    member _.Move(tracked: TrackedCall) =
        queue.Writer.TryWrite(Move tracked) |> ignore

    member _.Unfollow(callId: CallId) =
        queue.Writer.TryWrite(Unfollow callId) |> ignore

    /// No more writes: `Run` ends once the queue is saved.
    member _.Complete() = queue.Writer.TryComplete() |> ignore
