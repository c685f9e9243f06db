/// Where a Ping round trip's time goes: three clients of one in-process AMI responder, taking turns ping by
/// ping in the same process, so that the thread pool's state (what decides a wake-up's latency) is the same
/// for all of them. Each layer adds one thing to the one before:
///   raw      NetworkStream.WriteAsync + ReadAsync until the blank line (the floor)
///   pipe     the same read through PipeReader.Create(stream) with a cancellable token, as Connection reads
///   product  Connection.Open + Client.send (encode, ActionID, per-action deadline, Connection.Receive)
module Callback.Bench.PingCompare

open System
open System.Buffers
open System.Diagnostics
open System.IO.Pipelines
open System.Net
open System.Net.Sockets
open System.Text
open System.Threading
open System.Threading.Tasks
open Callback.Ami

let private ascii (s: string) = Encoding.ASCII.GetBytes s

/// Answers every action on a connection with a Pong carrying its ActionID, after a greeting.
let private respond (client: TcpClient) =
    task {
        use client = client
        client.NoDelay <- true
        let stream = client.GetStream()
        do! stream.WriteAsync(ascii "Asterisk Call Manager/11.0.0\r\n")
        let buffer = Array.zeroCreate<byte> 4096
        let pending = StringBuilder()
        let mutable ended = false

        while not ended do
            let! n = stream.ReadAsync(buffer.AsMemory())

            if n = 0 then
                ended <- true
            else
                pending.Append(Encoding.ASCII.GetString(buffer, 0, n)) |> ignore
                let mutable text = pending.ToString()
                let mutable blank = text.IndexOf "\r\n\r\n"

                while blank >= 0 do
                    let action = text.Substring(0, blank)
                    text <- text.Substring(blank + 4)
                    let id = action.IndexOf "ActionID: "

                    let actionId =
                        if id < 0 then
                            ""
                        else
                            action.Substring(id + 10).Split('\r').[0]

                    do! stream.WriteAsync(ascii $"Response: Success\r\nActionID: {actionId}\r\nPing: Pong\r\n\r\n")
                    blank <- text.IndexOf "\r\n\r\n"

                pending.Clear().Append(text) |> ignore
    }

let private micros (from: int64) =
    float (Stopwatch.GetTimestamp() - from) * 1e6 / float Stopwatch.Frequency

let private connect (port: int) =
    task {
        let client = new TcpClient(NoDelay = true)
        do! client.ConnectAsync(IPAddress.Loopback, port)
        let stream = client.GetStream()
        // The greeting.
        let buffer = Array.zeroCreate<byte> 256
        let! _ = stream.ReadAsync(buffer.AsMemory())
        return client, stream
    }

let private percentile (p: float) (xs: ResizeArray<float>) =
    let sorted = xs |> Seq.sort |> Array.ofSeq
    sorted[min (sorted.Length - 1) (int (ceil (p * float sorted.Length)) - 1)]

