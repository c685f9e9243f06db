namespace Callback.Callbacks

open System
open System.Threading.RateLimiting
open Callback
open Callback.Domain

/// Whether a callback may go on, and if not, when to ask again.
type LimitDecision =
    | Allowed
    | Limited of retryAfter: TimeSpan option

/// The in-memory rate limits of `POST /callback` (System.Threading.RateLimiting). Each partition is a
/// fixed window that starts with its key's first request; the partitioned limiter drops a key's window
/// once it has been full again (idle) for a few seconds, so memory holds only keys seen within their
/// window: clients of the last minute, numbers called within the day (at most `GlobalPerMinute` a minute).
[<Sealed>]
type CallbackLimits(settings: ProtectionSettings) =
    static let window (permits: int) (length: TimeSpan) =
        FixedWindowRateLimiterOptions(PermitLimit = permits, Window = length, QueueLimit = 0, AutoReplenishment = true)

    static let partitioned (permits: int) (length: TimeSpan) (keyOf: 'Resource -> string) =
        PartitionedRateLimiter.Create<'Resource, string>(fun resource ->
            RateLimitPartition.GetFixedWindowLimiter(keyOf resource, fun _ -> window permits length))

    static let minute = TimeSpan.FromMinutes 1.0

    let perClient: PartitionedRateLimiter<string> =
        partitioned settings.PerClientPerMinute minute id

    let ceiling: PartitionedRateLimiter<string> =
        partitioned settings.GlobalPerMinute minute (fun _ -> "")

    let request = PartitionedRateLimiter.CreateChained(perClient, ceiling)

    let numberInterval: PartitionedRateLimiter<string> =
        partitioned 1 settings.PerNumberInterval id

    let numberDay: PartitionedRateLimiter<string> =
        partitioned settings.PerNumberPerDay (TimeSpan.FromDays 1.0) id

    let perNumber = PartitionedRateLimiter.CreateChained(numberInterval, numberDay)

    static let decide (limiter: PartitionedRateLimiter<string>) (key: string) =
        use lease = limiter.AttemptAcquire(key, 1)

        if lease.IsAcquired then
            Allowed
        else
            match lease.TryGetMetadata MetadataName.RetryAfter with
            | true, after -> Limited(Some after)
            | _ -> Limited None

    /// Takes one request from the client's minute and from the sidecar's minute.
    member _.ForClient(client: string) = decide request client

    /// Takes one call from the number's interval and from its day; asked only for a valid number.
    member _.ForNumber(number: PhoneNumber) = decide perNumber number.Digits

    interface IDisposable with
        member _.Dispose() =
            request.Dispose()
            perNumber.Dispose()
            perClient.Dispose()
            ceiling.Dispose()
            numberInterval.Dispose()
            numberDay.Dispose()
