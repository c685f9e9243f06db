namespace Callback.Calls

open System
open System.Collections.Concurrent
open System.Collections.Generic
open System.Collections.Immutable
open System.Threading.Channels
open Callback.Domain

/// One watcher of one call (an SSE stream): every snapshot of the call saved after `Watch`, newest last.
/// Each snapshot is the whole call with its history, so when a slow reader lets snapshots pile up the
/// oldest are dropped: the newest holds every transition the dropped ones did.
[<Sealed>]
type CallWatch internal (reader: ChannelReader<StoredCall>, leave: unit -> unit) =
    let mutable left = 0

    /// The call's snapshots, in the order they were saved.
    member _.Reader = reader

    interface IDisposable with
        member _.Dispose() =
            if Threading.Interlocked.Exchange(&left, 1) = 0 then
                leave ()

/// Tells the watchers of a call about each of its snapshots once the store has saved it, so whoever reads
/// the store after a frame (`GET /calls/{id}`) sees at least what the frame said. In memory and per
/// process: a watcher on another replica learns of this one's moves only through the database (with
/// PostgreSQL, `ReplicaMoves` publishes here what the other replicas save).
[<Sealed>]
type CallFeed() =
    /// Snapshots kept per watcher before the oldest is dropped.
    static let capacity = 16

    let watchers = ConcurrentDictionary<string, ImmutableArray<Channel<StoredCall>>>()

    let options =
        BoundedChannelOptions(capacity, FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true)

    let leave key (channel: Channel<StoredCall>) =
        let mutable removed = false

        while not removed do
            match watchers.TryGetValue key with
            | true, current ->
                let next = current.Remove channel

                removed <-
                    if next.IsEmpty then
                        watchers.TryRemove(KeyValuePair(key, current))
                    else
                        watchers.TryUpdate(key, next, current)
            | _ -> removed <- true

        channel.Writer.TryComplete() |> ignore

    /// Watches `callId` from now on; dispose the watch to stop.
    member _.Watch(callId: CallId) =
        let key = CallId.value callId
        let channel = Channel.CreateBounded<StoredCall> options

        watchers.AddOrUpdate(key, (fun _ -> ImmutableArray.Create channel), (fun _ current -> current.Add channel))
        |> ignore

        new CallWatch(channel.Reader, fun () -> leave key channel)

    /// Hands `call`, just saved, to every watcher of its id; never waits for one.
    member _.Publish(call: StoredCall) =
        match watchers.TryGetValue(CallId.value call.CallId) with
        | true, current ->
            for channel in current do
                channel.Writer.TryWrite call |> ignore
        | _ -> ()

    /// Whether a stream watches the call now.
    member _.IsWatched(callId: CallId) =
        watchers.ContainsKey(CallId.value callId)

    /// The calls watched now: what a feed fed from elsewhere (another replica's moves) must read again after
    /// it may have missed some.
    member _.Watched: CallId list =
        watchers.Keys |> Seq.choose CallId.tryParse |> List.ofSeq

    /// How many watches are open, over all calls.
    member _.Watching = watchers.Values |> Seq.sumBy (fun current -> current.Length)
