namespace Callback.Http

open System
open System.Collections.Generic
open Callback.Domain

/// How `GET /calls/{callId}/events` streams. Fixed in code like Kestrel's limits (see README), and a
/// service in DI only so that tests can shorten the heartbeat instead of waiting for it.
type CallStreamOptions = {
    /// A comment is sent when nothing else was for this long, so proxies and browsers keep an idle stream.
    Heartbeat: TimeSpan
    /// Streams open at once over all calls: each holds a connection, and Kestrel takes 1000 in all.
    MaxOpen: int
    /// Streams open at once on one call: a visitor's page, another tab, a reconnect not yet noticed.
    MaxPerCall: int
}

[<RequireQualifiedAccess>]
module CallStreamOptions =
    /// 10 s heartbeat (the issue asks for at most 15 s; nginx's default read timeout is 60 s), 200 streams
    /// in all (a fifth of Kestrel's connections, so callbacks always find one) and 4 per call.
    let defaults = {
        Heartbeat = TimeSpan.FromSeconds 10.0
        MaxOpen = 200
        MaxPerCall = 4
    }

/// Why a stream was not opened.
type StreamRefusal =
    /// `MaxPerCall` streams already follow this call: 429.
    | TooManyForCall
    /// `MaxOpen` streams are open: 503.
    | TooManyOpen

/// The open event streams, counted in all and per call, so a client cannot hold every connection.
[<Sealed>]
type CallStreams(options: CallStreamOptions) =
    let perCall = Dictionary<string, int>()
    let mutable total = 0

    let close key =
        lock perCall (fun () ->
            total <- total - 1

            match perCall[key] with
            | 1 -> perCall.Remove key |> ignore
            | n -> perCall[key] <- n - 1)

    /// A slot for one more stream on `callId`, released when disposed; or why not.
    member _.TryOpen(callId: CallId) : Result<IDisposable, StreamRefusal> =
        let key = CallId.value callId

        lock perCall (fun () ->
            let onCall =
                match perCall.TryGetValue key with
                | true, n -> n
                | _ -> 0

            // The client's own excess first: its answer (429) is about what it asked.
            if onCall >= options.MaxPerCall then
                Error TooManyForCall
            elif total >= options.MaxOpen then
                Error TooManyOpen
            else
                total <- total + 1
                perCall[key] <- onCall + 1
                let released = ref 0

                Ok
                    {
                        new IDisposable with
                            member _.Dispose() =
                                if Threading.Interlocked.Exchange(&released.contents, 1) = 0 then
                                    close key
                    })

    /// How many streams are open now.
    member _.Open = lock perCall (fun () -> total)
