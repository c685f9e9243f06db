/// The .NET clients of the loopback comparison (bench/stream/run.sh): each connects to bench/stream's fake
/// server, logs in, counts the events until the end marker, then times sequential Pings. One JSON line
/// on stdout, as the other languages' clients in bench/peers print.
module Callback.Bench.StreamClients

open System
open System.Buffers
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.IO.Pipelines
open System.Net
open System.Net.Sockets
open System.Text
open System.Text.Json
open System.Threading
open System.Threading.Tasks
open Callback.Ami
open Callback.Bench.Readers

type Options = {
    Client: string
    Port: int
    Pings: int
    Warmup: int
}

type Outcome = {
    /// Events received in all, warm-up included (markers excluded).
    Events: int
    /// Events received before the warm-up marker.
    WarmEvents: int
    Ended: bool
    /// From answering the warm-up marker to the end marker, by this client's clock.
    ElapsedSeconds: float
    PingMicros: float list
    Error: string
}

let private micros (from: int64) =
    float (Stopwatch.GetTimestamp() - from) * 1e6 / float Stopwatch.Frequency

let private seconds (from: int64) =
    float (Stopwatch.GetTimestamp() - from) / float Stopwatch.Frequency

let private ascii (s: string) = Encoding.ASCII.GetBytes s

let private loginBytes =
    ascii "Action: Login\r\nActionID: bench-login\r\nUsername: bench\r\nSecret: bench\r\nEvents: on\r\n\r\n"

let private connect (port: int) =
    task {
        let socket = new Socket(SocketType.Stream, ProtocolType.Tcp, NoDelay = true)
        do! socket.ConnectAsync(IPAddress.Loopback, port)
        return new NetworkStream(socket, ownsSocket = true)
    }

// ---- raw floor: read the bytes, count "\r\n\r\n" ----

let private pingBytes = ascii "Action: Ping\r\nActionID: warm\r\n\r\n"

/// The last bytes a stream delivered: the raw floor parses nothing, it only looks whether the stream
/// paused on one of the server's markers (the server writes nothing after a marker until we act).
[<Sealed>]
type private Tail() =
    let bytes = Array.zeroCreate<byte> 96
    let mutable length = 0

    member _.Remember(chunk: ReadOnlySpan<byte>) =
        if chunk.Length >= bytes.Length then
            chunk.Slice(chunk.Length - bytes.Length).CopyTo(Span bytes)
            length <- bytes.Length
        else
            let keep = min length (bytes.Length - chunk.Length)
            Array.blit bytes (length - keep) bytes 0 keep
            chunk.CopyTo(Span(bytes, keep, chunk.Length))
            length <- keep + chunk.Length

    member _.EndsWithMarker(name: byte[]) =
        let t = ReadOnlySpan(bytes, 0, length)
        t.EndsWith(ReadOnlySpan "\r\n\r\n"B) && t.IndexOf(ReadOnlySpan name) >= 0

let private raw (o: Options) =
    task {
        use! stream = connect o.Port
        let buffer = Array.zeroCreate<byte> ReadSize
        // The greeting comes alone: the server waits for our Login before it writes anything else.
        let mutable greeted = false

        while not greeted do
            let! n = stream.ReadAsync(buffer.AsMemory())

            if n = 0 then
                failwith "closed before the greeting"

            greeted <- buffer.AsSpan(0, n).IndexOf(byte '\n') >= 0

        let counter = SeparatorCounter()
        let tail = Tail()
        let mutable blocks = 0

        let readUntil (marker: byte[]) =
            task {
                let mutable seen = false

                while not seen do
                    let! n = stream.ReadAsync(buffer.AsMemory())

                    if n = 0 then
                        failwith "closed before the end marker"

                    let chunk = ReadOnlySpan(buffer, 0, n)
                    blocks <- blocks + counter.Count chunk
                    tail.Remember chunk
                    seen <- tail.EndsWithMarker marker
            }

        do! stream.WriteAsync(loginBytes.AsMemory())
        // Login response + warm-up events + marker.
        do! readUntil "UserEvent: WarmupEnd\r\n"B
        let warmEvents = blocks - 2
        do! stream.WriteAsync(pingBytes.AsMemory())
        let started = Stopwatch.GetTimestamp()
        // Pong + events + marker.
        do! readUntil "UserEvent: StreamEnd\r\n"B
        let elapsed = seconds started
        let events = blocks - 4
        let samples = ResizeArray()
        let ping = ascii "Action: Ping\r\nActionID: p\r\n\r\n"

        for i in 1 .. o.Warmup + o.Pings do
            let t0 = Stopwatch.GetTimestamp()
            do! stream.WriteAsync(ping.AsMemory())
            let mutable answered = false

            while not answered do
                let! n = stream.ReadAsync(buffer.AsMemory())

                if n = 0 then
                    failwith "closed during pings"

                answered <- counter.Count(ReadOnlySpan(buffer, 0, n)) > 0

            if i > o.Warmup then
                samples.Add(micros t0)

        return {
            Events = events
            WarmEvents = warmEvents
            Ended = true
            ElapsedSeconds = elapsed
            PingMicros = List.ofSeq samples
            Error = null
        }
    }

