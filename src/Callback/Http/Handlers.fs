namespace Callback.Http

open System
open System.Buffers
open System.IO.Pipelines
open System.Text.Json
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.DependencyInjection
open FsToolkit.ErrorHandling
open Callback
open Callback.Callbacks
open Callback.Domain

/// The rest of the request's handling, or `None` when a handler already answered: Giraffe's shape,
/// rebuilt on plain ASP.NET Core because Giraffe is not on our package feed.
type HttpFunc = HttpContext -> Task<HttpContext option>

/// A step of request handling that may answer, or hand on to `next`.
type HttpHandler = HttpFunc -> HttpFunc

[<AutoOpen>]
module Core =

    /// Runs `first`, then `second`.
    let (>=>) (first: HttpHandler) (second: HttpHandler) : HttpHandler = fun next -> first (second next)

    /// The end of every chain: the response is complete.
    let finish: HttpFunc = fun ctx -> Task.FromResult(Some ctx)

    let setStatusCode (code: int) : HttpHandler =
        fun next ctx ->
            ctx.Response.StatusCode <- code
            next ctx

    /// Writes `value` as the `application/json` body.
    let json (value: JsonValue) : HttpHandler =
        fun next ctx ->
            task {
                ctx.Response.ContentType <- "application/json; charset=utf-8"
                use writer = new Utf8JsonWriter(ctx.Response.BodyWriter)
                value writer
                do! writer.FlushAsync()
                return! next ctx
            }

    /// Answers with a status and the five false booleans plus `errors`: nothing reached Asterisk. The body
    /// is written by `ErrorAnswers`, the one writer of every error answer.
    let refuse (code: int) (errors: FieldError list) : HttpHandler =
        fun next ctx ->
            task {
                ctx.Response.StatusCode <- code
                let problems = ctx.RequestServices.GetRequiredService<IProblemDetailsService>()

                do!
                    problems.WriteAsync(
                        ProblemDetailsContext(HttpContext = ctx, ProblemDetails = ErrorAnswers.problem code errors)
                    )

                return! next ctx
            }

    let bodyError message = [ { Field = "body"; Message = message } ]

    /// One read of the request body. Kestrel reports most broken bodies as `BadHttpRequestException`, but
    /// a chunk size that overflows escapes as a bare `IOException`; both are the client's error (400),
    /// which `ErrorAnswers` answers in the contract and logs as one line.
    let private readClientBody (reader: PipeReader) (cancel: CancellationToken) =
        task {
            try
                return! reader.ReadAsync cancel
            with :? System.IO.IOException as e when not (e :? BadHttpRequestException) ->
                return raise (BadHttpRequestException("The request body could not be read: " + e.Message, 400, e))
        }

    /// Hands the whole body to `next` when it is at most `limit` bytes; 413 otherwise, read no further.
    let readBody (limit: int) (next: byte[] -> HttpHandler) : HttpHandler =
        fun after ctx ->
            task {
                let tooLarge () =
                    refuse 413 (bodyError $"The body must be at most {limit} bytes.") after ctx

                match ctx.Request.ContentLength with
                | length when length.HasValue && length.Value > int64 limit -> return! tooLarge ()
                | _ ->
                    let reader = ctx.Request.BodyReader
                    let mutable result = Unchecked.defaultof<ReadResult>
                    let mutable reading = true

                    while reading do
                        let! r = readClientBody reader ctx.RequestAborted
                        result <- r
                        reading <- not r.IsCompleted && r.Buffer.Length <= int64 limit

                        if reading then
                            reader.AdvanceTo(r.Buffer.Start, r.Buffer.End)

                    let body =
                        if result.Buffer.Length > int64 limit then
                            None
                        else
                            Some(result.Buffer.ToArray())

                    reader.AdvanceTo result.Buffer.End

                    match body with
                    | None -> return! tooLarge ()
                    | Some body -> return! next body after ctx
            }

