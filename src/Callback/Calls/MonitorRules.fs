namespace Callback.Calls

open System
open Callback.Ami
open Callback.Domain

/// The monitor's clocks: how long it waits for what Asterisk may never send.
type MonitorTiming = {
    /// After an `OriginateResponse Failure`, how long the call waits for its channel's Hangup (which holds
    /// the cause) before it is finalised without it.
    SettleWindow: TimeSpan
    /// A spooled call whose channel has not appeared after this long (Originate timeout + margin) is lost.
    ChannelDeadline: TimeSpan
    /// How often those two deadlines are checked.
    SweepInterval: TimeSpan
    /// How long the writer waits before saving again a move the store failed to save.
    SaveRetryDelay: TimeSpan
}

[<RequireQualifiedAccess>]
module MonitorTiming =
    /// A 2 s settle window, the Originate timeout + 10 s for the channel, checked every second.
    let forOriginate (originateTimeout: TimeSpan) = {
        SettleWindow = TimeSpan.FromSeconds 2.0
        ChannelDeadline = originateTimeout + TimeSpan.FromSeconds 10.0
        SweepInterval = TimeSpan.FromSeconds 1.0
        SaveRetryDelay = TimeSpan.FromSeconds 1.0
    }

/// The pure steps of the monitor, over one tracked call.
[<RequireQualifiedAccess>]
module MonitorRules =

    /// At `at`: settle a call whose Originate failed a settle window ago; a call whose channel never
    /// appeared by the deadline is lost.
    let sweep (timing: MonitorTiming) (at: DateTimeOffset) (tracked: TrackedCall) =
        match tracked.OriginateFailedAt with
        | Some failedAt when at - failedAt >= timing.SettleWindow -> TrackedCall.apply at Settle tracked
        | _ when
            tracked.Call.Legs.IsEmpty
            && not tracked.Recovered
            && at - tracked.CreatedAt >= timing.ChannelDeadline
            ->
            TrackedCall.apply at Lost tracked
        | _ -> tracked

    /// After a reconnect, with `present` the Uniqueids and Linkedids of every channel Asterisk has now:
    /// a call that had channels and has none left is lost (its Hangup was sent while the link was down).
    /// A call whose first channel was made while the link was down gets it from the listing (so the channel
    /// deadline does not lose it); a call without a channel yet is left to that deadline, unless it was
    /// recovered from the store at start-up: then the listing decides, listed or lost. A call that moved
    /// after the listing was `asked` for is left to its events: the listing and the events travel apart,
    /// so a channel made after the listing was taken may already have been folded when it arrives.
    let reconcile (asked: DateTimeOffset) (at: DateTimeOffset) (present: Set<string>) (tracked: TrackedCall) =
        let call = tracked.Call

        let stillThere =
            present.Contains call.ChannelId
            || call.Legs |> Map.exists (fun id _ -> present.Contains id)

        if call.Legs.IsEmpty && present.Contains call.ChannelId then
            let first = {
                Channel = ""
                Uniqueid = call.ChannelId
                Linkedid = call.ChannelId
                CallbackId = call.CallbackId
            }

            {
                TrackedCall.apply at (Ami(Newchannel first)) tracked with
                    Recovered = false
            }
        elif stillThere then
            if tracked.Recovered then
                { tracked with Recovered = false }
            else
                tracked
        elif tracked.UpdatedAt >= asked then
            tracked
        elif call.Legs.IsEmpty && not tracked.Recovered then
            tracked
        else
            TrackedCall.apply at Lost tracked

    /// The Uniqueid and Linkedid of every channel a `CoreShowChannels` listed.
    let presentChannels (items: Message seq) =
        items
        |> Seq.collect (fun item -> [ Message.tryFind "Uniqueid" item; Message.tryFind "Linkedid" item ])
        |> Seq.choose id
        |> Set.ofSeq
