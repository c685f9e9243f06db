namespace Callback.Ami

open System
open System.Threading
open System.Threading.Channels
open Microsoft.Extensions.Logging
open Microsoft.Extensions.Logging.Abstractions

/// The library's classes take an `ILogger` from C# callers, who may pass null: that means "log nothing".
[<RequireQualifiedAccess>]
module internal Loggers =
    let orNull (logger: ILogger) =
        if isNull logger then
            NullLogger.Instance :> ILogger
        else
            logger

/// One subscriber's view of the unsolicited events: a bounded channel read at the subscriber's pace.
/// When it is full the OLDEST event is dropped to make room (a monitor wants the newest state), the drop
/// is counted in `Dropped`, and the hub logs one warning when a burst of drops starts and one when it ends.
/// The reader loop never waits for a subscriber: Asterisk drops a session whose writes stall 100 ms.
[<Sealed; AllowNullLiteral>]
type EventSubscription internal (capacity: int, unsubscribe: EventSubscription -> unit) as this =
    let mutable dropped = 0L
    let mutable burstStart = 0L

    let channel =
        Channel.CreateBounded<Message>(
            BoundedChannelOptions(
                capacity,
                FullMode = BoundedChannelFullMode.DropOldest,
                SingleReader = false,
                SingleWriter = true
            ),
            (fun (_: Message) -> Interlocked.Increment &dropped |> ignore)
        )

    /// The events, in arrival order: `ReadAllAsync` for `await foreach`, `WaitToReadAsync`/`TryRead`.
    /// It completes when the subscription is disposed or, for a session's own subscription, the session ends.
    member _.Reader: ChannelReader<Message> = channel.Reader

    /// How many events were dropped because this subscriber fell `Capacity` events behind.
    member _.Dropped = Interlocked.Read &dropped

    member _.Capacity = capacity

    /// Offers one event; returns how many were dropped by this write (0 or 1). Called by the reader only.
    member internal _.Offer(message: Message) =
        let before = Interlocked.Read &dropped
        channel.Writer.TryWrite message |> ignore
        Interlocked.Read &dropped - before

    /// The drop count when the current burst started, or -1 when no burst is under way (reader only).
    member internal _.BurstStart
        with get () = burstStart
        and set v = burstStart <- v

    member internal _.Complete() = channel.Writer.TryComplete() |> ignore

    interface IDisposable with
        member _.Dispose() =
            unsubscribe this
            channel.Writer.TryComplete() |> ignore

/// The subscribers of one AMI link, which may outlive its sessions (a supervisor keeps one hub across
/// reconnections). Only the reader loop of the current session publishes.
[<Sealed; AllowNullLiteral>]
type EventHub(logger: ILogger) =
    let logger = Loggers.orNull logger

    let gate = obj ()
    let mutable subscribers: EventSubscription[] = [||]
    let mutable received = 0L

    let unsubscribe (s: EventSubscription) =
        lock gate (fun () -> subscribers <- subscribers |> Array.filter (fun x -> not (obj.ReferenceEquals(x, s))))

    let deliver (s: EventSubscription) (message: Message) =
        let droppedNow = s.Offer message

        if droppedNow > 0L && s.BurstStart < 0L then
            s.BurstStart <- s.Dropped - droppedNow

            logger.LogWarning(
                "AMI events: a subscriber is {Capacity} events behind, dropping the oldest (dropped so far: {Dropped})",
                s.Capacity,
                s.Dropped
            )
        elif droppedNow = 0L && s.BurstStart >= 0L then
            logger.LogWarning(
                "AMI events: the subscriber caught up after {Burst} dropped events (dropped so far: {Dropped})",
                s.Dropped - s.BurstStart,
                s.Dropped
            )

            s.BurstStart <- -1L

    new() = EventHub(NullLogger.Instance)

    /// A new subscriber that keeps at most `capacity` unread events (see `EventSubscription`).
    member _.Subscribe(capacity: int) =
        if capacity < 1 then
            invalidArg (nameof capacity) "a subscription holds at least one event"

        let s = new EventSubscription(capacity, unsubscribe)
        s.BurstStart <- -1L
        lock gate (fun () -> subscribers <- Array.append subscribers [| s |])
        s

    /// How many events were published so far.
    member _.Received = Interlocked.Read &received

    /// Gives one event to every subscriber, never waiting for any of them.
    member _.Publish(message: Message) =
        Interlocked.Increment &received |> ignore

        for s in subscribers do
            deliver s message

    /// Ends every subscription (their readers complete once drained).
    member _.Complete() =
        for s in lock gate (fun () -> subscribers) do
            s.Complete()
