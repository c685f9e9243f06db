namespace Callback.Http

open System
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Diagnostics.HealthChecks
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Routing
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging
open Prometheus
open Callback
open Callback.Callbacks
open Callback.Domain

/// What the routes share for the process's life: made once at start-up, disposed at shutdown after the
/// last callback (see `ShutdownDrain`).
type CallbackServices = {
    /// Bounds the AMI sessions of all requests together.
    Gate: SessionGate
    Limits: CallbackLimits
    InFlight: CallbacksInFlight
    Metrics: CallbackMetrics
    /// What the pipeline does around each Originate: records the call in the store, hands it to the monitor.
    Tracking: Callback.Calls.CallTracking
    /// Where every call is kept (`Data__Path`): what `GET /calls/{id}` reads.
    Store: Callback.Calls.ICallStore
    /// Each call's snapshots once saved: what `GET /calls/{id}/events` streams.
    Feed: Callback.Calls.CallFeed
    /// Whether a monitor follows the calls (`Monitor__Username`); without one a call stays `queued`.
    Monitored: bool
    /// Records a valid request before any AMI traffic and places it now (None) or at its time (Some T),
    /// or answers the call it duplicates (`CallbackRequests.Submit`).
    Submit: CallbackRequest -> DateTimeOffset option -> Task<RequestOutcome>
    /// The call a request would duplicate now, checked before the rate limits.
    Duplicate: CallbackRequest -> Task<(Callback.Calls.StoredCall * StageResults) option>
}

