namespace Callback.Calls

open System
open System.Threading
open System.Threading.Tasks
open Microsoft.Extensions.Logging
open Callback.Ami
open Callback.Domain

/// The one long-lived monitor session of the process. Every AMI event is routed to its live calls (the
/// working set) and folded; each change is written through to the store, in order, by one writer, which
/// then publishes the call as stored on the feed; a final call leaves the working set once saved. At
/// start the live calls of the store are recovered; after each (re)connection they are reconciled with
/// `CoreShowChannels`; a timer settles failed Originates and gives up on channels that never appeared.
/// Events are read from a bounded subscription (the session's reader never waits for the monitor), and
/// every change is made under one lock, so the fold sees each call's inputs in order.
[<Sealed>]
type CallMonitor
    (
        supervisor: Supervisor,
        store: ICallStore,
        feed: CallFeed,
        outcomes: OutcomeCounts,
        timing: MonitorTiming,
        time: TimeProvider,
        logger: ILogger,
        retrying: Retrying
    ) =
    let gate = obj ()
    let calls = WorkingSet()
    let stop = new CancellationTokenSource()
    let subscription = supervisor.Subscribe 10000
    let states = supervisor.WatchStates()
    let mutable received = 0L
    let mutable loops: Task list = []
    let mutable writing = Task.CompletedTask

    /// A final call leaves once saved; a call another writer moved leaves at once.
    let leave callId =
        lock gate (fun () -> calls.Remove callId)

    let writer =
        StoreWriter(store, feed, outcomes, leave, timing.SaveRetryDelay, logger, retrying)

    /// Hands the writer every call whose status moved (a new leg alone is not written).
    let written (before: TrackedCall, after: TrackedCall) =
        if after.Call.History.Length <> before.Call.History.Length then
            writer.Move after

    let updateAll (step: TrackedCall -> TrackedCall) =
        lock gate (fun () ->
            for before in calls.Calls do
                let after = step before

                if not (obj.ReferenceEquals(after, before)) then
                    calls.Update after
                    written (before, after))

    let onMessage (message: Message) =
        Interlocked.Increment &received |> ignore

        match CallEvent.tryParse message with
        | Some event -> lock gate (fun () -> calls.Apply(time.GetUtcNow(), event) |> List.iter written)
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

            let asked = time.GetUtcNow()

            match! supervisor.SendList(action, stop.Token) with
            | Ok list ->
                let present = MonitorRules.presentChannels list.Items
                updateAll (MonitorRules.reconcile asked (time.GetUtcNow()) present)
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
                    updateAll (MonitorRules.sweep timing (time.GetUtcNow()))
            with :? OperationCanceledException ->
                ()
        }

    /// Follows `tracked` from now on, the store holding it as `expected` with `saved` transitions.
    let follow (tracked: TrackedCall) (replace: bool) =
        lock gate (fun () ->
            if replace then
                calls.Remove tracked.CallId

            if calls.Add tracked then
                let expected = {
                    Attempt = tracked.Attempt
                    State = Store.stateOf tracked.Call.Status
                }

                writer.Follow(tracked.CallId, expected, tracked.Call.History.Length))

    /// The store's live calls, followed again (each left to the first reconcile); a store that cannot be
    /// read is logged and the monitor starts without them.
    let recover () =
        task {
            try
                let! live = store.ListLive CancellationToken.None

                for stored in live do
                    follow (TrackedCall.recovered stored) false

                logger.LogInformation("Call monitor: {Count} live calls recovered from the store", live.Length)
            with e ->
                logger.LogError("Call monitor: the live calls could not be read from the store: {Error}", e.Message)
        }

    /// A monitor without retries: every final attempt ends its call.
    new(supervisor, store, feed, outcomes, timing, time, logger) =
        new CallMonitor(supervisor, store, feed, outcomes, timing, time, logger, Retries.never)

    /// Recovers the store's live calls, then starts the writer, the monitor's loops and the session.
    member _.Start() =
        recover().Wait()

        writing <- Task.Run(fun () -> writer.Run())

        loops <- [
            Task.Run<unit> readEvents
            Task.Run<unit> watchStates
            Task.Run<unit> sweepLoop
        ]

        supervisor.Start()

    /// Follows attempt `attempt` of `callId`, which the store has just recorded as queued at `at`; called
    /// before its Originate is sent, so that none of its events can come first. It replaces a copy that
    /// recovery may have loaded meanwhile: this one is about to be dialled, not left over.
    member _.Track(callId: CallId, attempt: Attempt, at: DateTimeOffset) =
        follow (TrackedCall.queued callId attempt at) true

    /// Forgets a call whose Originate Asterisk refused (it never made a channel).
    member _.Forget(callId: CallId) =
        lock gate (fun () ->
            calls.Remove callId
            writer.Unfollow callId)

    /// The live calls followed now (final ones until they are saved).
    member _.Live = lock gate (fun () -> calls.Calls)

    /// Checks the settle window and channel deadline now (the timer does so every `SweepInterval`).
    member _.Sweep() =
        updateAll (MonitorRules.sweep timing (time.GetUtcNow()))

    /// AMI messages read from the session so far.
    member _.EventsReceived = Interlocked.Read &received

    /// Events dropped because the monitor fell more than 10,000 behind.
    member _.DroppedEvents = subscription.Dropped

    /// Whether the session is logged in now.
    member _.Connected = supervisor.State = LinkState.Ready

    /// Reconnections of the session after a lost link.
    member _.Reconnects = supervisor.Reconnects

    /// Stops the loops, saves what is queued, then stops the session.
    member _.StopAsync() : Task =
        task {
            stop.Cancel()
            do! Task.WhenAll loops
            writer.Complete()
            do! writing
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
    let create
        (settings: Callback.Settings)
        (store: ICallStore)
        (feed: CallFeed)
        (outcomes: OutcomeCounts)
        (retrying: Retrying)
        (loggers: ILoggerFactory)
        =
        let logger = loggers.CreateLogger "Callback.Calls.Monitor"

        match settings.Monitor with
        | None ->
            logger.LogInformation "No Monitor__Username: calls are not tracked (their status stays queued)."
            None
        | Some monitor ->
            let supervisor =
                new Supervisor(options settings.Ami monitor, loggers.CreateLogger "Callback.Ami.Supervisor")

            let timing = MonitorTiming.forOriginate settings.Originate.Timeout
            Some(new CallMonitor(supervisor, store, feed, outcomes, timing, TimeProvider.System, logger, retrying))
