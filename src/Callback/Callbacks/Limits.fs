namespace Callback.Callbacks

open System
open System.Threading.RateLimiting
open Callback
open Callback.Domain

/// Which limit refused a callback.
type Limit =
    /// The client address's requests of the minute.
    | PerClient
    /// The number's interval or its day.
    | PerNumber
    /// The calls of the minute for the whole sidecar.
    | Ceiling

/// Whether a callback may go on, and if not, which limit refused it and when to ask again.
type LimitDecision =
    | Allowed
    | Limited of Limit * retryAfter: TimeSpan option

/// The in-memory rate limits of `POST /callback` (System.Threading.RateLimiting). Each partition is a
/// fixed window that starts with its key's first request; the partitioned limiter drops a key's window
/// once it has been full again (idle) for a few seconds, so memory holds only keys seen within their
/// window: clients of the last minute, and numbers called within the day, of which there are at most
/// `GlobalPerMinute` a minute.
[<Sealed>]
type CallbackLimits(settings: ProtectionSettings) =
    static let window (permits: int) (length: TimeSpan) =
        FixedWindowRateLimiterOptions(PermitLimit = permits, Window = length, QueueLimit = 0, AutoReplenishment = true)

    static let partitioned (permits: int) (length: TimeSpan) (keyOf: string -> string) =
        PartitionedRateLimiter.Create<string, string>(fun resource ->
            RateLimitPartition.GetFixedWindowLimiter(keyOf resource, fun _ -> window permits length))

    static let minute = TimeSpan.FromMinutes 1.0

    let perClient = partitioned settings.PerClientPerMinute minute id
    let numberInterval = partitioned 1 settings.PerNumberInterval id

    let numberDay = partitioned settings.PerNumberPerDay (TimeSpan.FromDays 1.0) id

    let perNumber = PartitionedRateLimiter.CreateChained(numberInterval, numberDay)
    let ceiling = partitioned settings.GlobalPerMinute minute (fun _ -> "")

    static let decide limit (limiter: PartitionedRateLimiter<string>) (key: string) (permits: int) =
        use lease = limiter.AttemptAcquire(key, permits)

        if lease.IsAcquired then
            Allowed
        else
            match lease.TryGetMetadata MetadataName.RetryAfter with
            | true, after -> Limited(limit, Some after)
            | _ -> Limited(limit, None)

    /// Takes one request from the client's minute; asked before the body is read, whatever it holds.
    member _.ForClient(client: string) = decide PerClient perClient client 1

    /// Takes one call from the number's interval and day, then one from the sidecar's minute; asked only
    /// for a valid number, so the ceiling counts calls about to be placed, not junk, and a number refused
    /// for itself spends none of it. Once the minute's calls are used up, no number is looked at (the
    /// ceiling is only peeked at first): numbers get a window only while calls are placed, so their count
    /// is bounded by the ceiling, whoever asks.
    member _.ForCall(number: PhoneNumber) =
        match decide Ceiling ceiling "" 0 with
        | Limited _ as full -> full
        | Allowed ->
            match decide PerNumber perNumber number.Digits 1 with
            | Allowed -> decide Ceiling ceiling "" 1
            | limited -> limited

    /// Calls the number has left now, the least of its interval and its day (for tests and diagnostics).
    member _.CallsLeft(number: PhoneNumber) =
        [ numberInterval; numberDay ]
        |> List.map (fun limiter ->
            match limiter.GetStatistics number.Digits with
            | null -> 0L
            | stats -> stats.CurrentAvailablePermits)
        |> List.min

    interface IDisposable with
        member _.Dispose() =
            perNumber.Dispose()
            perClient.Dispose()
            numberInterval.Dispose()
            numberDay.Dispose()
            ceiling.Dispose()
