module Callback.Program

open System
open System.Net.Http
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.HttpOverrides
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.DependencyInjection.Extensions
open Microsoft.Extensions.Hosting
open Microsoft.Extensions.Logging
open FsToolkit.ErrorHandling
open Callback.Ami
open Callback.Callbacks
open Callback.Http

/// Trust `X-Forwarded-For` and `-Proto` only from the configured proxies (default: loopback), so a
/// visitor cannot choose the address the sidecar logs by sending the header themselves.
let private forwardedHeaders (proxy: ProxySettings) (options: ForwardedHeadersOptions) =
    options.ForwardedHeaders <- ForwardedHeaders.XForwardedFor ||| ForwardedHeaders.XForwardedProto

    if not (List.isEmpty proxy.KnownProxies && List.isEmpty proxy.KnownNetworks) then
        options.KnownProxies.Clear()
        options.KnownIPNetworks.Clear()
        proxy.KnownProxies |> List.iter options.KnownProxies.Add
        proxy.KnownNetworks |> List.iter options.KnownIPNetworks.Add

/// Calls for later through the durable requests: `Schedule` accepts the request due at its instant (a
/// duplicate answers with its own call), `WaitingAt` counts the attempts already due within a day of the
/// opening. `submitting` is the request path once the tracking is made (`startTracking`).
let private durableScheduling
    (requests: Calls.IRequestStore)
    (submitting: (Domain.CallbackRequest -> DateTimeOffset option -> Threading.Tasks.Task<RequestOutcome>) ref)
    : Scheduling = {
    Clock = TimeProvider.System
    Schedule =
        fun request at _ ->
            task {
                match! submitting.Value request (Some(at.ToDateTimeOffset())) with
                | Scheduled(callId, due) ->
                    return
                        Ok {
                            Domain.ScheduledCall.CallId = callId
                            Domain.ScheduledCall.ScheduledFor = NodaTime.Instant.FromDateTimeOffset due
                        }
                | DuplicateOf(call, _) ->
                    let due = call.ScheduledFor |> Option.defaultValue call.UpdatedAt

                    return
                        Ok {
                            Domain.ScheduledCall.CallId = call.CallId
                            Domain.ScheduledCall.ScheduledFor = NodaTime.Instant.FromDateTimeOffset due
                        }
                | NotAccepted -> return Error "the store could not record it"
                | PlacedNow _ -> return Error "it was placed now"
            }
    WaitingAt =
        fun opening cancel ->
            let from = opening.ToDateTimeOffset()
            requests.CountDue(from, from.AddDays 1.0, cancel)
}

/// The process-wide services of the callback routes, and their part in start-up and shutdown: the
/// readiness check, the drain that lets callbacks in flight finish, a shutdown timeout long enough for it.
let private callbackServices
    (builder: WebApplicationBuilder)
    (settings: Settings)
    (data: DataSettings)
    (store: Calls.ICallStore, requests: Calls.IRequestStore, closeStore: IDisposable)
    submitting
    =
    let gate = new SessionGate(settings.Ami.MaxSessions, settings.Ami.MaxQueued)
    let limits = new CallbackLimits(settings.Protection)
    let inFlight = CallbacksInFlight()
    let longest = CallbackDuration.longest settings.Ami

    let readiness =
        new AsteriskReadiness(settings.Ami.Endpoint, TimeSpan.FromSeconds 5.0, inFlight, TimeProvider.System)

    builder.Services.AddHealthChecks().AddCheck("asterisk", readiness, tags = [ "ready" ])
    |> ignore

    builder.Services.AddHostedService(fun services ->
        new ShutdownDrain(
            inFlight,
            longest,
            [ gate; limits; readiness; closeStore ],
            services.GetRequiredService<IHostApplicationLifetime>()
        ))
    |> ignore

    builder.Services.Configure<HostOptions>(fun (o: HostOptions) ->
        o.ShutdownTimeout <- ShutdownTimeout.forCallbacks longest)
    |> ignore

    let feed = Calls.CallFeed()

    // Several replicas on one PostgreSQL: a stream here follows the moves any of them saves.
    match store with
    | :? Calls.PostgresCallStore as postgres ->
        builder.Services.AddHostedService(fun services ->
            new Calls.ReplicaMoves(
                postgres,
                feed,
                TimeProvider.System,
                services.GetRequiredService<ILoggerFactory>().CreateLogger "Callback.Calls.ReplicaMoves"
            ))
        |> ignore
    | _ -> ()

    builder.Services.AddSingleton<Calls.ICallStore> store |> ignore
    builder.Services.AddSingleton<Calls.CallFeed> feed |> ignore
    // Unless a test chose a shorter heartbeat before the build.
    builder.Services.TryAddSingleton<CallStreamOptions> CallStreamOptions.defaults
    // Calls for later are kept in the store as due attempts; unless a test gave its own clock and scheduler.
    builder.Services.TryAddSingleton<Scheduling>(durableScheduling requests submitting)

    builder.Services.AddHostedService(fun services ->
        new Calls.CallRetention(
            store,
            data.Retention,
            TimeProvider.System,
            services.GetRequiredService<ILoggerFactory>().CreateLogger "Callback.Calls.Retention"
        ))
    |> ignore

    {
        Gate = gate
        Limits = limits
        InFlight = inFlight
        Metrics = CallbackMetrics gate
        Tracking = Calls.CallTracking.none
        Store = store
        Feed = feed
        Monitored = settings.Monitor.IsSome
        // Until the tracking is made (`startTracking`), before the first request.
        Submit = fun _ _ -> Threading.Tasks.Task.FromResult NotAccepted
        Duplicate = fun _ -> Threading.Tasks.Task.FromResult None
    }