// ---- naive: StreamReader.ReadLineAsync + a Dictionary per message ----

let private naive (o: Options) =
    task {
        use! stream = connect o.Port

        use reader =
            new StreamReader(stream, Encoding.UTF8, false, ReadSize, leaveOpen = true)

        let! greeting = reader.ReadLineAsync()

        if isNull greeting then
            failwith "closed before the greeting"

        let readMessage () =
            task {
                let message = Dictionary<string, string>()
                let mutable complete = false

                while not complete do
                    let! line = reader.ReadLineAsync()

                    if isNull line then failwith "closed"
                    elif line.Length = 0 then complete <- message.Count > 0
                    else naiveAdd message line

                return message
            }

        do! stream.WriteAsync(loginBytes.AsMemory())
        let mutable started = 0L
        let mutable events = 0
        let mutable warmEvents = -1
        let mutable ended = false

        while not ended do
            let! message = readMessage ()

            match message.TryGetValue "Event" with
            | true, "UserEvent" when message.GetValueOrDefault "UserEvent" = "WarmupEnd" ->
                warmEvents <- events
                do! stream.WriteAsync(pingBytes.AsMemory())
                started <- Stopwatch.GetTimestamp()
            | true, "UserEvent" when message.GetValueOrDefault "UserEvent" = "StreamEnd" -> ended <- true
            | true, _ -> events <- events + 1
            | _ -> ()

        let elapsed = seconds started
        let samples = ResizeArray()

        for i in 1 .. o.Warmup + o.Pings do
            let t0 = Stopwatch.GetTimestamp()
            let id = string i
            do! stream.WriteAsync((Encoding.UTF8.GetBytes $"Action: Ping\r\nActionID: {id}\r\n\r\n").AsMemory())
            let mutable answered = false

            while not answered do
                let! message = readMessage ()
                answered <- message.ContainsKey "Response" && message.GetValueOrDefault "ActionID" = id

            if i > o.Warmup then
                samples.Add(micros t0)

        return {
            Events = events
            WarmEvents = warmEvents
            Ended = ended
            ElapsedSeconds = elapsed
            PingMicros = List.ofSeq samples
            Error = null
        }
    }

// ---- ours, FrameReader draining each read of a PipeReader over the socket ----

let private readGreeting (frames: FrameReader) (reader: PipeReader) (result: ReadResult) =
    let mutable buffer = result.Buffer
    let mutable line = null

    if frames.TryReadLine(&buffer, &line) then
        reader.AdvanceTo buffer.Start
        true
    else
        reader.AdvanceTo(buffer.Start, buffer.End)
        false

let private frames (o: Options) =
    task {
        use! stream = connect o.Port

        let reader =
            PipeReader.Create(stream, StreamPipeReaderOptions(bufferSize = ReadSize))

        let frames = FrameReader()
        let mutable greeted = false

        while not greeted do
            let! result = reader.ReadAsync()

            if result.IsCompleted then
                failwith "closed before the greeting"

            greeted <- readGreeting frames reader result

        do! stream.WriteAsync(loginBytes.AsMemory())
        let mutable started = 0L
        let tally = Tally()

        while not tally.Ended do
            let! result = reader.ReadAsync()
            drainRead frames reader result tally

            if tally.Warmed && started = 0L then
                do! stream.WriteAsync(pingBytes.AsMemory())
                started <- Stopwatch.GetTimestamp()

            if result.IsCompleted && not tally.Ended then
                failwith "closed before the end marker"

        let elapsed = seconds started
        do! reader.CompleteAsync()

        return {
            Events = tally.Events
            WarmEvents = tally.WarmEvents
            Ended = tally.Ended
            ElapsedSeconds = elapsed
            PingMicros = []
            Error = null
        }
    }

