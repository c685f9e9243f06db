namespace Callback.Webhooks

open System
open System.Collections.Concurrent
open System.Net.Http
open System.Net.Http.Headers
open System.Threading
open System.Threading.Tasks
open Microsoft.Data.Sqlite
open Microsoft.Extensions.Hosting
open Microsoft.Extensions.Logging

/// The webhook delivery loop: claims the outbox's due rows, posts each one's exact bytes signed as
/// Standard Webhooks, and records the answer (delivered, retried on the schedule or `Retry-After`, given
/// up, or the endpoint disabled by 410). At least once: a row is marked only after its answer, so a crash
/// in between sends it again, with the same `webhook-id`, for the receiver to drop.
[<Sealed>]
type WebhookDelivery
    (
        settings: WebhookSettings,
        connect: CancellationToken -> Task<SqliteConnection>,
        client: HttpClient,
        time: TimeProvider,
        signal: OutboxSignal,
        metrics: WebhookMetrics,
        jitter: unit -> float,
        logger: ILogger
    ) =
    inherit BackgroundService()

    /// Rows claimed per round, posted at once.
    static let batch = 32

    /// The longest wait between two looks at the outbox when nothing is due sooner and nobody signals.
    static let poll = TimeSpan.FromMinutes 1.0

    /// Finished rows (delivered, failed, disabled), and rows of an endpoint removed from the settings, are
    /// kept this long, for a look at the database.
    static let keep = TimeSpan.FromDays 7.0

    let labels =
        settings.Endpoints
        |> List.map (fun e -> WebhookEndpoint.key e, WebhookEndpoint.label e)
        |> dict

    let label endpoint =
        match labels.TryGetValue endpoint with
        | true, label -> label
        | _ -> "an endpoint no longer configured"

    let disabled = ConcurrentDictionary<string, unit>()
    let mutable nextPrune = DateTimeOffset.MinValue

    let active () =
        settings.Endpoints
        |> List.map WebhookEndpoint.key
        |> List.filter (disabled.ContainsKey >> not)

    let answerOf (response: HttpResponseMessage) =
        let status = int response.StatusCode

        if status >= 200 && status < 300 then
            Accepted status
        elif status = 410 then
            Gone
        else
            let header = response.Headers.RetryAfter

            let wait =
                if isNull header then
                    None
                else
                    DeliverySchedule.retryAfter
                        (time.GetUtcNow())
                        (Option.ofNullable header.Delta)
                        (Option.ofNullable header.Date)

            Refused(status, wait)

    /// Posts one row, signed at the time it is sent; no status within the timeout is `Unanswered`.
    let post (row: OutboxRow) (cancel: CancellationToken) =
        task {
            use request = new HttpRequestMessage(HttpMethod.Post, row.Endpoint)

            for name, value in Signature.headers settings.Secrets row.Id (time.GetUtcNow()) (ReadOnlyMemory row.Payload) do
                request.Headers.TryAddWithoutValidation(name, value) |> ignore

            request.Content <- new ByteArrayContent(row.Payload)
            request.Content.Headers.ContentType <- MediaTypeHeaderValue "application/json"
            use timeout = new CancellationTokenSource(settings.Timeout, time)
            use linked = CancellationTokenSource.CreateLinkedTokenSource(cancel, timeout.Token)

            try
                use! response =
                    client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token)

                return answerOf response
            with
            | :? OperationCanceledException when not cancel.IsCancellationRequested -> return Unanswered
            | :? HttpRequestException -> return Unanswered
        }

    let describe (answer: Answer) =
        match DeliverySchedule.status answer with
        | Some status -> $"HTTP {status}"
        | None -> $"no answer within {settings.Timeout.TotalSeconds} s"

    /// Records one row's answer, counts it and logs what a person needs (never the payload or the URL's
    /// path: the endpoint is shown as scheme, host and port).
    let record connection (row: OutboxRow) (answer: Answer) cancel =
        task {
            let id = MessageId.value row.Id
            let status = DeliverySchedule.status answer

            match DeliverySchedule.decide settings.MaxAttempts row.Attempt (jitter ()) answer with
            | Done ->
                let! _ =
                    Outbox.mark connection row (Delivered(Option.defaultValue 200 status)) cancel

                metrics.Count "delivered"
                logger.LogDebug("Webhook {Type} {WebhookId} delivered to {Endpoint}", row.Type, id, label row.Endpoint)
            | RetryIn wait ->
                let! _ = Outbox.mark connection row (Retry(time.GetUtcNow() + wait, status)) cancel
                metrics.Count "retry"

                logger.LogWarning(
                    "Webhook {Type} {WebhookId} to {Endpoint}: {Answer} (attempt {Attempt} of {MaxAttempts}); next in {Wait}",
                    row.Type,
                    id,
                    label row.Endpoint,
                    describe answer,
                    row.Attempt,
                    settings.MaxAttempts,
                    wait
                )
            | GiveUp ->
                let! _ = Outbox.mark connection row (GaveUp status) cancel
                metrics.Count "failed"

                logger.LogError(
                    "Webhook {Type} {WebhookId} to {Endpoint}: {Answer} at its last attempt ({MaxAttempts}); given up",
                    row.Type,
                    id,
                    label row.Endpoint,
                    describe answer,
                    settings.MaxAttempts
                )
            | DisableEndpoint ->
                if disabled.TryAdd(row.Endpoint, ()) then
                    metrics.SetDisabled disabled.Count

                    logger.LogWarning(
                        "Webhook endpoint {Endpoint} answered 410 Gone: it is sent nothing more until the sidecar restarts",
                        label row.Endpoint
                    )

                // The claimed row is still pending (only leased): this marks it with the others.
                let! _ = Outbox.disable connection row.Endpoint cancel
                metrics.Count "disabled"
        }

    /// Posts one endpoint's claimed rows one after the other, in the order their events happened, on a
    /// connection of its own; after a 410 the rest are not sent (they are disabled with the endpoint).
    let deliver (rows: OutboxRow list) cancel =
        task {
            use! connection = connect cancel

            for row in rows do
                if not (disabled.ContainsKey row.Endpoint) then
                    let! answer = post row cancel
                    do! record connection row answer cancel
        }
        :> Task

    /// One look at the outbox: disabled endpoints' new rows marked, due rows claimed, posted (endpoints at
    /// once, each one's rows in order) and recorded. Answers when the next row is due (None: none waits).
    member _.RunOnce(cancel: CancellationToken) : Task<DateTimeOffset option> =
        task {
            use! connection = connect cancel

            for endpoint in disabled.Keys do
                let! _ = Outbox.disable connection endpoint cancel
                ()

            let now = time.GetUtcNow()

            if now >= nextPrune then
                let configured = settings.Endpoints |> List.map WebhookEndpoint.key
                let! _ = Outbox.prune connection configured (now - keep) cancel
                nextPrune <- now + TimeSpan.FromHours 1.0

            match active () with
            | [] ->
                metrics.SetPending 0L
                return None
            | endpoints ->
                let lease = now + settings.Timeout + TimeSpan.FromMinutes 1.0
                let! rows = Outbox.claim connection endpoints now lease batch cancel

                do!
                    rows
                    |> List.groupBy _.Endpoint
                    |> List.map (fun (_, rows) -> deliver rows cancel)
                    |> Task.WhenAll

                let! count, next = Outbox.pending connection (active ()) cancel
                metrics.SetPending count
                return next
        }

    /// The client deliveries use: it follows no redirect (a 3xx is a failure, as the specification says)
    /// and has no timeout of its own (each delivery has `Webhooks__Timeout`, on the sidecar's clock).
    static member CreateClient() =
        new HttpClient(
            new SocketsHttpHandler(AllowAutoRedirect = false, PooledConnectionLifetime = TimeSpan.FromMinutes 5.0),
            Timeout = Timeout.InfiniteTimeSpan
        )

    override this.ExecuteAsync(stopping: CancellationToken) : Task =
        task {
            while not stopping.IsCancellationRequested do
                let! next =
                    task {
                        try
                            return! this.RunOnce stopping
                        with
                        | :? OperationCanceledException when stopping.IsCancellationRequested -> return None
                        | e ->
                            logger.LogError(e, "Webhook delivery failed a round; it tries again in 5 s")
                            return Some(time.GetUtcNow() + TimeSpan.FromSeconds 5.0)
                    }

                let wait =
                    match next with
                    | Some at -> min (at - time.GetUtcNow()) poll
                    | None -> poll

                if wait > TimeSpan.Zero && not stopping.IsCancellationRequested then
                    do! signal.Wait(wait, time, stopping)
        }
