/// The monitor writes through to the store: each change saved in order with the compare-and-set, then the
/// call as stored published on the feed; a Stale answer is never overwritten; at start the store's live
/// calls are recovered and only the first reconcile decides their fate. Against the fake AMI server.
module Callback.Tests.StoreWriterTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Microsoft.Extensions.Logging
open Callback.Calls
open Callback.Domain
open Callback.Tests.FakeAmi
open Callback.Tests.SessionTests
open Callback.Tests.MonitorTests

let private cancel = CancellationToken.None

/// Every snapshot the watch has received so far.
let private snapshots (watch: CallWatch) = [
    let mutable item = Unchecked.defaultof<StoredCall>

    while watch.Reader.TryRead &item do
        yield item
]

/// The store, except that every `Save` answers `Stale` (another writer got there first); counts the calls.
type private StaleStore(inner: ICallStore) =
    let mutable saves = 0
    let mutable finds = 0
    member _.Saves = Volatile.Read &saves
    member _.Finds = Volatile.Read &finds

    interface ICallStore with
        member _.Create(call, ct) = inner.Create(call, ct)

        member _.Save(_, _, _, _) =
            Interlocked.Increment &saves |> ignore
            Task.FromResult Stale

        member _.Find(id, ct) =
            Interlocked.Increment &finds |> ignore
            inner.Find(id, ct)

        member _.ListLive ct = inner.ListLive ct
        member _.Prune(cutoff, ct) = inner.Prune(cutoff, ct)

/// The store, except that the first `failing` saves throw (a full disk); counts the saves tried.
type private FailingStore(inner: ICallStore, failing: int) =
    let mutable saves = 0
    member _.Saves = Volatile.Read &saves

    interface ICallStore with
        member _.Create(call, ct) = inner.Create(call, ct)

        member _.Save(id, expected, change, ct) =
            if Interlocked.Increment &saves <= failing then
                Task.FromException<SaveResult>(IO.IOException "database or disk is full")
            else
                inner.Save(id, expected, change, ct)

        member _.Find(id, ct) = inner.Find(id, ct)
        member _.ListLive ct = inner.ListLive ct
        member _.Prune(cutoff, ct) = inner.Prune(cutoff, ct)

/// The store, except that reading a call back throws; counts the saves.
type private UnreadableStore(inner: ICallStore) =
    let mutable saves = 0
    member _.Saves = Volatile.Read &saves

    interface ICallStore with
        member _.Create(call, ct) = inner.Create(call, ct)

        member _.Save(id, expected, change, ct) =
            Interlocked.Increment &saves |> ignore
            inner.Save(id, expected, change, ct)

        member _.Find(_, _) =
            Task.FromException<StoredCall option>(IO.IOException "disk I/O error")

        member _.ListLive ct = inner.ListLive ct
        member _.Prune(cutoff, ct) = inner.Prune(cutoff, ct)

let private monitorLogged port store feed (log: ILogger) =
    new CallMonitor(supervisorFor port, store, feed, OutcomeCounts(), timing, TimeProvider.System, log)

let private stopped (monitor: CallMonitor) =
    Expect.isTrue (monitor.StopAsync().Wait(TimeSpan.FromSeconds 5.0)) "stopped"

let private writeThrough =
    test "a recorded call's moves reach the store and then the feed, in order, numbered from 1" {
        use server = new Server(script (monitorAsterisk (fun () -> [])))
        use temp = new TestStore.TempStore()
        let feed = CallFeed()
        let monitor = monitorOn server.Port temp.Store feed
        let transcript = fixture "sip-callback-en.txt"
        let channelId = channelIdIn transcript
        let callId = track temp monitor channelId
        use watch = feed.Watch callId
        monitor.Start()
        eventually "reconciled once" (fun () -> countOf "CoreShowChannels" server = 1)
        server.Push transcript |> within 5.0

        eventually "final in the store" (fun () ->
            (temp.Find callId).Status
            |> (function
            | Live _ -> false
            | _ -> true))

        let stored = temp.Find callId

        Expect.equal
            (TestStore.states stored)
            [
                State.Queued
                State.Ringing
                State.Answered
                State.Connecting
                State.Bridged
                State.Ended
            ]
            "the whole history"

        Expect.equal (stored.History |> List.map _.Sequence) [ 1L .. 6L ] "numbered from 1"
        eventually "the final snapshot published" (fun () -> monitor.Live.IsEmpty)
        let seen = snapshots watch
        Expect.isNonEmpty seen "snapshots published"
        // Mutation caught: publishing before the save, or the fold's call instead of the stored one.
        Expect.equal (List.last seen) stored "the last snapshot is the call as stored"

        for earlier, later in List.pairwise seen do
            Expect.isLessThan earlier.History.Length later.History.Length "each snapshot adds transitions"
            Expect.equal (later.History |> List.take earlier.History.Length) earlier.History "in order"

        stopped monitor
    }

