namespace Callback.Calls

open System
open System.Threading.Tasks
open Callback.Domain

/// When a call the visitor did not take is tried again.
type RetryPolicy = {
    /// Attempts at most, the first included.
    MaxAttempts: int
    /// The spacing of attempts, before the jitter.
    Delay: TimeSpan
    /// The jitter as a fraction of `Delay`: the next attempt is due `Delay · (1 ± Jitter)` later.
    Jitter: float
}

/// How the writer applies retries: the decision, and the store's move that ends an attempt and queues the
/// next in one transaction (`IRequestStore.Retry`).
type Retrying = {
    /// The next attempt's due time for an attempt that ended with `status` at `at`, if it gets one.
    Next: Attempt -> CallStatus -> DateTimeOffset -> DateTimeOffset option
    Reschedule: CallId -> Expected -> Change -> DateTimeOffset -> Task<SaveResult>
}

[<RequireQualifiedAccess>]
module Retries =

    /// A quarter of the delay either way: calls that failed together (a trunk down) spread out.
    [<Literal>]
    let DefaultJitter = 0.25

    /// Whether the visitor may take a call later: busy, no answer or a congested line. Never after an
    /// answered call, a refusal (`rejected`), a number that cannot be reached, an error or `lost` (whose
    /// attempt may be ringing still).
    let retriable (status: CallStatus) =
        match status with
        | Failed((Busy | NoAnswer | Congestion), _) -> true
        | _ -> false

    /// The next attempt's due time after attempt `attempt` ended with `status` at `at`: `at + Delay ·
    /// (1 + Jitter · (2·random − 1))`, `random` ∈ [0, 1); None when it is not retriable or was the last.
    let next (policy: RetryPolicy) (attempt: Attempt) (status: CallStatus) (at: DateTimeOffset) (random: float) =
        if retriable status && Attempt.number attempt < policy.MaxAttempts then
            let r = min (max random 0.0) 1.0
            let factor = 1.0 + policy.Jitter * (2.0 * r - 1.0)
            Some(at + TimeSpan.FromMilliseconds(policy.Delay.TotalMilliseconds * factor))
        else
            None

    /// No retries: every final attempt is the call's end.
    let never = {
        Next = fun _ _ _ -> None
        Reschedule = fun _ _ _ _ -> Task.FromResult Stale
    }
