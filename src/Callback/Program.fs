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

/// The process-wide services of the callback routes, and their part in start-up and shutdown: the
/// readiness check, the drain that lets callbacks in flight finish, a shutdown timeout long enough for it.
let private callbackServices
    (builder: WebApplicationBuilder)
    (settings: Settings)
    (data: DataSettings)
    (store: Calls.ICallStore, closeStore: IDisposable)
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
    // Until the store keeps calls for later, a request outside hours or with a callAt answers 503; unless
    // a test gave its own clock and scheduler.
    builder.Services.TryAddSingleton<Scheduling>(Scheduling.unavailable TimeProvider.System)

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
    }

/// The call store `data` names, opened (and migrated) before the app starts: a sidecar that cannot keep
/// its calls does not take callbacks. With webhooks, the outbox rides on its transactions (SQLite only,
/// so far). Answers the store, what closes it at shutdown, and the SQLite store the delivery reads.
let private openStore (data: DataSettings) (outbox: Calls.ISqliteWriteHook option) =
    let cancel = Threading.CancellationToken.None

    match data.Store, outbox with
    | Sqlite directory, _ ->
        let opening =
            match outbox with
            | Some hook -> Calls.SqliteCallStore.Open(directory, cancel, hook)
            | None -> Calls.SqliteCallStore.Open(directory, cancel)

        opening.Result
        |> Result.map (fun store -> (store :> Calls.ICallStore), (store :> IDisposable), Some store)
        |> Result.mapError List.singleton
    | Postgres _, Some _ ->
        Error [
            "Webhooks__Url needs Data__Provider=sqlite for now: the webhook outbox is not in the PostgreSQL store yet."
        ]
    | Postgres connectionString, None ->
        Calls.PostgresCallStore.Open(connectionString.Reveal(), cancel).Result
        |> Result.map (fun store -> (store :> Calls.ICallStore), (store :> IDisposable), None)
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
let private startTracking (app: WebApplication) (settings: Settings) (services: CallbackServices) =
    let loggers = app.Services.GetRequiredService<ILoggerFactory>()
    let outcomes = services.Metrics.Outcomes

    let monitor =
        Calls.MonitorSession.create settings services.Store services.Feed outcomes loggers

    match monitor with
    | None -> ()
    | Some monitor ->
        services.Metrics.Observe monitor
        app.Lifetime.ApplicationStarted.Register(fun () -> monitor.Start()) |> ignore

        app.Lifetime.ApplicationStopped.Register(fun () -> monitor.StopAsync().Wait(TimeSpan.FromSeconds 5.0) |> ignore)
        |> ignore

    {
        services with
            Tracking =
                Calls.CallTracking.create
                    services.Store
                    monitor
                    outcomes
                    TimeProvider.System
                    (loggers.CreateLogger "Callback.Calls.Tracking")
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
            return settings, data, hours, webhooks
        }

    let signal = Webhooks.OutboxSignal()

    let outboxFor (settings: Settings) (webhooks: Webhooks.WebhookSettings) =
        let endpoints = webhooks.Endpoints |> List.map Webhooks.WebhookEndpoint.key
        Webhooks.Outbox.hook endpoints settings.Monitor.IsSome TimeProvider.System signal

    match
        configured
        |> Result.bind (fun (settings, data, hours, webhooks) ->
            openStore data (webhooks |> Option.map (outboxFor settings))
            |> Result.map (fun s -> settings, data, hours, webhooks, s))
    with
    | Error errors -> Error errors
    | Ok(settings, data, hours, webhooks, (store, closeStore, sqlite)) ->
        builder.WebHost.ConfigureKestrel KestrelOptions.configure |> ignore
        ErrorAnswers.addServices builder.Services
        let services = callbackServices builder settings data (store, closeStore)

        match webhooks, sqlite with
        | Some w, Some sqlite -> webhookDelivery builder w signal sqlite services
        | _ -> ()

        builder.Services.Configure<ForwardedHeadersOptions>(forwardedHeaders settings.Proxy)
        |> ignore

        let app = builder.Build()
        let services = startTracking app settings services
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