let private stale =
    test "a Stale answer reloads the call, logs a warning and never overwrites it" {
        use server = new Server(script (monitorAsterisk (fun () -> [])))
        use temp = new TestStore.TempStore()
        let store = StaleStore(temp.Store)
        let log = new TestSidecar.CapturedLog()

        let monitor =
            monitorLogged server.Port store (CallFeed()) ((log :> ILoggerProvider).CreateLogger "monitor")

        let channelId = "0123456789abcdef0123456789abcdef-1"
        let callId = track temp monitor channelId
        monitor.Start()
        eventually "reconciled once" (fun () -> countOf "CoreShowChannels" server = 1)

        let ringing =
            $"Event: Newstate\r\nChannel: PJSIP/trunk-1\r\nChannelState: 5\r\nUniqueid: {channelId}\r\nLinkedid: {channelId}\r\n\r\n"

        server.Push ringing |> within 5.0
        eventually "the call left the working set" (fun () -> monitor.Live.IsEmpty)

        let answered =
            $"Event: Newstate\r\nChannel: PJSIP/trunk-1\r\nChannelState: 6\r\nUniqueid: {channelId}\r\nLinkedid: {channelId}\r\n\r\n"

        server.Push answered |> within 5.0
        Thread.Sleep 200
        Expect.equal store.Saves 1 "one save tried; the later move is not written over the other writer's"
        Expect.isGreaterThanOrEqual store.Finds 1 "reloaded"
        Expect.equal (TestStore.states (temp.Find callId)) [ State.Queued ] "the store left as it was"

        Expect.exists
            log.Lines
            (fun line ->
                line.StartsWith "Warning"
                && line.Contains(CallId.short callId)
                && line.Contains "another writer")
            "one warning naming the call by its short id"

        Expect.all log.Lines (fun line -> not (line.Contains(CallId.value callId))) "never the whole id"
        stopped monitor
    }

let private ringingOf (channelId: string) =
    $"Event: Newstate\r\nChannel: PJSIP/trunk-1\r\nChannelState: 5\r\nUniqueid: {channelId}\r\nLinkedid: {channelId}\r\n\r\n"

/// A monitor on a store whose first `failing` saves throw, a ringing call pushed: the store, the monitor,
/// the error lines.
let private failingSaves
    (failing: int)
    (check: TestStore.TempStore -> FailingStore -> CallMonitor -> CallId -> (unit -> string list) -> unit)
    =
    use server = new Server(script (monitorAsterisk (fun () -> [])))
    use temp = new TestStore.TempStore()
    let store = FailingStore(temp.Store, failing)
    let log = new TestSidecar.CapturedLog()

    let monitor =
        monitorLogged server.Port store (CallFeed()) ((log :> ILoggerProvider).CreateLogger "monitor")

    let channelId = "0123456789abcdef0123456789abcdef-1"
    let callId = track temp monitor channelId
    monitor.Start()
    eventually "reconciled once" (fun () -> countOf "CoreShowChannels" server = 1)
    server.Push(ringingOf channelId) |> within 5.0
    check temp store monitor callId (fun () -> log.Lines |> List.filter (fun l -> l.StartsWith "Error"))
    stopped monitor

let private retried =
    test "a move the store fails to save is retried until it is saved" {
        failingSaves 2 (fun temp store _ callId errors ->
            eventually "saved at the third try" (fun () -> (temp.Find callId).Status = Live Ringing)
            Expect.equal store.Saves 3 "two failures, then the save"
            Expect.hasLength (errors ()) 2 "one error line per failure")
    }

let private givenUp =
    test "a store that keeps failing: the move is retried 5 times, then the call is left as stored" {
        failingSaves Int32.MaxValue (fun temp store monitor callId errors ->
            eventually "left" (fun () -> monitor.Live.IsEmpty)
            Thread.Sleep 300
            // Mutation caught: retrying for ever (the log and the memory would grow with a broken disk).
            Expect.equal store.Saves 6 "the first try and 5 retries"
            Expect.hasLength (errors ()) 6 "one line each, the last saying it gives up"
            Expect.equal (temp.Find callId).Status (Live Queued) "the store as it was")
    }

