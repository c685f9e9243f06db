namespace Callback

open System
open System.Threading
open System.Threading.Tasks

/// At most `limit` AMI sessions at once. Asterisk's manager listens with a backlog of 10
/// (`listen(fd, 10)` in its tcptls.c): a burst of simultaneous connects beyond that loses SYNs, which TCP
/// retries only a second later. Queueing here instead keeps a burst's latency set by the queue.
[<Sealed>]
type SessionGate(limit: int) =
    let slots = new SemaphoreSlim(limit, limit)

    /// Runs `session` once a slot is free; `None`, without running it, when none frees up within `wait`.
    member _.Run(wait: TimeSpan, ct: CancellationToken, session: unit -> Task<'T>) : Task<'T option> =
        task {
            let! entered = slots.WaitAsync(wait, ct)

            if not entered then
                return None
            else
                try
                    let! result = session ()
                    return Some result
                finally
                    slots.Release() |> ignore
        }

    interface IDisposable with
        member _.Dispose() = slots.Dispose()
