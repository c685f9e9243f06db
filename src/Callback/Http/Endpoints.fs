namespace Callback.Http

open System
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Routing
open Microsoft.Extensions.Logging
open Callback
open Callback.Domain

/// The routes, each a handler chain turned into an ASP.NET Core endpoint.
[<RequireQualifiedAccess>]
module Endpoints =

    let private toDelegate (handler: HttpHandler) =
        RequestDelegate(fun ctx -> handler finish ctx :> Task)

    /// Enough of the number to recognise a call in the log, not enough to call the visitor from it.
    let private masked (number: PhoneNumber) =
        let digits = number.Digits
        digits.Substring(0, 4) + "*****" + digits.Substring(9)

    /// One line per callback: the client (as the trusted proxy reported it), the masked number, the stages.
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
                Option.toObj outcome.CallId,
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

    /// An embedded resource as the body, for the demo page and the OpenAPI document.
    let private resource (name: string) (contentType: string) : HttpHandler =
        fun next ctx ->
            task {
                use stream = typeof<Settings>.Assembly.GetManifestResourceStream name

                ctx.Response.ContentType <- contentType
                do! stream.CopyToAsync ctx.Response.Body
                return! next ctx
            }

    /// The visitor's form, for trying the sidecar in a browser; served only when `Demo__Enabled`.
    let private demoPage = resource "demo.html" "text/html; charset=utf-8"

    /// The public contract as OpenAPI 3.1, the same document as `src/Callback/openapi.json`.
    let private openApi = resource "openapi.json" "application/json; charset=utf-8"

    /// `POST /callback`, `GET /healthz` (liveness only: it never touches AMI), `GET /openapi.json` and, in
    /// demo mode, `GET /`.
    let map (app: WebApplication) (settings: Settings) =
        let logger = app.Logger
        // One gate for the whole process: it bounds the AMI sessions of all requests together.
        let gate = new SessionGate(settings.Ami.MaxSessions)

        app.Lifetime.ApplicationStopped.Register(fun () -> (gate :> IDisposable).Dispose())
        |> ignore

        let callback =
            Handlers.callback settings.Destination (Pipeline.run settings gate) (report logger)

        app.MapPost("/callback", toDelegate callback) |> ignore
        // GET (and HEAD) only, like every other read: a POST to it answers 405 in the contract.
        app.MapHealthChecks("/healthz").WithMetadata(HttpMethodMetadata [ "GET"; "HEAD" ])
        |> ignore

        app.MapGet("/openapi.json", toDelegate openApi) |> ignore

        if settings.DemoEnabled then
            app.MapGet("/", toDelegate demoPage) |> ignore
