/// A fake Asterisk manager on 127.0.0.1 for the call-status latency benchmark (`Callback.Bench status`). It
/// answers the sidecar's short callback sessions (Challenge, Login, Originate, Logoff) and its long-lived
/// monitor session (Login, Ping, CoreShowChannels); it sends the monitor a storm of unrelated events at a set
/// rate, and slips a call's events into that storm when asked, noting the instant they were written.
module Callback.Bench.FakeAsterisk

open System
open System.Collections.Concurrent
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Sockets
open System.Text
open System.Threading
open System.Threading.Tasks

/// The monitor's user name in the sidecar's settings: its session is the one the events go to.
[<Literal>]
let MonitorUser = "callback-monitor"

/// Events to write at the end of the next storm batch; completed with the Stopwatch instant of that write.
type private Injection = {
    Bytes: byte[]
    Written: TaskCompletionSource<int64>
}

/// One AMI action as the sidecar sent it: its name and headers.
type private Action = {
    Name: string
    Headers: Map<string, string>
}

/// Reads one action (lines up to a blank one); None at the end of the stream.
let private readAction (reader: StreamReader) =
    let rec lines acc =
        match reader.ReadLine() with
        | null -> None
        | "" when List.isEmpty acc -> lines acc
        | "" -> Some(List.rev acc)
        | line -> lines (line :: acc)

    lines []
    |> Option.map (fun lines ->
        let headers =
            lines
            |> List.choose (fun l ->
                match l.IndexOf ':' with
                | -1 -> None
                | i -> Some(l.Substring(0, i).Trim().ToLowerInvariant(), l.Substring(i + 1).Trim()))
            |> Map.ofList

        {
            Name = headers |> Map.tryFind "action" |> Option.defaultValue ""
            Headers = headers
        })

let private block (lines: string list) =
    Encoding.ASCII.GetBytes(String.concat "" [ for l in lines -> l + "\r\n" ] + "\r\n")

/// The answer Asterisk 22 gives each action the sidecar sends, with its ActionID; whether to close after it.
let private answer (action: Action) =
    let id = action.Headers |> Map.tryFind "actionid" |> Option.defaultValue ""

    let response (kind: string) (rest: string list) =
        block ([ $"Response: {kind}"; $"ActionID: {id}" ] @ rest)

    match action.Name.ToLowerInvariant() with
    | "challenge" -> response "Success" [ "Challenge: 840212397" ], false
    | "login" -> response "Success" [ "Message: Authentication accepted" ], false
    | "originate" -> response "Success" [ "Message: Originate successfully queued" ], false
    | "ping" -> response "Success" [ "Ping: Pong"; "Timestamp: 1764590000.000000" ], false
    | "coreshowchannels" ->
        Array.append
            (response "Success" [ "EventList: start"; "Message: Channels will follow" ])
            (block [
                "Event: CoreShowChannelsComplete"
                $"ActionID: {id}"
                "EventList: Complete"
                "ListItems: 0"
            ]),
        false
    | "logoff" -> response "Goodbye" [ "Message: Thanks for all the fish." ], true
    | _ -> response "Error" [ "Message: Invalid/unknown command" ], false

