namespace Callback.Webhooks

open System

/// How a receiver answered one delivery.
type Answer =
    /// 2xx: delivered (the only success; a redirect is not followed and not one).
    | Accepted of status: int
    /// 410 Gone: the receiver wants no more webhooks at this URL.
    | Gone
    /// Any other status, with its `Retry-After` when one was given (429, 503).
    | Refused of status: int * retryAfter: TimeSpan option
    /// No status within the timeout: refused connection, reset, or too slow.
    | Unanswered

/// What to do with a row after its delivery.
type Decision =
    | Done
    | DisableEndpoint
    | RetryIn of TimeSpan
    | GiveUp

/// The retry schedule of Standard Webhooks' example (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h,
/// 20 h, 24 h: about three days in all), spread by jitter so receivers that failed together are not all
/// retried in the same second. Pure: the jitter is an input.
[<RequireQualifiedAccess>]
module DeliverySchedule =

    /// The wait before each attempt, the first one's included (none).
    let schedule = [
        TimeSpan.Zero
        TimeSpan.FromSeconds 5.0
        TimeSpan.FromMinutes 5.0
        TimeSpan.FromMinutes 30.0
        TimeSpan.FromHours 2.0
        TimeSpan.FromHours 5.0
        TimeSpan.FromHours 10.0
        TimeSpan.FromHours 14.0
        TimeSpan.FromHours 20.0
        TimeSpan.FromHours 24.0
    ]

    /// The longest wait, the schedule's last: a `Retry-After` asking for more is cut to it.
    let maxDelay = List.last schedule

    /// The wait before attempt `attempt` (2 for the first retry), spread ±10% by `jitter` in [0, 1).
    let delayBefore (attempt: int) (jitter: float) =
        let index = min (max 0 (attempt - 1)) (schedule.Length - 1)
        let spread = 0.9 + 0.2 * min (max jitter 0.0) 1.0
        TimeSpan.FromMilliseconds(schedule[index].TotalMilliseconds * spread)

    /// `Retry-After` as a wait from `now`: seconds, or an HTTP date; never negative, at most `maxDelay`.
    let retryAfter (now: DateTimeOffset) (delta: TimeSpan option) (date: DateTimeOffset option) =
        match delta, date with
        | Some delta, _ -> Some delta
        | None, Some date -> Some(date - now)
        | None, None -> None
        |> Option.map (fun wait -> TimeSpan.FromTicks(Math.Clamp(wait.Ticks, 0L, maxDelay.Ticks)))

    /// After attempt `attempt` of at most `maxAttempts` was answered `answer`.
    let decide (maxAttempts: int) (attempt: int) (jitter: float) (answer: Answer) =
        match answer with
        | Accepted _ -> Done
        | Gone -> DisableEndpoint
        | _ when attempt >= maxAttempts -> GiveUp
        | Refused(_, Some wait) -> RetryIn wait
        | Refused(_, None)
        | Unanswered -> RetryIn(delayBefore (attempt + 1) jitter)

    /// The status to record and log, if the receiver gave one.
    let status (answer: Answer) =
        match answer with
        | Accepted status
        | Refused(status, _) -> Some status
        | Gone -> Some 410
        | Unanswered -> None