let private unreadable =
    test "a call saved but not readable back is not saved again, and a final one still leaves the working set" {
        use server = new Server(script (monitorAsterisk (fun () -> [])))
        use temp = new TestStore.TempStore()
        let store = UnreadableStore(temp.Store)
        let log = new TestSidecar.CapturedLog()

        let monitor =
            monitorLogged server.Port store (CallFeed()) ((log :> ILoggerProvider).CreateLogger "monitor")

        let channelId = "0123456789abcdef0123456789abcdef-1"
        let callId = track temp monitor channelId
        monitor.Start()
        eventually "reconciled once" (fun () -> countOf "CoreShowChannels" server = 1)

        let channel =
            $"Channel: PJSIP/trunk-1\r\nUniqueid: {channelId}\r\nLinkedid: {channelId}\r\n"

        server.Push(
            $"Event: Newchannel\r\n{channel}\r\nEvent: Hangup\r\n{channel}Cause: 17\r\nCause-txt: User busy\r\n\r\n"
        )
        |> within 5.0

        eventually "left the working set" (fun () -> monitor.Live.IsEmpty)
        Thread.Sleep 200
        // Mutation caught: a failed read taken for a failed save (retried, and the final call kept in memory).
        Expect.equal store.Saves 1 "saved once"
        Expect.equal (TestStore.states (temp.Find callId)) [ State.Queued; State.Failed ] "saved as failed"
        Expect.exists log.Lines (fun l -> l.Contains "could not be read back") "the read logged"
        stopped monitor
    }

/// The store, except that every `Save` waits for `release`.
type private SlowStore(inner: ICallStore, release: ManualResetEventSlim) =
    interface ICallStore with
        member _.Create(call, ct) = inner.Create(call, ct)

        member _.Save(id, expected, change, ct) =
            task {
                do! Task.Run(fun () -> release.Wait(TimeSpan.FromSeconds 10.0) |> ignore)
                return! inner.Save(id, expected, change, ct)
            }

        member _.Find(id, ct) = inner.Find(id, ct)
        member _.ListLive ct = inner.ListLive ct
        member _.Prune(cutoff, ct) = inner.Prune(cutoff, ct)

let private flushedAtStop =
    test "stopping the monitor saves the moves still queued before it returns" {
        use server = new Server(script (monitorAsterisk (fun () -> [])))
        use temp = new TestStore.TempStore()
        use release = new ManualResetEventSlim(false)
        let monitor = monitorOn server.Port (SlowStore(temp.Store, release)) (CallFeed())
        let channelId = "0123456789abcdef0123456789abcdef-1"
        let callId = track temp monitor channelId
        monitor.Start()
        eventually "reconciled once" (fun () -> countOf "CoreShowChannels" server = 1)
        server.Push(ringingOf channelId) |> within 5.0
        eventually "folded" (fun () -> monitor.Live |> List.exists (fun t -> t.Call.Status = Live Ringing))
        let stopping = monitor.StopAsync()
        Thread.Sleep 200
        Expect.isFalse stopping.IsCompleted "waits for the queued save"
        release.Set()
        Expect.isTrue (stopping.Wait(TimeSpan.FromSeconds 5.0)) "stopped"
        // Mutation caught: a stop that completes the queue without waiting for the writer.
        Expect.equal (temp.Find callId).Status (Live Ringing) "saved before the stop returned"
    }

/// A live call recorded an hour ago, now ringing, as a monitor that stopped would have left it.
let private leftRinging (temp: TestStore.TempStore) (channelId: string) =
    let callId, attempt = (ChannelId.tryParse channelId).Value
    let at = DateTimeOffset.UtcNow.AddHours -1.0
    temp.Store.Create(TestStore.newCall callId attempt at, cancel).Result |> ignore

    let change = {
        Attempt = attempt
        Status = Live Ringing
        Transitions = [ { State = State.Ringing; At = at } ]
        At = at
    }

    let saved =
        temp.Store
            .Save(
                callId,
                {
                    Attempt = attempt
                    State = State.Queued
                },
                change,
                cancel
            )
            .Result

    Expect.equal saved Saved "left ringing"
    callId