/// The call store `data` names, opened (and migrated) before the app starts, with the numbers' key: a
/// sidecar that cannot keep its calls does not take callbacks. With webhooks, the outbox rides on its
/// transactions (SQLite only, so far). The attempts a previous process had claimed but not sent are due
/// again (it died before sending anything; with PostgreSQL, only those whose lease is over). Answers the
/// store as calls and as requests, what closes it, the SQLite store the delivery reads, and the key.
let private openStore (data: DataSettings) (outbox: Calls.ISqliteWriteHook option) =
    let cancel = Threading.CancellationToken.None

    let released (requests: Calls.IRequestStore) =
        requests.ReleaseClaimed(DateTimeOffset.UtcNow, cancel).Result |> ignore

    match data.Store, outbox with
    | Sqlite directory, _ ->
        let opening =
            match outbox with
            | Some hook -> Calls.SqliteCallStore.Open(directory, cancel, hook)
            | None -> Calls.SqliteCallStore.Open(directory, cancel)

        result {
            let! store = opening.Result
            let! key = Calls.NumberKey.load data.NumberKey directory
            released store

            let parts =
                (store :> Calls.ICallStore), (store :> Calls.IRequestStore), (store :> IDisposable)

            return parts, Some store, key
        }
        |> Result.mapError List.singleton
    | Postgres _, Some _ ->
        Error [
            "Webhooks__Url needs Data__Provider=sqlite for now: the webhook outbox is not in the PostgreSQL store yet."
        ]
    | Postgres connectionString, None ->
        result {
            // Required with PostgreSQL (DataSettings): no key file is read or made.
            let! key =
                match data.NumberKey with
                | Some secret -> Calls.NumberKey.ofSecret secret
                | None -> Error "Data__NumberKey is required with Data__Provider=postgres."

            let! store = Calls.PostgresCallStore.Open(connectionString.Reveal(), cancel).Result
            released store

            let parts =
                (store :> Calls.ICallStore), (store :> Calls.IRequestStore), (store :> IDisposable)

            return parts, None, key
        }
        |> Result.mapError List.singleton

/// With `Webhooks__Url`: the delivery loop, started and stopped with the app, reporting in the app's
/// metrics registry.
let private webhookDelivery
    (builder: WebApplicationBuilder)
    (webhooks: Webhooks.WebhookSettings)
    (signal: Webhooks.OutboxSignal)
    (store: Calls.SqliteCallStore)
    (services: CallbackServices)
    =
    let metrics = Webhooks.WebhookMetrics services.Metrics.Registry

    builder.Services.AddHostedService(fun provider ->
        new Webhooks.WebhookDelivery(
            webhooks,
            (fun cancel -> store.Connect cancel),
            Webhooks.WebhookDelivery.CreateClient(),
            // A test's clock when it registered one, else the system's.
            (provider.GetService<TimeProvider>()
             |> Option.ofObj
             |> Option.defaultValue TimeProvider.System),
            signal,
            metrics,
            Random.Shared.NextDouble,
            provider.GetRequiredService<ILoggerFactory>().CreateLogger "Callback.Webhooks.Delivery"
        ))
    |> ignore

