namespace Callback.Calls

open System
open System.Threading
open System.Threading.Tasks
open Microsoft.Extensions.Logging
open Callback.Ami
open Callback.Domain

/// What the pipeline tells the call monitor: an attempt about to be spooled (before its Originate is sent,
/// so none of its events can arrive first), and an attempt whose Originate was not accepted.
type CallTracking = {
    Spooling: CallId -> Attempt -> CallbackRequest -> unit
    Refused: CallId -> unit
}

[<RequireQualifiedAccess>]
module CallTracking =
    /// No monitor: nothing is tracked.
    let none = {
        Spooling = fun _ _ _ -> ()
        Refused = ignore
    }

/// The monitor's clocks: how long it waits for what Asterisk may never send.
type MonitorTiming = {
    /// After an `OriginateResponse Failure`, how long the call waits for its channel's Hangup (which holds
    /// the cause) before it is finalised without it.
    SettleWindow: TimeSpan
    /// A spooled call whose channel has not appeared after this long (Originate timeout + margin) is lost.
    ChannelDeadline: TimeSpan
    /// How often those two deadlines are checked.
    SweepInterval: TimeSpan
}

[<RequireQualifiedAccess>]
module MonitorTiming =
    /// A 2 s settle window, the Originate timeout + 10 s for the channel, checked every second.
    let forOriginate (originateTimeout: TimeSpan) = {
        SettleWindow = TimeSpan.FromSeconds 2.0
        ChannelDeadline = originateTimeout + TimeSpan.FromSeconds 10.0
        SweepInterval = TimeSpan.FromSeconds 1.0
    }

/// The pure steps of the monitor, over one tracked call.
[<RequireQualifiedAccess>]
module MonitorRules =

    /// At `at`: settle a call whose Originate failed a settle window ago; a call whose channel never
    /// appeared by the deadline is lost.
    let sweep (timing: MonitorTiming) (at: DateTimeOffset) (tracked: TrackedCall) =
        match tracked.OriginateFailedAt with
        | Some failedAt when at - failedAt >= timing.SettleWindow -> TrackedCall.apply at Settle tracked
        | _ when tracked.Call.Legs.IsEmpty && at - tracked.CreatedAt >= timing.ChannelDeadline ->
            TrackedCall.apply at Lost tracked
        | _ -> tracked

    /// After a reconnect, with `present` the Uniqueids and Linkedids of every channel Asterisk has now:
    /// a call that had channels and has none left is lost (its Hangup was sent while the link was down).
    /// A call whose first channel was made while the link was down gets it from the listing (so the channel
    /// deadline does not lose it); a call without a channel yet is left to that deadline.
    let reconcile (at: DateTimeOffset) (present: Set<string>) (tracked: TrackedCall) =
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

            TrackedCall.apply at (Ami(Newchannel first)) tracked
        elif call.Legs.IsEmpty || stillThere then
            tracked
        else
            TrackedCall.apply at Lost tracked

    /// The Uniqueid and Linkedid of every channel a `CoreShowChannels` listed.
    let presentChannels (items: Message seq) =
        items
        |> Seq.collect (fun item -> [ Message.tryFind "Uniqueid" item; Message.tryFind "Linkedid" item ])
        |> Seq.choose id
        |> Set.ofSeq

