/// A webhook receiver for the tests: a real Kestrel on 127.0.0.1 that answers as it is told, checks every
/// signature with the `StandardWebhooks` package and drops duplicates by `webhook-id`, as a receiver must.
module Callback.Tests.WebhookReceiver

open System
open System.Collections.Concurrent
open System.IO
open System.Net
open System.Text
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Hosting.Server.Features
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging
open Microsoft.Extensions.Time.Testing

/// How the receiver answers one request.
type Reply =
    | Status of int
    | RetryAfterSeconds of int
    | RetryAfterDate of DateTimeOffset
    | Redirect
    /// Never answers: the sender's timeout must end it.
    | Hang

/// One request as it arrived.
type Received = {
    Id: string
    Timestamp: DateTimeOffset
    Body: byte array
    ContentType: string
    /// The signature list matched one computed by the package's own signer for this id, time and body.
    Signed: bool
    /// The package's whole verifier (with its 5-minute window on the real clock) accepted it; None when
    /// the fake clock had moved too far from the real one for that window.
    Verified: bool option
    Answered: int option
}

type Receiver(secret: string) =
    let replies = ConcurrentQueue<Reply>()
    let received = ConcurrentQueue<Received>()
    let accepted = ConcurrentDictionary<string, byte array>()
    let mutable hanging = 0
    let elsewhere = ref 0
    let webhook = StandardWebhooks.StandardWebhook(secret)

    let check (ctx: HttpContext) (body: byte array) =
        let header (name: string) = string ctx.Request.Headers[name]
        let id = header "webhook-id"

        let timestamp =
            DateTimeOffset.FromUnixTimeSeconds(int64 (header "webhook-timestamp"))

        let text = Encoding.UTF8.GetString body
        let expected = webhook.Sign(id.AsSpan(), timestamp, text.AsSpan())
        let signed = (header "webhook-signature").Split ' ' |> Array.contains expected

        let verified =
            if abs (DateTimeOffset.UtcNow - timestamp).TotalMinutes < 4.0 then
                try
                    webhook.Verify(text, ctx.Request.Headers)
                    Some true
                with :? StandardWebhooks.Diagnostics.WebhookVerificationException ->
                    Some false
            else
                None

        id, timestamp, signed, verified

    let answer (ctx: HttpContext) =
        task {
            use buffer = new MemoryStream()
            do! ctx.Request.Body.CopyToAsync buffer
            let body = buffer.ToArray()
            let id, timestamp, signed, verified = check ctx body

            let reply =
                match replies.TryDequeue() with
                | true, reply -> reply
                | _ -> Status 204

            let record status =
                received.Enqueue {
                    Id = id
                    Timestamp = timestamp
                    Body = body
                    ContentType = string ctx.Request.ContentType
                    Signed = signed
                    Verified = verified
                    Answered = status
                }

            match reply with
            | Hang ->
                record None
                Interlocked.Increment(&hanging) |> ignore

                try
                    do! Task.Delay(Timeout.Infinite, ctx.RequestAborted)
                with :? OperationCanceledException ->
                    ()
            | Redirect ->
                record (Some 302)
                ctx.Response.StatusCode <- 302
                ctx.Response.Headers.Location <- "/elsewhere"
            | RetryAfterSeconds seconds ->
                record (Some 429)
                ctx.Response.StatusCode <- 429
                ctx.Response.Headers.RetryAfter <- string seconds
            | RetryAfterDate date ->
                record (Some 503)
                ctx.Response.StatusCode <- 503
                ctx.Response.Headers.RetryAfter <- date.ToString "R"
            | Status status ->
                record (Some status)
                ctx.Response.StatusCode <- status

                // A receiver deduplicates by webhook-id: only a verified 2xx counts, once.
                if status >= 200 && status < 300 && signed then
                    accepted.TryAdd(id, body) |> ignore
        }
        :> Task

    let app =
        let builder = WebApplication.CreateSlimBuilder()
        builder.Logging.ClearProviders() |> ignore

        builder.WebHost.UseKestrel(fun (o: Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions) ->
            o.Listen(IPAddress.Loopback, 0))
        |> ignore

        let app = builder.Build()
        app.MapPost("/hooks", RequestDelegate answer) |> ignore

        app.Map(
            "/elsewhere",
            RequestDelegate(fun _ ->
                elsewhere.Value <- elsewhere.Value + 1
                Task.CompletedTask)
        )
        |> ignore

        app.StartAsync().Wait()
        app

    let address =
        app.Services.GetRequiredService<Server.IServer>().Features.Get<IServerAddressesFeature>().Addresses
        |> Seq.head

    /// The endpoint to configure.
    member _.Url = $"{address}/hooks"

    /// Queues the answers to the next requests, in order; past them every request gets 204.
    member _.Then(next: Reply list) =
        for reply in next do
            replies.Enqueue reply

    member _.Received = List.ofSeq received

    /// The bodies accepted, one per webhook-id, whatever the number of deliveries.
    member _.Accepted = accepted |> Seq.map (fun kv -> kv.Key, kv.Value) |> Map.ofSeq

    /// Requests that followed a redirect.
    member _.Elsewhere = elsewhere.Value

    /// How many requests were left hanging so far.
    member _.Hanging = Volatile.Read &hanging

    interface IAsyncDisposable with
        member _.DisposeAsync() = app.DisposeAsync()

    interface IDisposable with
        member _.Dispose() = app.DisposeAsync().AsTask().Wait()
