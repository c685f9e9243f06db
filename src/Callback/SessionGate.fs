namespace Callback

open System
open System.Diagnostics
open System.Threading
open System.Threading.RateLimiting
open System.Threading.Tasks

/// At most `limit` AMI sessions at once, and at most `maxQueued` callbacks waiting for one. Asterisk's
/// manager listens with a backlog of 10 (`listen(fd, 10)` in its tcptls.c): a burst of simultaneous
/// connects beyond that loses SYNs, which TCP retries only a second later. Queueing here instead keeps a
/// burst's latency set by the queue; bounding the queue keeps a flood from holding every request open.
[<Sealed>]
type SessionGate(limit: int, maxQueued: int) =
    let slots =
        new ConcurrencyLimiter(
            ConcurrencyLimiterOptions(
                PermitLimit = limit,
                QueueLimit = maxQueued,
                QueueProcessingOrder = QueueProcessingOrder.OldestFirst
            )
        )

    let ended = Event<TimeSpan>()

    /// A gate whose queue is, in practice, unbounded (for tests of other modules).
    new(limit: int) = new SessionGate(limit, Int32.MaxValue)

    /// Each session's duration once it ends (for the metrics), the wait for a slot not included.
    [<CLIEvent>]
    member _.SessionEnded = ended.Publish

    /// Sessions running now.
    member _.InUse =
        match slots.GetStatistics() with
        | null -> 0
        | s -> limit - int s.CurrentAvailablePermits

    /// Callbacks waiting for a slot now.
    member _.Queued =
        match slots.GetStatistics() with
        | null -> 0
        | s -> int s.CurrentQueuedCount

    /// Runs `session` once a slot is free; `None`, without running it, when the queue is full (at once) or
    /// no slot frees up within `wait`. Cancelling `ct` cancels the wait, not a session already running.
    member _.Run(wait: TimeSpan, ct: CancellationToken, session: unit -> Task<'T>) : Task<'T option> =
        task {
            use deadline = CancellationTokenSource.CreateLinkedTokenSource ct
            deadline.CancelAfter wait

            let! lease =
                task {
                    try
                        let! lease = slots.AcquireAsync(1, deadline.Token)
                        return Some lease
                    with :? OperationCanceledException when not ct.IsCancellationRequested ->
                        return None
                }

            match lease with
            | Some lease when lease.IsAcquired ->
                use _ = lease
                let started = Stopwatch.GetTimestamp()

                try
                    let! result = session ()
                    return Some result
                finally
                    ended.Trigger(Stopwatch.GetElapsedTime started)
            | Some lease ->
                lease.Dispose()
                return None
            | None -> return None
        }

    interface IDisposable with
        member _.Dispose() = slots.Dispose()
