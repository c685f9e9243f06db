namespace Callback.Ami

open System

/// How long a supervisor waits before reconnecting: doubling from `Initial` up to `Max`.
type BackoffPolicy = { Initial: TimeSpan; Max: TimeSpan }

[<RequireQualifiedAccess>]
module Backoff =

    /// The ceiling for reconnection attempt `attempt` (1, 2, …): `Initial · 2^(attempt-1)`, capped at `Max`.
    let ceiling (policy: BackoffPolicy) (attempt: int) =
        let doublings = float (min (max attempt 1 - 1) 40)

        let ms =
            min policy.Max.TotalMilliseconds (policy.Initial.TotalMilliseconds * Math.Pow(2.0, doublings))

        TimeSpan.FromMilliseconds(max ms 0.0)

    /// The delay before attempt `attempt`, "equal jitter": half the ceiling, plus `random` ∈ [0, 1) times
    /// the other half. Many sidecars that lost the same Asterisk then do not all knock at the same instant,
    /// and none retries sooner than half its ceiling.
    let delay (policy: BackoffPolicy) (attempt: int) (random: float) =
        let c = (ceiling policy attempt).TotalMilliseconds
        let r = min (max random 0.0) 1.0
        TimeSpan.FromMilliseconds(c / 2.0 + r * c / 2.0)