// ---- ours, the product's Connection.Receive and Client.send ----

/// `everyValue`: also decode every key and value of every message (see `Tally`).
let private connection (everyValue: bool) (o: Options) =
    task {
        let endpoint = {
            Host = "127.0.0.1"
            Port = o.Port
            Transport = PlainTcp
            ConnectTimeout = TimeSpan.FromSeconds 10.0
        }

        let ct = CancellationToken.None

        match! Connection.Open(endpoint, ct) with
        | Error e -> return failwithf "open failed: %A" e
        | Ok connection ->
            use connection = connection

            let login =
                Action.encode {
                    Name = "Login"
                    ActionId = "bench-login"
                    Headers = [ "Username", "bench"; "Secret", "bench"; "Events", "on" ]
                }
                |> Result.defaultWith (failwithf "%A")

            let warmPing =
                Action.encode {
                    Name = "Ping"
                    ActionId = "warm"
                    Headers = []
                }
                |> Result.defaultWith (failwithf "%A")

            let! sent = connection.Send(login, ct)
            sent |> Result.defaultWith (failwithf "login not sent: %A")
            let mutable started = 0L
            let tally = Tally(everyValue)

            while not tally.Ended do
                match! connection.Receive ct with
                | Ok message ->
                    tally.Observe message

                    if tally.Warmed && started = 0L then
                        let! sent = connection.Send(warmPing, ct)
                        sent |> Result.defaultWith (failwithf "ping not sent: %A")
                        started <- Stopwatch.GetTimestamp()
                | Error e -> failwithf "receive failed after %d events: %A" tally.Events e

            let elapsed = seconds started
            let samples = ResizeArray()
            let timeout = TimeSpan.FromSeconds 5.0

            for i in 1 .. o.Warmup + o.Pings do
                let t0 = Stopwatch.GetTimestamp()

                let! answer =
                    Client.send
                        connection
                        timeout
                        {
                            Name = "Ping"
                            ActionId = Actions.newActionId ()
                            Headers = []
                        }
                        ct

                let us = micros t0

                match answer with
                | Ok response when Message.tryFind "Ping" response = Some "Pong" -> ()
                | other -> failwithf "ping %d: %A" i other

                if i > o.Warmup then
                    samples.Add us

            let! _ = Client.send connection timeout (Actions.logoff ()) ct

            return {
                Events = tally.Events
                WarmEvents = tally.WarmEvents
                Ended = tally.Ended
                ElapsedSeconds = elapsed
                PingMicros = List.ofSeq samples
                Error = null
            }
    }

let clients = [ "raw"; "naive"; "frames"; "connection"; "connection-every-value" ]

/// Runs one client and prints its JSON line; the exit code is 0 even when it failed (the error is in
/// the line), so the comparison goes on with the others.
let run (o: Options) : int =
    let work =
        match o.Client with
        | "raw" -> raw o
        | "naive" -> naive o
        | "frames" -> frames o
        | "connection" -> connection false o
        | "connection-every-value" -> connection true o
        | other -> failwithf "unknown client '%s' (known: %s)" other (String.Join(", ", clients))

    let outcome =
        try
            work.GetAwaiter().GetResult()
        with e -> {
            Events = 0
            WarmEvents = -1
            Ended = false
            ElapsedSeconds = 0.0
            PingMicros = []
            Error = e.Message
        }

    let json =
        JsonSerializer.Serialize {|
            client = o.Client
            events = outcome.Events
            warm_events = outcome.WarmEvents
            ended = outcome.Ended
            elapsed_seconds = outcome.ElapsedSeconds
            ping_us = outcome.PingMicros |> List.map (fun us -> Math.Round(us, 2))
            error = outcome.Error
        |}

    Console.Out.WriteLine json
    0
