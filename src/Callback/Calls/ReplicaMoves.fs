namespace Callback.Calls

open System
open System.Threading
open System.Threading.Channels
open System.Threading.Tasks
open Microsoft.Extensions.Hosting
open Microsoft.Extensions.Logging
open Callback.Ami
open Callback.Domain

/// Hands this replica's feed the moves every replica commits to PostgreSQL (LISTEN/NOTIFY), so a call's
/// event stream on any replica follows the call whichever replica's monitor moves it. A notification only
/// names the call: the call is read from the store and published as stored, as the monitor's own moves
/// are, and the stream skips what it has already sent by sequence (its own moves arrive twice). Once the
/// LISTEN is back after a lost connection, every watched call is read again: what was announced meanwhile
/// is lost.
[<Sealed>]
type ReplicaMoves(store: PostgresCallStore, feed: CallFeed, time: TimeProvider, logger: ILogger) =
    inherit BackgroundService()

    let moved =
        Channel.CreateUnbounded<CallId>(UnboundedChannelOptions(SingleReader = true))

    let publish (callId: CallId) (cancel: CancellationToken) =
        task {
            try
                match! (store :> ICallStore).Find(callId, cancel) with
                | Some call -> feed.Publish call
                | None -> ()
            with
            | :? OperationCanceledException -> ()
            | e ->
                logger.LogWarning(
                    "Replica moves: call {CallId} could not be read: {Error}",
                    CallId.short callId,
                    e.Message
                )
        }

    /// Reads each announced call that a stream of this replica watches, one at a time, in order.
    let forward (cancel: CancellationToken) =
        task {
            try
                while! moved.Reader.WaitToReadAsync cancel do
                    match moved.Reader.TryRead() with
                    | true, callId when feed.IsWatched callId -> do! publish callId cancel
                    | _ -> ()
            with :? OperationCanceledException ->
                ()
        }

    /// How long to wait before listening again: doubling from 1 s to 30 s, with jitter.
    static member Backoff = {
        Initial = TimeSpan.FromSeconds 1.0
        Max = TimeSpan.FromSeconds 30.0
    }

    override _.ExecuteAsync(stopping: CancellationToken) : Task =
        task {
            let forwarding = forward stopping
            let failures = ref 0

            let listening () =
                if failures.Value > 0 then
                    logger.LogInformation("Replica moves: listening again after {Failures} failures", failures.Value)

                failures.Value <- 0

                for callId in feed.Watched do
                    moved.Writer.TryWrite callId |> ignore

            while not stopping.IsCancellationRequested do
                try
                    do!
                        store.ListenForMoves(
                            listening,
                            (fun callId -> moved.Writer.TryWrite callId |> ignore),
                            stopping
                        )
                with
                | :? OperationCanceledException when stopping.IsCancellationRequested -> ()
                | e ->
                    failures.Value <- failures.Value + 1

                    if failures.Value = 1 then
                        logger.LogWarning(
                            "Replica moves: the LISTEN connection failed ({Error}); until it is back, event streams follow only this replica's moves",
                            e.Message
                        )

                    try
                        do!
                            Task.Delay(
                                Backoff.delay ReplicaMoves.Backoff failures.Value (Random.Shared.NextDouble()),
                                time,
                                stopping
                            )
                    with :? OperationCanceledException ->
                        ()

            do! forwarding
        }
