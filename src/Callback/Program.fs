module Callback.Program

open System
open System.Net.Http
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.HttpOverrides
open Microsoft.AspNetCore.Server.Kestrel.Core
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Hosting
open Microsoft.Extensions.Logging
open Callback.Ami
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

/// Kestrel's limits, set on purpose rather than left at defaults made for any web app. The sidecar reads
/// one tiny form per request, normally from nginx on the same host.
let private limits (kestrel: KestrelServerOptions) =
    let l = kestrel.Limits
    // Longer than nginx's upstream `keepalive_timeout` (60 s): nginx must close an idle connection
    // first, or it may send a callback on one the sidecar is closing and, with `proxy_next_upstream
    // off`, answer 502 for a call never placed. Kestrel's default is 130 s.
    l.KeepAliveTimeout <- TimeSpan.FromSeconds 75.0
    // A request's headers arrive in one go from a browser or nginx; the default 30 s lets a slow
    // client hold a connection for nothing.
    l.RequestHeadersTimeout <- TimeSpan.FromSeconds 10.0
    // The body is at most 8 KiB: at 1 KiB/s after a 3 s grace it arrives in under 11 s.
    l.MinRequestBodyDataRate <- MinDataRate(1024.0, TimeSpan.FromSeconds 3.0)
    // Each callback holds an AMI session for seconds; far fewer connections are ever useful, and a cap
    // keeps a flood of idle sockets from exhausting file descriptors. nginx keeps 4.
    l.MaxConcurrentConnections <- Nullable 1000L
    // Cookies of the site in front pass through nginx, so the total stays at Kestrel's 32 KiB; but no
    // browser sends 100 headers, and our paths are short.
    l.MaxRequestHeadersTotalSize <- 32 * 1024
    l.MaxRequestHeaderCount <- 64
    l.MaxRequestLineSize <- 2048
    // Left at 30 MB on purpose: `Handlers.readBody` stops at 8 KiB while streaming and answers 413 in
    // the contract itself, which a Kestrel limit of the same size would pre-empt.
    kestrel.AddServerHeader <- false

/// Builds the web application from configuration; every invalid setting is reported, none is guessed.
/// `configure` lets tests (and the demo) add configuration sources or a test server before the build.
let createApp (args: string[]) (configure: WebApplicationBuilder -> unit) : Result<WebApplication, string list> =
    // appsettings.json sits beside the program, wherever it is started from.
    let builder =
        WebApplication.CreateBuilder(WebApplicationOptions(Args = args, ContentRootPath = AppContext.BaseDirectory))

    configure builder

    match Settings.read builder.Configuration with
    | Error errors -> Error errors
    | Ok settings ->
        builder.WebHost.ConfigureKestrel limits |> ignore
        ErrorAnswers.addServices builder.Services
        builder.Services.AddHealthChecks() |> ignore
        // On SIGTERM Kestrel stops accepting and lets in-flight callbacks finish; `docker stop` waits 10 s.
        builder.Services.Configure<HostOptions>(fun (o: HostOptions) -> o.ShutdownTimeout <- TimeSpan.FromSeconds 8.0)
        |> ignore


        builder.Services.Configure<ForwardedHeadersOptions>(forwardedHeaders settings.Proxy)
        |> ignore

        let app = builder.Build()
        ErrorAnswers.usePipeline app
        app.UseForwardedHeaders() |> ignore

        if settings.Ami.Endpoint.Transport = PlainTcp then
            app.Logger.LogWarning "Ami__UseTls is false: the AMI secret crosses the network in clear text."

        Endpoints.map app settings
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