/// The routes, each a handler chain turned into an ASP.NET Core endpoint.
[<RequireQualifiedAccess>]
module Endpoints =

    let private toDelegate (handler: HttpHandler) =
        RequestDelegate(fun ctx -> handler finish ctx :> Task)

    let private masked = PhoneNumber.masked

    /// One line per callback: the client (as the trusted proxy reported it), the masked number, the stages.
    /// A spooled call is named by its id's first 8 hex digits only: the whole id reads its status.
    let private report (logger: ILogger) (ctx: HttpContext) (request: CallbackRequest) (outcome: CallbackOutcome) =
        let s = outcome.Stages

        if outcome.SkippedMessages > 0L then
            logger.LogWarning(
                "Callback to {Number}: skipped {Count} AMI messages over Ami__MaxMessageBytes",
                masked request.PhoneNumber,
                outcome.SkippedMessages
            )

        let client = string ctx.Connection.RemoteIpAddress

        match outcome.Failure with
        | None ->
            logger.LogInformation(
                "Callback {CallId} to {Number} ({Language}) for {Client} spooled",
                outcome.CallId
                |> Option.bind CallId.tryParse
                |> Option.map CallId.short
                |> Option.toObj,
                masked request.PhoneNumber,
                Language.code request.Language,
                client
            )
        | Some failure ->
            logger.LogWarning(
                "Callback to {Number} ({Language}) for {Client}: socket={Socket} amiLogin={AmiLogin} amiOrig={AmiOrig} amiLogoff={AmiLogoff} callSpooled={CallSpooled}, failed: {Failure}",
                masked request.PhoneNumber,
                Language.code request.Language,
                client,
                s.Socket,
                s.AmiLogin,
                s.AmiOrig,
                s.AmiLogoff,
                s.CallSpooled,
                StageFailure.describe failure
            )

    /// An embedded resource as the body, for the OpenAPI document.
    let private resource (name: string) (contentType: string) : HttpHandler =
        fun next ctx ->
            task {
                use stream = typeof<Settings>.Assembly.GetManifestResourceStream name

                ctx.Response.ContentType <- contentType
                do! stream.CopyToAsync ctx.Response.Body
                return! next ctx
            }

    /// The public contract as OpenAPI 3.1, the same document as `src/Callback/openapi.json`.
    let private openApi = resource "openapi.json" "application/json; charset=utf-8"

    /// Counts every request to the handler in the metrics, once, when its answer is written.
    let private counted (metrics: CallbackMetrics) (handler: HttpHandler) : HttpHandler =
        fun next ctx ->
            task {
                let! result = handler next ctx
                metrics.Count ctx
                return result
            }

    /// `POST /callback`: the abuse checks that need no body (origin, shutdown, the client's limit), then
    /// bind → validate (`callAt` and the hours too) → destination policy → a duplicate's call → the
    /// number's and the global limits → record, then place now or keep for later (202) → answer.
    let private callback
        (settings: Settings)
        (hours: HoursSettings)
        (scheduling: Scheduling)
        (services: CallbackServices)
        (logger: ILogger)
        : HttpHandler =
        let place =
            Handlers.submitCallback (fun request -> services.Submit request None) (fun ctx request outcome ->
                Verdict.placed outcome ctx
                report logger ctx request outcome)

        Protection.checkOrigin settings.Protection.AllowedOrigins
        >=> Protection.whileAccepting services.InFlight
        >=> Protection.limitClient services.Limits
        >=> Handlers.bindCallback (
            Handlers.validateCallback hours.Hours scheduling (fun (request, placement) ->
                Handlers.checkDestination
                    settings.Destination
                    (Handlers.answerDuplicate
                        services.Duplicate
                        (Protection.limitCall
                            services.Limits
                            (Booking.placeOrSchedule hours scheduling logger place placement)))
                    request)
        )
        |> counted services.Metrics

    /// `GET /calls/{callId}` and `GET /calls/{callId}/events`: the status API. Not rate-limited like
    /// callbacks (it sends nothing to Asterisk); the streams are bounded by `CallStreams`.
    let private mapCalls (app: WebApplication) (services: CallbackServices) =
        let options = app.Services.GetRequiredService<CallStreamOptions>()
        let streams = CallStreams options

        let open' =
            Metrics
                .WithCustomRegistry(services.Metrics.Registry)
                .CreateGauge(
                    "callback_status_streams_open",
                    "Event streams (GET /calls/{callId}/events) open now: bounded in all and per call."
                )

        services.Metrics.Registry.AddBeforeCollectCallback(fun () -> open'.Set(float streams.Open))

        let sources = {
            Store = services.Store
            Feed = services.Feed
            Tracking = services.Monitored
        }

        app.MapGet("/calls/{callId}", toDelegate (CallsEndpoints.status sources))
        |> ignore

        app.MapGet(
            "/calls/{callId}/events",
            toDelegate (CallsEndpoints.events sources streams options app.Lifetime.ApplicationStopping)
        )
        |> ignore

    /// `POST /callback`; `GET /calls/{callId}` and its `/events`; `GET /slots`; `GET /healthz` (liveness only: it never touches AMI); `GET /readyz` (the checks
    /// tagged `ready`: Asterisk answers); `GET /metrics` (Prometheus); `GET /openapi.json`; in demo mode,
    /// `GET /`.
    let map (app: WebApplication) (settings: Settings) (hours: HoursSettings) (services: CallbackServices) =
        let scheduling = app.Services.GetRequiredService<Scheduling>()

        app.MapPost("/callback", toDelegate (callback settings hours scheduling services app.Logger))
        |> ignore

        // GET (and HEAD) only, like every other read: another method answers 405 in the contract.
        let reads = HttpMethodMetadata [ "GET"; "HEAD" ]

        app.MapHealthChecks("/healthz", HealthCheckOptions(Predicate = fun _ -> false)).WithMetadata(reads)
        |> ignore

        app
            .MapHealthChecks("/readyz", HealthCheckOptions(Predicate = fun check -> check.Tags.Contains "ready"))
            .WithMetadata(reads)
        |> ignore

        app.MapMetrics("/metrics", services.Metrics.Registry).WithMetadata(reads)
        |> ignore

        app.MapGet("/openapi.json", toDelegate openApi) |> ignore
        // Not limited like callbacks: it reads no store and sends nothing to Asterisk.
        app.MapGet("/slots", toDelegate (Booking.slots hours scheduling)) |> ignore
        mapCalls app services

        if settings.DemoEnabled then
            // The visitor's form, for trying the sidecar in a browser.
            app.MapGet("/", toDelegate DemoPage.serve) |> ignore