/// The one long-lived monitor session of the process: every AMI event is folded into the calls of the
/// registry; after each (re)connection the live calls are reconciled with `CoreShowChannels`; a timer
/// settles failed Originates and gives up on channels that never appeared. Events are read from a bounded
/// subscription (the session's reader never waits for the monitor); every change to a call is made under
/// one lock, so the fold sees each call's inputs in order.
[<Sealed>]
type CallMonitor
    (supervisor: Supervisor, registry: ICallRegistry, timing: MonitorTiming, time: TimeProvider, logger: ILogger) =
    let gate = obj ()
    let stop = new CancellationTokenSource()
    let subscription = supervisor.Subscribe 10000
    let states = supervisor.WatchStates()
    let mutable tasks: Task list = []

    let updateLive (step: TrackedCall -> TrackedCall) =
        lock gate (fun () ->
            for tracked in registry.Live() do
                let next = step tracked

                if not (obj.ReferenceEquals(next, tracked)) then
                    registry.Save next)

    let onMessage (message: Message) =
        match CallEvent.tryParse message with
        | Some event -> updateLive (TrackedCall.apply (time.GetUtcNow()) (Ami event))
        | None -> ()

    let readEvents () =
        task {
            let reader = subscription.Reader

            try
                while! reader.WaitToReadAsync stop.Token do
                    let mutable message = Unchecked.defaultof<Message>

                    while reader.TryRead &message do
                        onMessage message
            with :? OperationCanceledException ->
                ()
        }

    let reconcile () =
        task {
            let action = {
                Name = "CoreShowChannels"
                ActionId = Actions.newActionId ()
                Headers = []
            }

            match! supervisor.SendList(action, stop.Token) with
            | Ok list ->
                let present = MonitorRules.presentChannels list.Items
                updateLive (MonitorRules.reconcile (time.GetUtcNow()) present)
                logger.LogInformation("Call monitor: reconciled with {Channels} channels", list.Items.Count)
            | Result.Error e ->
                logger.LogWarning("Call monitor: CoreShowChannels failed: {Error}", ActionError.describe e)
        }

    let watchStates () =
        task {
            try
                while! states.WaitToReadAsync stop.Token do
                    let mutable change = Unchecked.defaultof<LinkStateChange>

                    while states.TryRead &change do
                        if change.State = LinkState.Ready then
                            do! reconcile ()
            with :? OperationCanceledException ->
                ()
        }

    let sweepLoop () =
        task {
            use timer = new PeriodicTimer(timing.SweepInterval, time)

            try
                while! timer.WaitForNextTickAsync stop.Token do
                    updateLive (MonitorRules.sweep timing (time.GetUtcNow()))
            with :? OperationCanceledException ->
                ()
        }

    /// The calls the monitor tracks (what `GET /calls/{id}` reads).
    member _.Registry = registry

    /// Starts the session and the monitor's loops.
    member _.Start() =
        tasks <- [
            Task.Run<unit> readEvents
            Task.Run<unit> watchStates
            Task.Run<unit> sweepLoop
        ]

        supervisor.Start()

    /// Tracks attempt `attempt` of `callId` from now on; called just before its Originate is sent, so that
    /// none of its events can come first.
    member _.Track(callId: CallId, attempt: Attempt, language: string, maskedNumber: string) =
        TrackedCall.queued callId attempt language maskedNumber (time.GetUtcNow())
        |> registry.Add

    /// Forgets a call whose Originate Asterisk refused (it never made a channel).
    member _.Forget(callId: CallId) = registry.Remove callId

    /// Checks the settle window and channel deadline now (the timer does so every `SweepInterval`).
    member _.Sweep() =
        updateLive (MonitorRules.sweep timing (time.GetUtcNow()))

    /// Events dropped because the monitor fell more than 10,000 behind.
    member _.DroppedEvents = subscription.Dropped

    /// Stops the loops, then the session.
    member _.StopAsync() : Task =
        task {
            stop.Cancel()
            do! Task.WhenAll tasks
            do! supervisor.StopAsync()
            (subscription :> IDisposable).Dispose()
        }

/// The monitor of a configured sidecar: its own user, on `Ami__`'s host, port and TLS.
[<RequireQualifiedAccess>]
module MonitorSession =

    /// The read classes the fold needs; the user's `read` (and its eventfilter lines) narrow it further.
    let events = EventMask.Of("call", "dialplan", "system")

    let options (ami: Callback.AmiSettings) (monitor: Callback.MonitorSettings) =
        let useTls, roots =
            match ami.Endpoint.Transport with
            | Tls roots -> true, Array.ofList roots
            | PlainTcp -> false, [||]

        SupervisorOptions(
            Host = ami.Endpoint.Host,
            Port = ami.Endpoint.Port,
            UseTls = useTls,
            TrustedRoots = roots,
            ConnectTimeout = ami.Endpoint.ConnectTimeout,
            ResponseTimeout = ami.ResponseTimeout,
            Username = monitor.Username,
            Secret = monitor.Secret.Reveal(),
            Events = events
        )

    /// The monitor for `settings`, or None without `Monitor__Username` (logged once, here).
    let create (settings: Callback.Settings) (registry: ICallRegistry) (loggers: ILoggerFactory) =
        let logger = loggers.CreateLogger "Callback.Calls.Monitor"

        match settings.Monitor with
        | None ->
            logger.LogInformation "No Monitor__Username: calls are not tracked (their status stays queued)."
            None
        | Some monitor ->
            let supervisor =
                new Supervisor(options settings.Ami monitor, loggers.CreateLogger "Callback.Ami.Supervisor")

            let timing = MonitorTiming.forOriginate settings.Originate.Timeout
            Some(new CallMonitor(supervisor, registry, timing, TimeProvider.System, logger))

    /// What the pipeline tells `monitor` of each attempt.
    let tracking (monitor: CallMonitor) : CallTracking = {
        Spooling =
            fun callId attempt request ->
                monitor.Track(callId, attempt, Language.code request.Language, PhoneNumber.masked request.PhoneNumber)
        Refused = monitor.Forget
    }
