namespace Callback.Http

open System
open System.Buffers
open System.Text
open System.Text.Json
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Http.Features
open Callback.Calls

/// A call's transitions as server-sent events (the HTML standard's `text/event-stream`): one `event:
/// state` frame per transition, `id:` its sequence, `data:` the status JSON as of it.
[<RequireQualifiedAccess>]
module EventStream =

    /// One frame: `event: state`, `id: <sequence>`, `data: <json>` and the blank line that ends it. The
    /// JSON is written unindented, so it is one `data:` line.
    let frame (sequence: int64) (data: JsonValue) : byte[] =
        let buffer = ArrayBufferWriter<byte>()
        buffer.Write(Encoding.ASCII.GetBytes $"event: state\nid: {sequence}\ndata: ")

        do
            use writer = new Utf8JsonWriter(buffer)
            data writer

        buffer.Write("\n\n"B)
        buffer.WrittenSpan.ToArray()

    /// A comment line: ignored by EventSource, but it keeps proxies and browsers from timing out.
    let heartbeatComment = ": heartbeat\n\n"B

    /// The sequence of the last event a reconnecting client saw (`Last-Event-ID`), 0 when none or not a
    /// sequence we could have sent: then the whole history is sent again.
    let lastEventId (request: HttpRequest) =
        match Int64.TryParse(string request.Headers["Last-Event-ID"]) with
        | true, n when n > 0L -> n
        | _ -> 0L

    let private isFinal (call: StoredCall) =
        match call.Status with
        | Live _ -> false
        | Ended _
        | Failed _ -> true

    let private lastSequence (call: StoredCall) =
        call.History |> List.fold (fun last t -> max last t.Sequence) 0L

    /// Whether nothing more will be sent: the call is final and its last transition went out.
    let isDone (call: StoredCall) (lastSent: int64) =
        isFinal call && lastSent >= lastSequence call

    /// The status line and headers of a stream, sent at once: no caching, no buffering here or in nginx
    /// (`X-Accel-Buffering`), so each frame leaves when it is written.
    let start (ctx: HttpContext) =
        ctx.Response.ContentType <- "text/event-stream"
        ctx.Response.Headers.CacheControl <- "no-store"
        ctx.Response.Headers["X-Accel-Buffering"] <- "no"
        ctx.Features.Get<IHttpResponseBodyFeature>().DisableBuffering()
        ctx.Response.StartAsync ctx.RequestAborted

    let private write (ctx: HttpContext) (bytes: byte[]) (cancel: CancellationToken) =
        task {
            let! _ = ctx.Response.BodyWriter.WriteAsync(ReadOnlyMemory bytes, cancel)
            ()
        }

    /// Sends the transitions of `call` numbered above `lastSent`, each as of itself; answers the last
    /// sequence sent (so a snapshot already seen sends nothing twice).
    let sendAfter (ctx: HttpContext) (tracking: bool) (call: StoredCall) (lastSent: int64) (cancel: CancellationToken) =
        task {
            let mutable last = lastSent

            for t in call.History do
                if t.Sequence > last then
                    do! write ctx (frame t.Sequence (CallJson.asOf tracking call t.Sequence)) cancel
                    last <- t.Sequence

            return last
        }

    /// Streams each snapshot the watch yields until the call is done, the feed closes or `cancel` fires
    /// (the client left, or the app is stopping); a heartbeat after each quiet `heartbeat`.
    let follow
        (ctx: HttpContext)
        (tracking: bool)
        (heartbeat: TimeSpan)
        (watch: CallWatch)
        (lastSent: int64)
        (cancel: CancellationToken)
        =
        task {
            let mutable last = lastSent
            let mutable streaming = true
            let mutable waiting = watch.Reader.WaitToReadAsync(cancel).AsTask()

            while streaming do
                use quiet = CancellationTokenSource.CreateLinkedTokenSource cancel
                let beat = Task.Delay(heartbeat, quiet.Token)
                let! first = Task.WhenAny(waiting, beat)
                quiet.Cancel()

                if cancel.IsCancellationRequested then
                    streaming <- false
                elif obj.ReferenceEquals(first, beat) then
                    do! write ctx heartbeatComment cancel
                elif not waiting.Result then
                    streaming <- false
                else
                    let mutable reading = true

                    while streaming && reading do
                        match watch.Reader.TryRead() with
                        | true, call ->
                            let! sent = sendAfter ctx tracking call last cancel
                            last <- sent
                            streaming <- not (isDone call last)
                        | _ -> reading <- false

                    waiting <- watch.Reader.WaitToReadAsync(cancel).AsTask()
        }
