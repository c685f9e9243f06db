namespace Callback.Http

open System
open System.Collections.Generic
open System.Text.Json
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Diagnostics
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Mvc
open Microsoft.AspNetCore.WebUtilities
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging
open Callback.Domain

/// The one place that writes an error answer, whoever refuses: our handlers, routing (404, 405), a body
/// Kestrel could not read (400, 408, 413) or an unexpected exception (500). All go through ASP.NET
/// Core's `IProblemDetailsService`, whose only writer here writes the contract: the five booleans, all
/// false, and `errors`.
[<RequireQualifiedAccess>]
module ErrorAnswers =

    /// Where a handler's own errors travel inside a `ProblemDetails`.
    [<Literal>]
    let ErrorsKey = "errors"

    let private error field message = [ { Field = field; Message = message } ]

    /// What the client is told when the refusal names no field itself; nothing from the request is echoed.
    let describe (status: int) : FieldError list =
        match status with
        | 400 -> error "body" "The request or its body is malformed."
        | 404 -> error "path" "Nothing is here; the callback form posts to /callback."
        | 405 -> error "method" "This method is not allowed here; the Allow header lists those that are."
        | 408 -> error "body" "The body arrived too slowly."
        | 413 -> error "body" "The body is too large."
        | 403 -> error "origin" "This site may not post callbacks here."
        | 415 -> error "body" "Send application/json or application/x-www-form-urlencoded."
        | 429 -> error "request" "Too many callbacks; try again later (see Retry-After)."
        | 431 -> error "headers" "The request's headers are too large."
        | 500 -> error "server" "An unexpected error stopped this request; it was logged."
        | 503 -> error "server" "The sidecar cannot take callbacks right now; try again later."
        | other -> error "request" (ReasonPhrases.GetReasonPhrase other)

    /// The problem a handler refuses with: its status and every error it found.
    let problem (status: int) (errors: FieldError list) =
        let details = ProblemDetails(Status = Nullable status)
        details.Extensions[ErrorsKey] <- box errors
        details

    let private errorsOf (context: ProblemDetailsContext) =
        match context.ProblemDetails.Extensions.TryGetValue ErrorsKey with
        | true, (:? (FieldError list) as errors) -> errors
        | _ -> describe context.HttpContext.Response.StatusCode

    /// Writes every problem as the contract's JSON instead of RFC 9457's `application/problem+json`,
    /// so a client reads one shape from every answer.
    type ContractWriter() =
        interface IProblemDetailsWriter with
            member _.CanWrite _ = true

            member _.WriteAsync context =
                let response = context.HttpContext.Response
                response.ContentType <- "application/json; charset=utf-8"

                task {
                    use writer = new Utf8JsonWriter(response.BodyWriter)
                    CallbackJson.refused (errorsOf context) writer
                    do! writer.FlushAsync()
                }
                |> ValueTask

    /// A body Kestrel could not read (bad chunked framing, too slow, too large) is the client's error:
    /// answered with its own status and logged as one line without a stack trace, so a client cannot
    /// flood the log. Any other exception is left to the middleware: 500, logged with its trace.
    type ClientErrors(problems: IProblemDetailsService, logger: ILogger<ClientErrors>) =
        interface IExceptionHandler with
            member _.TryHandleAsync(ctx, error, _) =
                match error with
                | :? BadHttpRequestException as bad ->
                    logger.LogInformation(
                        "Refused {Method} from {Client} with {Status}: {Reason}",
                        ctx.Request.Method,
                        string ctx.Connection.RemoteIpAddress,
                        bad.StatusCode,
                        bad.Message
                    )

                    ctx.Response.StatusCode <- bad.StatusCode

                    task {
                        do!
                            problems.WriteAsync(
                                ProblemDetailsContext(
                                    HttpContext = ctx,
                                    ProblemDetails = problem bad.StatusCode (describe bad.StatusCode)
                                )
                            )

                        return true
                    }
                    |> ValueTask<bool>
                | _ -> ValueTask<bool> false

    /// Registers the contract's writer (before `AddProblemDetails`, so it is the one chosen) and the
    /// client-error handler.
    let addServices (services: IServiceCollection) =
        services.AddSingleton<IProblemDetailsWriter, ContractWriter>() |> ignore
        services.AddProblemDetails() |> ignore
        services.AddExceptionHandler<ClientErrors>() |> ignore

    /// Puts the exception handler and status code pages in front of everything else, so an answer
    /// that would leave empty (404, 405, 500) gets the contract's body.
    let usePipeline (app: IApplicationBuilder) =
        app.UseExceptionHandler() |> ignore
        app.UseStatusCodePages() |> ignore
