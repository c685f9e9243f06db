namespace Callback

open Microsoft.AspNetCore.Http
open Prometheus
open Callback.Calls
open Callback.Http

/// The sidecar's Prometheus metrics, in a registry of its own (not prometheus-net's static default), so
/// each app, and each test's app, counts only its own requests.
[<Sealed>]
type CallbackMetrics(gate: SessionGate) =
    let registry = Metrics.NewCustomRegistry()
    let factory = Metrics.WithCustomRegistry registry

    let labelled (names: string list) =
        CounterConfiguration(LabelNames = Array.ofList names)

    let callbacks =
        factory.CreateCounter(
            "callback_callbacks_total",
            "Callbacks that ran the AMI pipeline, by HTTP status and the stage that failed (none: every stage passed).",
            labelled [ "status"; "failed_stage" ]
        )

    let refusals =
        factory.CreateCounter(
            "callback_refusals_total",
            "Requests to POST /callback refused without any AMI traffic, by reason.",
            labelled [ "reason" ]
        )

    let scheduled =
        factory.CreateCounter(
            "callback_scheduled_total",
            "Callbacks kept for later (202): outside opening hours, or for the callAt the visitor booked."
        )

    let sessionSeconds =
        factory.CreateHistogram(
            "callback_ami_session_duration_seconds",
            "AMI sessions from connect to Logoff (the wait for a session slot not included).",
            HistogramConfiguration(Buckets = [| 0.01; 0.025; 0.05; 0.1; 0.25; 0.5; 1.0; 2.5; 5.0; 10.0; 25.0 |])
        )

    let inUse =
        factory.CreateGauge("callback_ami_sessions_in_use", "AMI sessions open now (at most Ami__MaxSessions).")

    let queued =
        factory.CreateGauge(
            "callback_ami_sessions_queued",
            "Callbacks waiting for an AMI session slot now (at most Ami__MaxQueued)."
        )

    let connected =
        factory.CreateGauge(
            "callback_monitor_connected",
            "1 while the call monitor's AMI session is logged in, else 0."
        )

    let reconnects =
        factory.CreateCounter(
            "callback_monitor_reconnects_total",
            "Times the call monitor's AMI session logged in again after losing its link."
        )

    let received =
        factory.CreateCounter("callback_monitor_events_received_total", "AMI messages the call monitor read.")

    let dropped =
        factory.CreateCounter(
            "callback_monitor_events_dropped_total",
            "AMI events dropped because the call monitor fell more than its subscription's 10,000 behind."
        )

    let calls =
        factory.CreateCounter(
            "callback_calls_total",
            "Calls that reached their outcome in the store, by outcome.",
            labelled [ "outcome" ]
        )

    let outcomes = OutcomeCounts()
    let mutable monitor: CallMonitor option = None

    /// Copies the monitor's and the store's own counts into the series, at each scrape.
    let collect () =
        for name in Names.outcomes do
            calls.WithLabels(name).IncTo(float (outcomes.Of name))

        match monitor with
        | Some m ->
            connected.Set(if m.Connected then 1.0 else 0.0)
            reconnects.IncTo(float m.Reconnects)
            received.IncTo(float m.EventsReceived)
            dropped.IncTo(float m.DroppedEvents)
        | None -> connected.Set 0.0

    do
        // Every reason's series exists from the start at 0, so a rate() or an alert sees its first refusal.
        for reason in [ Invalid; RateLimited; Origin; Policy; Busy; ShuttingDown; Unschedulable ] do
            refusals.WithLabels(RefusalReason.label reason) |> ignore

        gate.SessionEnded.Add(fun duration -> sessionSeconds.Observe duration.TotalSeconds)

        registry.AddBeforeCollectCallback(fun () ->
            inUse.Set(float gate.InUse)
            queued.Set(float gate.Queued)
            collect ())

    static let failedStage failure =
        match failure with
        | None -> "none"
        | Some(SocketFailed _)
        | Some NoFreeSession -> "socket"
        | Some(LoginFailed _) -> "login"
        | Some NotRecorded
        | Some(OriginateFailed _) -> "originate"
        | Some(LogoffFailed _) -> "logoff"

    /// Where `/metrics` reads from.
    member _.Registry = registry

    /// The calls that reached their outcome, counted by whoever saved it (the monitor, a refused Originate).
    member _.Outcomes = outcomes

    /// Reports `callMonitor`'s link and events from now on (without a monitor: connected 0, nothing else).
    member _.Observe(callMonitor: CallMonitor) = monitor <- Some callMonitor

    /// Counts one finished request to `POST /callback`, once: from what a handler noted (`Verdict`), else
    /// from the final status (a 4xx nobody explained is bad input: `invalid`).
    member _.Count(ctx: HttpContext) =
        let refused reason =
            refusals.WithLabels(RefusalReason.label reason).Inc()

        match Verdict.ofContext ctx with
        | Some(Placed { Failure = Some NoFreeSession }) -> refused Busy
        | Some(Placed outcome) ->
            callbacks.WithLabels(string ctx.Response.StatusCode, failedStage outcome.Failure).Inc()
        | Some(Refused reason) -> refused reason
        | Some Kept -> scheduled.Inc()
        | None when ctx.Response.StatusCode = 403 -> refused Origin
        | None when ctx.Response.StatusCode = 429 -> refused RateLimited
        | None when ctx.Response.StatusCode >= 400 && ctx.Response.StatusCode < 500 -> refused Invalid
        | None -> ()