/// Every call recorded in the store before its Originate; with `Monitor__Username`, the call monitor
/// too, started with the application and stopped once it has stopped, so after the drain (the callbacks in
/// flight hand it their calls until the last one).
let private startTracking
    (app: WebApplication)
    (settings: Settings)
    (durable: RequestSettings)
    (key: Calls.NumberKey)
    (requests: Calls.IRequestStore)
    (services: CallbackServices)
    =
    let loggers = app.Services.GetRequiredService<ILoggerFactory>()
    let outcomes = services.Metrics.Outcomes
    // The dispatcher is made last (it places through the tracking); a retry saved before wakes it then.
    let wake = ref (fun (_: DateTimeOffset) -> ())

    let policy: Calls.RetryPolicy = {
        MaxAttempts = durable.MaxAttempts
        Delay = durable.RetryDelay
        Jitter = Calls.Retries.DefaultJitter
    }

    let retrying: Calls.Retrying = {
        Next = fun attempt status at -> Calls.Retries.next policy attempt status at (Random.Shared.NextDouble())
        Reschedule =
            fun callId expected ended dueAt ->
                task {
                    let! saved =
                        requests.Retry(callId, expected, ended, dueAt, Threading.CancellationToken.None)

                    if saved = Calls.Saved then
                        wake.Value dueAt

                    return saved
                }
    }

    let monitor =
        Calls.MonitorSession.create settings services.Store services.Feed outcomes retrying loggers

    match monitor with
    | None -> ()
    | Some monitor ->
        services.Metrics.Observe monitor
        app.Lifetime.ApplicationStarted.Register(fun () -> monitor.Start()) |> ignore

        app.Lifetime.ApplicationStopped.Register(fun () -> monitor.StopAsync().Wait(TimeSpan.FromSeconds 5.0) |> ignore)
        |> ignore

    let tracking =
        Calls.CallTracking.durable
            requests
            services.Store
            monitor
            outcomes
            TimeProvider.System
            (loggers.CreateLogger "Callback.Calls.Tracking")

    let place = Pipeline.place tracking settings services.Gate

    let dispatcher =
        new Dispatcher(
            requests,
            place,
            DispatcherTiming.defaults,
            TimeProvider.System,
            Random.Shared.NextDouble,
            loggers.CreateLogger "Callback.Callbacks.Dispatcher"
        )

    wake.Value <- dispatcher.Wake

    let callbacks =
        CallbackRequests(
            requests,
            key,
            durable,
            monitor.IsSome,
            place,
            TimeProvider.System,
            dispatcher.Wake,
            loggers.CreateLogger "Callback.Callbacks.Requests"
        )

    app.Lifetime.ApplicationStarted.Register(fun () -> dispatcher.StartAsync(Threading.CancellationToken.None).Wait())
    |> ignore

    // Before the drain and the monitor stop: the attempts it is placing finish and hand their calls over.
    app.Lifetime.ApplicationStopping.Register(fun () ->
        dispatcher.StopAsync(Threading.CancellationToken.None).Wait(CallbackDuration.longest settings.Ami)
        |> ignore)
    |> ignore

    {
        services with
            Tracking = tracking
            Submit = fun request dueAt -> callbacks.Submit(request, dueAt)
            Duplicate = callbacks.Duplicate
    }