/// Runs `pings` rounds (after `warmup` untimed ones); returns a markdown table.
let run (pings: int) (warmup: int) =
    task {
        let listener = new TcpListener(IPAddress.Loopback, 0)
        listener.Start()
        let port = (listener.LocalEndpoint :?> IPEndPoint).Port

        let accepting =
            task {
                for _ in 1..3 do
                    let! client = listener.AcceptTcpClientAsync()
                    respond client |> ignore
            }

        let! rawClient, raw = connect port
        let! pipeClient, pipeStream = connect port

        let pipe =
            PipeReader.Create(pipeStream, StreamPipeReaderOptions(bufferSize = 16384))

        let endpoint = {
            Host = "127.0.0.1"
            Port = port
            Transport = PlainTcp
            ConnectTimeout = TimeSpan.FromSeconds 5.0
        }

        let! opened = Connection.Open(endpoint, CancellationToken.None)
        use connection = opened |> Result.defaultWith (failwithf "open: %A")
        do! accepting
        use token = new CancellationTokenSource()
        let ping = ascii "Action: Ping\r\nActionID: p\r\n\r\n"
        let buffer = Array.zeroCreate<byte> 4096
        let times = Array.init 6 (fun _ -> ResizeArray<float>())

        let rawPing () =
            task {
                do! raw.WriteAsync(ping.AsMemory())
                let mutable seen = false

                while not seen do
                    let! n = raw.ReadAsync(buffer.AsMemory())
                    seen <- n = 0 || ReadOnlySpan(buffer, 0, n).IndexOf("\r\n\r\n"B) >= 0
            }

        let pipePing () =
            task {
                do! pipeStream.WriteAsync(ping.AsMemory())
                let mutable seen = false

                while not seen do
                    let! result = pipe.ReadAsync token.Token
                    let mutable bytes = result.Buffer

                    let whole =
                        if bytes.IsSingleSegment then
                            bytes.FirstSpan.IndexOf("\r\n\r\n"B) >= 0
                        else
                            ReadOnlySpan<byte>(BuffersExtensions.ToArray(&bytes)).IndexOf("\r\n\r\n"B) >= 0

                    seen <- result.IsCompleted || whole
                    pipe.AdvanceTo(if seen then result.Buffer.End else result.Buffer.Start)
            }

        let encodedPing =
            Action.encode {
                Name = "Ping"
                ActionId = "c"
                Headers = []
            }
            |> Result.defaultWith (failwithf "%A")

        let connectionPing () =
            task {
                let! _ = connection.Send(encodedPing, CancellationToken.None)
                let! answer = connection.Receive CancellationToken.None
                answer |> Result.defaultWith (failwithf "receive: %A") |> ignore
            }

        let deadlinePing () =
            task {
                use deadline =
                    CancellationTokenSource.CreateLinkedTokenSource CancellationToken.None

                deadline.CancelAfter(TimeSpan.FromSeconds 5.0)
                let! _ = connection.Send(encodedPing, deadline.Token)
                let! answer = connection.Receive deadline.Token
                answer |> Result.defaultWith (failwithf "receive: %A") |> ignore
            }

        /// Client.send's Ping, with the ActionID `actionId` gives.
        let clientPing (actionId: unit -> string) () =
            task {
                let! answer =
                    Client.send
                        connection
                        (TimeSpan.FromSeconds 5.0)
                        {
                            Name = "Ping"
                            ActionId = actionId ()
                            Headers = []
                        }
                        CancellationToken.None

                answer |> Result.defaultWith (failwithf "ping: %A") |> ignore
            }

        let fixedIdPing = clientPing (fun () -> "fixed")
        let productPing = clientPing Actions.newActionId

        let clients: (unit -> Task<unit>) array = [|
            rawPing
            pipePing
            connectionPing
            deadlinePing
            fixedIdPing
            productPing
        |]

        for i in 1 .. warmup + pings do
            for c in 0..5 do
                let t0 = Stopwatch.GetTimestamp()
                do! clients[c]()

                if i > warmup then
                    times[c].Add(micros t0)

        rawClient.Dispose()
        pipeClient.Dispose()
        listener.Stop()

        let names = [|
            "raw: `NetworkStream` write + read"
            "pipe: the same through `PipeReader.Create(stream)`, cancellable token"
            "connection: `Connection.Send` + `Connection.Receive`, no deadline"
            "deadline: the same with a linked `CancellationTokenSource` + `CancelAfter` per ping, as `Client.send`"
            "`Client.send` with a constant ActionID"
            "product: `Client.send` (encode, ActionID, deadline) on `Connection`"
        |]

        return
            [
                $"| client ({pings:N0} pings each, taking turns) | p50 µs | p90 µs | p99 µs |"
                "|---|---:|---:|---:|"
                for c in 0..5 do
                    $"| {names[c]} | {percentile 0.5 times[c]:F1} | {percentile 0.9 times[c]:F1} | {percentile 0.99 times[c]:F1} |"
            ]
            |> String.concat "\n"
    }
