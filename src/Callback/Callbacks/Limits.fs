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

    static let decide limit (limiter: PartitionedRateLimiter<string>) (key: string) =
        use lease = limiter.AttemptAcquire(key, 1)

        if lease.IsAcquired then
            Allowed
        else
            match lease.TryGetMetadata MetadataName.RetryAfter with
            | true, after -> Limited(limit, Some after)
            | _ -> Limited(limit, None)

    /// Takes one request from the client's minute; asked before the body is read, whatever it holds.
    member _.ForClient(client: string) = decide PerClient perClient client

    /// Takes one call from the number's interval and day, then one from the sidecar's minute; asked only
    /// for a valid number, so the ceiling counts calls about to be placed, not junk. (A call the ceiling
    /// refuses has still used its number's permit: a fixed window gives none back.)
    member _.ForCall(number: PhoneNumber) =
        match decide PerNumber perNumber number.Digits with
        | Allowed -> decide Ceiling ceiling ""
        | limited -> limited

    interface IDisposable with
        member _.Dispose() =
            perNumber.Dispose()
            perClient.Dispose()
            numberInterval.Dispose()
            numberDay.Dispose()
            ceiling.Dispose()
