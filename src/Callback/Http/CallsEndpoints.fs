namespace Callback.Http

open System.Threading
open Microsoft.AspNetCore.Http
open Callback
open Callback.Calls
open Callback.Domain

/// What the status routes read: the store (the truth), the feed (what changed since), and whether a
/// monitor moves calls at all.
type CallStatusSources = {
    Store: ICallStore
    Feed: CallFeed
    Tracking: bool
}

/// `GET /calls/{callId}` and `GET /calls/{callId}/events`: a call's status for whoever holds its id. The
/// id is the capability (128 random bits), so an unknown id and a path that is no id at all get the same
/// 404, and only a well-formed id reaches the store.
[<RequireQualifiedAccess>]
module CallsEndpoints =

    let private notFound =
        refuse 404 [
            {
                Field = "callId"
                Message = "No call has this id."
            }
        ]

    /// Status answers are never cached: by the browser (a back button would show a stale state) or a proxy.
    let private noStore: HttpHandler =
        fun next ctx ->
            ctx.Response.Headers.CacheControl <- "no-store"
            next ctx

    /// The route's `{callId}` when it is one of ours; 404 in the contract otherwise, without a lookup.
    let private withCallId (next: CallId -> HttpHandler) : HttpHandler =
        fun after ctx ->
            match CallId.tryParse (string ctx.Request.RouteValues["callId"]) with
            | Some callId -> next callId after ctx
            | None -> notFound after ctx

    /// `GET /calls/{callId}`: the call as stored, or 404.
    let status (sources: CallStatusSources) : HttpHandler =
        noStore
        >=> withCallId (fun callId next ctx ->
            task {
                match! sources.Store.Find(callId, ctx.RequestAborted) with
                | Some call -> return! json (CallJson.call sources.Tracking call) next ctx
                | None -> return! notFound next ctx
            })

    let private refused (refusal: StreamRefusal) : HttpHandler =
        match refusal with
        | TooManyForCall ->
            refuse 429 [
                {
                    Field = "request"
                    Message = "Too many streams already follow this call; close one first."
                }
            ]
        | TooManyOpen ->
            fun next ctx ->
                ctx.Response.Headers.RetryAfter <- "30"

                refuse
                    503
                    [
                        {
                            Field = "server"
                            Message = "Too many status streams are open; try again in a minute."
                        }
                    ]
                    next
                    ctx

    /// Watches the feed first, then reads the store: a change saved in between is in the watch, and the
    /// sequences keep it from being sent twice. Without a monitor nothing will move: history, then the end.
    let private stream (sources: CallStatusSources) (heartbeat) (stopping: CancellationToken) callId : HttpHandler =
        fun next ctx ->
            task {
                use watch = sources.Feed.Watch callId

                match! sources.Store.Find(callId, ctx.RequestAborted) with
                | None -> return! notFound next ctx
                | Some call ->
                    use cancel =
                        CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, stopping)

                    try
                        do! EventStream.start ctx

                        let! sent =
                            EventStream.sendAfter
                                ctx
                                sources.Tracking
                                call
                                (EventStream.lastEventId ctx.Request)
                                cancel.Token

                        if sources.Tracking && not (EventStream.isDone call sent) then
                            do! EventStream.follow ctx sources.Tracking heartbeat watch sent cancel.Token
                    with :? System.OperationCanceledException when cancel.IsCancellationRequested ->
                        ()

                    return! next ctx
            }

    /// `GET /calls/{callId}/events`: the history so far, then each new transition, until a final state;
    /// 404 before any stream for an unknown id; 429/503 beyond the open streams' bounds. `stopping` (the
    /// app's) ends every stream at shutdown, so the host never waits for them.
    let events
        (sources: CallStatusSources)
        (streams: CallStreams)
        (options: CallStreamOptions)
        (stopping: CancellationToken)
        : HttpHandler =
        noStore
        >=> withCallId (fun callId next ctx ->
            match streams.TryOpen callId with
            | Result.Error refusal -> refused refusal next ctx
            | Ok slot ->
                task {
                    use _ = slot
                    return! stream sources options.Heartbeat stopping callId next ctx
                })