let private recovery =
    test "at start the store's live calls are recovered; the first reconcile, not the deadline, decides" {
        let listed = "fedcba9876543210fedcba9876543210-1"
        let gone = "0123456789abcdef0123456789abcdef-1"
        use release = new ManualResetEventSlim(false)

        // CoreShowChannels is answered only once the test has swept past the channel deadline.
        let asterisk (a: ReceivedAction) =
            if a.Name = "CoreShowChannels" then
                release.Wait(TimeSpan.FromSeconds 10.0) |> ignore

            monitorAsterisk (fun () -> [ listed ]) a

        use server = new Server(script asterisk)
        use temp = new TestStore.TempStore()
        let listedId, goneId = leftRinging temp listed, leftRinging temp gone
        let monitor = monitorOn server.Port temp.Store (CallFeed())
        monitor.Start()
        Expect.equal (monitor.Live |> List.map _.CallId |> Set.ofList) (Set.ofList [ listedId; goneId ]) "recovered"
        eventually "reconcile asked" (fun () -> countOf "CoreShowChannels" server = 1)
        // Mutation caught: a recovered call (no leg known) lost by the channel deadline before reconciling.
        monitor.Sweep()
        Thread.Sleep 200
        Expect.equal (monitor.Live.Length) 2 "neither lost before the reconcile"
        Expect.equal (temp.Find goneId).Status (Live Ringing) "still ringing in the store"
        release.Set()
        eventually "the gone call is lost" (fun () -> (temp.Find goneId).Status = Failed(FailedOutcome.Lost, None))
        Expect.equal (temp.Find listedId).Status (Live Ringing) "the listed one is followed again"
        Expect.equal (monitor.Live |> List.map _.CallId) [ listedId ] "only it left in the working set"
        monitor.Sweep()
        Expect.equal (monitor.Live |> List.map _.CallId) [ listedId ] "and the deadline no longer loses it"
        stopped monitor
    }

/// The `data:` JSON of every frame of a whole event stream, in order, with its `id:`.
let private frames (stream: string) = [
    for block in stream.Split("\n\n", StringSplitOptions.RemoveEmptyEntries) do
        let lines = block.Split '\n'

        let field (name: string) =
            lines
            |> Array.tryFind (fun l -> l.StartsWith(name + ": "))
            |> Option.map (fun l -> l.Substring(name.Length + 2))

        match field "id", field "data" with
        | Some id, Some data -> yield int64 id, Text.Json.JsonDocument.Parse(data).RootElement
        | _ -> ()
]

let private inTheApp =
    test "in the app: a call's SSE frames and its GET come from the monitor's writes, and agree" {
        use server = tlsAsterisk ()

        use sidecar =
            new TestSidecar.Sidecar(
                TestSidecar.fakeAmiConfig
                    [
                        "Monitor:Username", "callback-monitor"
                        "Monitor:Secret", "monitor-s3cret"
                        // The busy call is final at once, not retried.
                        "Callback:MaxAttempts", "1"
                    ]
                    server.Port
            )

        eventually "the monitor reconciled" (fun () -> countOf "CoreShowChannels" server = 1)

        let status, body =
            sidecar.Post(TestSidecar.form [ "phoneNumber", TestNumbers.Allowed; "language", "en" ])

        Expect.equal (int status) 200 "placed"

        let callId =
            Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("callId").GetString()

        let channelId = callId + "-1"

        let stream = sidecar.Client.GetStringAsync($"/calls/{callId}/events")

        let channel =
            $"Channel: PJSIP/trunk-1\r\nUniqueid: {channelId}\r\nLinkedid: {channelId}\r\n"

        server.Push(
            $"Event: Newchannel\r\n{channel}\r\n"
            + $"Event: Newstate\r\n{channel}ChannelState: 5\r\n\r\n"
            + $"Event: Hangup\r\n{channel}Cause: 17\r\nCause-txt: User busy\r\n\r\n"
        )
        |> within 5.0

        Expect.isTrue (stream.Wait(TimeSpan.FromSeconds 10.0)) "the stream ended after the final state"
        let sent = frames stream.Result
        Expect.equal (sent |> List.map fst) [ 1L; 2L; 3L ] "one frame per transition, numbered"

        Expect.equal
            (sent |> List.map (fun (_, data) -> data.GetProperty("state").GetString()))
            [ "queued"; "ringing"; "failed" ]
            "queued, ringing, failed"

        let root =
            Text.Json.JsonDocument.Parse(sidecar.Client.GetStringAsync($"/calls/{callId}").Result).RootElement

        Expect.equal (root.GetProperty("outcome").GetString()) "busy" "GET says busy"
        Expect.equal (root.GetProperty("hangupCause").GetProperty("code").GetInt32()) 17 "with its cause"
        Expect.equal (root.GetRawText()) ((snd (List.last sent)).GetRawText()) "the last frame is what GET answers"
    }

[<Tests>]
let tests =
    testSequenced
    <| testList "Call monitor write-through" [
        writeThrough
        stale
        retried
        givenUp
        unreadable
        flushedAtStop
        recovery
        inTheApp
    ]