/// The fake server: `storm` is the cycle of unrelated events (each one whole AMI event, its blank line
/// included) sent to the monitor at `Rate` events per second.
type Server(storm: byte[][]) =
    let listener = new TcpListener(IPAddress.Loopback, 0)
    let stop = new CancellationTokenSource()
    let injections = ConcurrentQueue<Injection>()
    let originated = new BlockingCollection<string>()

    let monitorReady =
        TaskCompletionSource<unit>(TaskCreationOptions.RunContinuationsAsynchronously)

    let mutable rate = 0.0
    let mutable stormSent = 0L
    let mutable monitors = 0

    /// Writes the storm (and any injection, at the end of a batch) to the monitor, paced by the clock, until
    /// `closed` is cancelled or the connection fails.
    let stormBatches (stream: Stream) (gate: obj) (closed: CancellationToken) =
        let batch = new MemoryStream()
        let mutable next = 0
        let mutable baseRate = -1.0
        let mutable baseAt = 0L
        let mutable baseSent = 0L

        while not stop.IsCancellationRequested && not closed.IsCancellationRequested do
            let now = Stopwatch.GetTimestamp()
            let wanted = Volatile.Read &rate

            if wanted <> baseRate then
                baseRate <- wanted
                baseAt <- now
                baseSent <- stormSent

            let due =
                baseSent + int64 (float (now - baseAt) / float Stopwatch.Frequency * wanted)

            batch.SetLength 0L

            for _ in 1L .. min 5000L (due - stormSent) do
                batch.Write(storm[next], 0, storm[next].Length)
                next <- (next + 1) % storm.Length
                stormSent <- stormSent + 1L

            let injection =
                match injections.TryDequeue() with
                | true, i ->
                    batch.Write(i.Bytes, 0, i.Bytes.Length)
                    Some i
                | _ -> None

            if batch.Length > 0L then
                let at =
                    lock gate (fun () ->
                        let at = Stopwatch.GetTimestamp()
                        stream.Write(batch.GetBuffer(), 0, int batch.Length)
                        at)

                injection |> Option.iter (fun i -> i.Written.SetResult at)

            Thread.Sleep 1

    let stormLoop stream gate closed =
        try
            stormBatches stream gate closed
        with
        | :? IOException
        | :? ObjectDisposedException -> ()

    /// One manager connection: greeting, then each action answered; the monitor's gets the storm too.
    let serve (client: TcpClient) =
        use client = client
        client.NoDelay <- true
        use stream = client.GetStream()
        use reader = new StreamReader(stream, Encoding.ASCII)
        let gate = obj ()
        use closed = new CancellationTokenSource()

        let send (bytes: byte[]) =
            lock gate (fun () -> stream.Write bytes)

        send (Encoding.ASCII.GetBytes "Asterisk Call Manager/11.0.0\r\n")
        let mutable running = true

        try
            while running do
                match readAction reader with
                | None -> running <- false
                | Some action ->
                    let bytes, close = answer action
                    send bytes
                    running <- not close
                    let name = action.Name.ToLowerInvariant()

                    if name = "login" && action.Headers.TryFind "username" = Some MonitorUser then
                        Interlocked.Increment &monitors |> ignore
                        let token = closed.Token
                        Thread((fun () -> stormLoop stream gate token), IsBackground = true).Start()
                    elif name = "coreshowchannels" then
                        monitorReady.TrySetResult() |> ignore
                    elif name = "originate" then
                        action.Headers.TryFind "channelid" |> Option.iter originated.Add
        with
        | :? IOException
        | :? ObjectDisposedException -> ()

        closed.Cancel()

    let accept () =
        try
            while not stop.IsCancellationRequested do
                let client = listener.AcceptTcpClient()
                Thread((fun () -> serve client), IsBackground = true).Start()
        with
        | :? SocketException
        | :? ObjectDisposedException -> ()

    do
        listener.Start()
        Thread(accept, IsBackground = true).Start()

    member _.Port = (listener.LocalEndpoint :?> IPEndPoint).Port

    /// Unrelated events per second sent to the monitor from now on.
    member _.Rate
        with get () = Volatile.Read &rate
        and set (value: float) = Volatile.Write(&rate, value)

    /// Storm events written so far.
    member _.StormSent = Interlocked.Read &stormSent

    /// Monitor sessions that logged in (more than one means the sidecar reconnected).
    member _.MonitorLogins = Volatile.Read &monitors

    /// Completed once the monitor has reconciled (its CoreShowChannels): it is reading events.
    member _.MonitorReady = monitorReady.Task :> Task

    /// The ChannelId of the next Originate the sidecar sends, within `timeout`.
    member _.NextOriginate(timeout: TimeSpan) =
        let mutable channelId = null

        if originated.TryTake(&channelId, timeout) then
            Some channelId
        else
            None

    /// Writes `bytes` to the monitor at the end of the next storm batch; the Stopwatch instant of the write.
    member _.Inject(bytes: byte[]) =
        let written =
            TaskCompletionSource<int64>(TaskCreationOptions.RunContinuationsAsynchronously)

        injections.Enqueue { Bytes = bytes; Written = written }
        written.Task

    interface IDisposable with
        member _.Dispose() =
            stop.Cancel()
            listener.Stop()
            originated.Dispose()