/// Builds the web application from configuration; every invalid setting is reported, none is guessed.
/// `configure` lets tests (and the demo) add configuration sources or a test server before the build.
let createApp (args: string[]) (configure: WebApplicationBuilder -> unit) : Result<WebApplication, string list> =
    // appsettings.json sits beside the program, wherever it is started from.
    let builder =
        WebApplication.CreateBuilder(WebApplicationOptions(Args = args, ContentRootPath = AppContext.BaseDirectory))

    configure builder

    let configured =
        validation {
            let! settings = Settings.read builder.Configuration
            and! data = DataSettings.read builder.Configuration Environment.CurrentDirectory
            and! hours = HoursSettings.read builder.Configuration
            and! webhooks = Webhooks.WebhookSettings.read builder.Configuration
            and! durable = RequestSettings.read builder.Configuration
            return settings, data, hours, webhooks, durable
        }

    let signal = Webhooks.OutboxSignal()

    let outboxFor (settings: Settings) (webhooks: Webhooks.WebhookSettings) =
        let endpoints = webhooks.Endpoints |> List.map Webhooks.WebhookEndpoint.key
        Webhooks.Outbox.hook endpoints settings.Monitor.IsSome TimeProvider.System signal

    match
        configured
        |> Result.bind (fun (settings, data, hours, webhooks, durable) ->
            openStore data (webhooks |> Option.map (outboxFor settings))
            |> Result.map (fun s -> settings, data, hours, webhooks, durable, s))
    with
    | Error errors -> Error errors
    | Ok(settings, data, hours, webhooks, durable, (((_, requests, _) as store), sqlite, key)) ->
        builder.WebHost.ConfigureKestrel KestrelOptions.configure |> ignore
        ErrorAnswers.addServices builder.Services
        let submitting = ref (fun _ _ -> Threading.Tasks.Task.FromResult NotAccepted)
        let services = callbackServices builder settings data store submitting

        webhooks
        |> Option.iter (fun w ->
            sqlite
            |> Option.iter (fun sqlite -> webhookDelivery builder w signal sqlite services))

        builder.Services.Configure<ForwardedHeadersOptions>(forwardedHeaders settings.Proxy)
        |> ignore

        let app = builder.Build()
        let services = startTracking app settings durable key requests services
        submitting.Value <- services.Submit
        ErrorAnswers.usePipeline app
        app.UseForwardedHeaders() |> ignore

        app.Logger.LogInformation("Call store: {Store}", DataSettings.describe data.Store)

        if settings.Ami.Endpoint.Transport = PlainTcp then
            app.Logger.LogWarning "Ami__UseTls is false: the AMI secret crosses the network in clear text."

        match webhooks with
        | Some w ->
            app.Logger.LogInformation(
                "Webhooks go to {Endpoints}, signed with {Secrets} secret(s)",
                String.Join(", ", w.Endpoints |> List.map Webhooks.WebhookEndpoint.label),
                w.Secrets.Length
            )
        | None -> ()

        if List.isEmpty settings.Protection.AllowedOrigins then
            app.Logger.LogWarning
                "Callback__AllowedOrigins is not set: a page on any web site can make its visitors' browsers request callbacks."

        Endpoints.map app settings hours services
        Ok app

/// Where this process listens, from `ASPNETCORE_URLS` (first URL; a wildcard host means loopback), else
/// `ASPNETCORE_HTTP_PORTS`, else 8080 as in the official images.
let private healthUrl () =
    let env name =
        match Environment.GetEnvironmentVariable name with
        | null
        | "" -> None
        | v ->
            Some(v.Split([| ';'; ',' |], StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries)[0])

    let loopback (url: string) =
        [ "://+"; "://*"; "://0.0.0.0"; "://[::]" ]
        |> List.fold (fun (u: string) wildcard -> u.Replace(wildcard, "://127.0.0.1")) url

    match env "ASPNETCORE_URLS", env "ASPNETCORE_HTTP_PORTS" with
    | Some url, _ -> Uri(Uri(loopback url), "/healthz")
    | None, Some port -> Uri $"http://127.0.0.1:{port}/healthz"
    | None, None -> Uri "http://127.0.0.1:8080/healthz"

/// `--health-check`: the container's HEALTHCHECK, so the image needs no curl. Exit 0 when `/healthz`
/// answers 200.
let private healthCheck () =
    use client = new HttpClient(Timeout = TimeSpan.FromSeconds 3.0)

    try
        let response = client.GetAsync(healthUrl ()).Result
        if response.IsSuccessStatusCode then 0 else 1
    with _ ->
        1

[<EntryPoint>]
let main args =
    if Array.contains "--health-check" args then
        healthCheck ()
    else
        match createApp args ignore with
        | Ok app ->
            app.Run()
            0
        | Error errors ->
            eprintfn "The callback sidecar cannot start; fix these settings:"
            errors |> List.iter (eprintfn "  - %s")
            2