[<RequireQualifiedAccess>]
module Handlers =

    /// The largest body `POST /callback` reads.
    [<Literal>]
    let MaxBodyBytes = 8192

    /// Reads the form, as JSON or URL-encoded, into its fields, each read or refused on its own:
    /// 415 for another content type (before reading), 413 over `MaxBodyBytes`, 400 when it does not parse.
    let bindCallback (next: BoundForm -> HttpHandler) : HttpHandler =
        fun after ctx ->
            match Body.format ctx.Request.ContentType with
            | Error refusal -> refuse refusal.Status refusal.Errors after ctx
            | Ok format ->
                let decode body =
                    match Body.read format body with
                    | Ok fields -> next fields
                    | Error refusal -> refuse refusal.Status refusal.Errors

                readBody MaxBodyBytes decode after ctx

    /// Every error of the form at once: a field that could not be read (wrong JSON type, given twice)
    /// is reported as such, and the other field is still validated beside it.
    let private validateRequest (form: BoundForm) =
        let given: UnvalidatedCallback = {
            PhoneNumber = Result.defaultValue None form.PhoneNumber
            Language = Result.defaultValue None form.Language
        }

        match form.PhoneNumber, form.Language, CallbackRequest.validate given with
        | Ok _, Ok _, Ok request -> Ok request
        | _, _, validated ->
            let invalid =
                match validated with
                | Ok _ -> []
                | Error errors -> errors

            let errorsOf field (bound: BoundField) =
                match bound with
                | Error unreadable -> [ unreadable ]
                | Ok _ -> invalid |> List.filter (fun e -> e.Field = field)

            Error(
                errorsOf CallbackRequest.PhoneNumberField form.PhoneNumber
                @ errorsOf CallbackRequest.LanguageField form.Language
            )

    /// When to place the call: `callAt` read and checked against the clock and the hours, or, without
    /// one, now or the next opening. A refusal is one error on `callAt`.
    let private placementOf (hours: OpeningHours) (now: NodaTime.Instant) (callAt: BoundField) =
        let onField message = [
            {
                Field = CallAt.Field
                Message = message
            }
        ]

        match callAt with
        | Error unreadable -> Error [ unreadable ]
        | Ok given ->
            given
            |> Option.map (CallAt.tryParse >> Result.mapError onField)
            |> Option.sequenceResult
            |> Result.bind (Placement.decide hours now >> Result.mapError (CallAt.message hours >> onField))

    /// Checks the fields, `callAt` against the clock and the hours; 422 with every error at once, before
    /// any AMI traffic.
    let validateCallback
        (hours: OpeningHours)
        (clock: Scheduling)
        (next: CallbackRequest * Placement -> HttpHandler)
        (form: BoundForm)
        : HttpHandler =
        fun after ctx ->
            match validateRequest form, placementOf hours (Scheduling.now clock) form.CallAt with
            | Ok request, Ok placement -> next (request, placement) after ctx
            | request, placement ->
                let errorsOf =
                    function
                    | Ok _ -> []
                    | Error errors -> errors

                refuse 422 (errorsOf request @ errorsOf placement) after ctx

    /// Refuses a valid number the owner does not pay to ring (toll fraud, fiction, directory
    /// assistance): 422 on `phoneNumber`, before any AMI traffic. A handler of its own, so that a policy
    /// refusal can be told apart from invalid input.
    let checkDestination
        (policy: DestinationPolicy)
        (next: CallbackRequest -> HttpHandler)
        (request: CallbackRequest)
        : HttpHandler =
        match DestinationPolicy.check policy request.PhoneNumber with
        | Ok _ -> next request
        | Error refusal ->
            fun after ctx ->
                // A 422 like invalid input, but counted apart in the metrics.
                Verdict.refused Policy ctx

                refuse
                    422
                    [
                        {
                            Field = CallbackRequest.PhoneNumberField
                            Message = DestinationPolicy.describe refusal
                        }
                    ]
                    after
                    ctx

    /// 200 once Asterisk accepted the Originate (even if Logoff then failed); 503 when Asterisk could not
    /// be reached at all; 502 when it was reached but a later stage failed.
    let statusOf (outcome: CallbackOutcome) =
        if outcome.Stages.CallSpooled then 200
        elif not outcome.Stages.Socket then 503
        else 502

    /// The answer to a request the pipeline ran for: its booleans, 200/502/503.
    let private placed report request (outcome: CallbackOutcome) : HttpHandler =
        fun next ctx ->
            task {
                report ctx request outcome

                match outcome.Failure with
                | Some NoFreeSession ->
                    // Nothing was sent: a refusal like the others, with its reason.
                    return!
                        refuse
                            503
                            [
                                {
                                    Field = "request"
                                    Message = "Every line is busy; try again in a minute."
                                }
                            ]
                            next
                            ctx
                | _ -> return! (setStatusCode (statusOf outcome) >=> json (CallbackJson.outcome outcome)) next ctx
            }

    /// 200 with the call the request duplicates, its id and the booleans its own request got.
    let private duplicateOf (call: Callback.Calls.StoredCall) (stages: StageResults) : HttpHandler =
        setStatusCode 200
        >=> json (CallbackJson.duplicate (CallId.value call.CallId) stages)

    /// A request for a number that already has a call gets that call (`duplicate: true`) and places
    /// nothing; checked before the rate limits, so pressing twice is never a refusal.
    let answerDuplicate
        (find: CallbackRequest -> Task<(Callback.Calls.StoredCall * StageResults) option>)
        (next: CallbackRequest -> HttpHandler)
        (request: CallbackRequest)
        : HttpHandler =
        fun after ctx ->
            task {
                match! find request with
                | Some(call, stages) -> return! duplicateOf call stages after ctx
                | None -> return! next request after ctx
            }

    /// Records the request before any AMI traffic, places it now, and answers with its outcome; a
    /// duplicate gets its call; a store that cannot record it, 503 with nothing sent.
    let submitCallback
        (submit: CallbackRequest -> Task<RequestOutcome>)
        (report: HttpContext -> CallbackRequest -> CallbackOutcome -> unit)
        (request: CallbackRequest)
        : HttpHandler =
        fun next ctx ->
            task {
                match! submit request with
                | PlacedNow outcome -> return! placed report request outcome next ctx
                | DuplicateOf(call, stages) -> return! duplicateOf call stages next ctx
                // A request for now is never kept for later (`Booking` keeps those, and answers 202).
                | Scheduled _
                | NotAccepted ->
                    return!
                        refuse
                            503
                            [
                                {
                                    Field = "server"
                                    Message = "The callback could not be recorded; try again in a minute."
                                }
                            ]
                            next
                            ctx
            }
