/// Event → `GET`-visible and event → SSE-frame latency of the call status (`Callback.Bench status`): the
/// published sidecar, its monitor connected to FakeAsterisk, which sends a storm of unrelated events at a
/// set rate; for each call placed through `POST /callback`, the recorded events of a real answered callback
/// (tests/fixtures/ami/sip-callback-en.txt, its callId replaced by the new call's) are slipped into the storm
/// one transition at a time, and the instant each was written is compared with the SSE frame and the first
/// `GET` that show it.
module Callback.Bench.StatusLatency

open System
open System.Diagnostics
open System.IO
open System.Net.Http
open System.Text
open System.Text.Json
open System.Threading
open System.Threading.Channels
open System.Threading.Tasks
open Callback.Calls

/// The recording replayed for every call, and the callId it was recorded with.
let private replayed = "sip-callback-en.txt"

let private resourceText (name: string) =
    use stream =
        Reflection.Assembly.GetExecutingAssembly().GetManifestResourceStream name

    use reader = new StreamReader(stream)
    reader.ReadToEnd()

/// The `Event:` messages of a recording, each as its text with its blank line.
let private events (name: string) =
    (resourceText name).Split("\r\n\r\n")
    |> Array.filter (fun m -> m.StartsWith "Event:")
    |> Array.map (fun m -> m + "\r\n\r\n")

/// Unrelated events: every event of the other recordings (other calls' channels), cycled by the storm.
let storm () =
    FoldBenchmark.transcripts
    |> List.filter ((<>) replayed)
    |> Seq.collect events
    |> Seq.map Encoding.ASCII.GetBytes
    |> Array.ofSeq

/// One transition to measure: the events that lead to it (written together) and the state they reach.
type Step = { Bytes: byte[]; State: string }

/// The recording's events for call `channelId`, cut after each event that moves the call (the product's
/// fold says which), so each step ends in one new state; events after the final one join the last step.
let steps (channelId: string) =
    let recorded = FoldBenchmark.load () |> List.find (fun t -> t.Name = replayed)
    let recordedId = recorded.ChannelId.Split('-')[0]
    let newId = channelId.Split('-')[0]
    let texts = events replayed |> Array.map (fun t -> t.Replace(recordedId, newId))
    let at = DateTimeOffset.UnixEpoch

    let folded =
        texts
        |> Array.scan
            (fun call text ->
                let bytes = Encoding.ASCII.GetBytes text
                let frames = Callback.Ami.FrameReader()
                let mutable buffer = Buffers.ReadOnlySequence<byte>(bytes)
                let mutable message = Unchecked.defaultof<Callback.Ami.Message>
                frames.TryReadMessage(&buffer, &message) |> ignore
                CallState.foldMessages call [ at, message ])
            (CallState.ofChannel channelId (Some newId) at)
        |> Array.tail

    let cuts =
        folded
        |> Array.mapi (fun i call -> i, call.History.Length)
        |> Array.pairwise
        |> Array.choose (fun ((_, before), (i, after)) -> if after > before then Some i else None)
        |> Array.append (if folded[0].History.Length > 1 then [| 0 |] else [||])

    [
        for k in 0 .. cuts.Length - 1 ->
            let first = if k = 0 then 0 else cuts[k - 1] + 1
            let last = if k = cuts.Length - 1 then texts.Length - 1 else cuts[k]

            {
                Bytes = Encoding.ASCII.GetBytes(String.concat "" texts[first..last])
                State = Names.state (List.last folded[cuts[k]].History).State
            }
    ]

/// One measured transition: its state, and milliseconds from the write of its events to the SSE frame and
/// to the first `GET` answer that showed it.
type Sample = {
    State: string
    SseMs: float
    GetMs: float
}

let private ms (from: int64) (until: int64) =
    float (until - from) * 1000.0 / float Stopwatch.Frequency

/// The states of a call's JSON (its history), as the status endpoints answer it.
let private statesOf (json: string) =
    use doc = JsonDocument.Parse json
    let root = doc.RootElement

    match root.TryGetProperty "history" with
    | true, history -> [ for h in history.EnumerateArray() -> h.GetProperty("state").GetString() ]
    | _ -> [ root.GetProperty("state").GetString() ]

/// Reads the SSE stream at `url`: each frame's arrival instant and states, until the stream ends.
let private readFrames (client: HttpClient) (url: string) (frames: ChannelWriter<int64 * string list>) ct =
    task {
        use request = new HttpRequestMessage(HttpMethod.Get, url)
        request.Headers.Accept.ParseAdd "text/event-stream"

        use! response =
            client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct)

        response.EnsureSuccessStatusCode() |> ignore
        use! body = response.Content.ReadAsStreamAsync ct
        use reader = new StreamReader(body)
        let data = StringBuilder()
        let mutable ended = false

        while not ended do
            let! line = reader.ReadLineAsync ct

            match line with
            | null -> ended <- true
            | "" when data.Length > 0 ->
                frames.TryWrite((Stopwatch.GetTimestamp(), statesOf (data.ToString())))
                |> ignore

                data.Clear() |> ignore
            | l when l.StartsWith "data:" -> data.Append(l.Substring(5).TrimStart()) |> ignore
            | _ -> ()

        frames.Complete()
    }

/// Polls `GET url` back to back, 1 ms apart: the first instant each state was seen; polls made.
type private Poller(client: HttpClient, url: string, ct: CancellationToken) =
    let seen = Collections.Concurrent.ConcurrentDictionary<string, int64>()
    let mutable polls = 0

    let run () =
        task {
            try
                while not ct.IsCancellationRequested do
                    let! json = client.GetStringAsync(url, ct)
                    let at = Stopwatch.GetTimestamp()
                    Interlocked.Increment &polls |> ignore

                    for state in statesOf json do
                        seen.TryAdd(state, at) |> ignore

                    do! Task.Delay(1, ct)
            with :? OperationCanceledException ->
                ()
        }

    let running = run ()
    member _.Seen(state: string) = seen.TryGetValue state
    member _.Polls = Volatile.Read &polls
    member _.Stopped = running

/// What one call gave: its samples, whether every transition arrived, whether the stream ended after the
/// final state (as the contract says) rather than staying open.
type CallResult = {
    Samples: Sample list
    Complete: bool
    StreamEnded: bool
    Polls: int
}

/// Waits for the next frame that shows `state`, within `timeout`: its arrival instant.
let private frameWith (frames: ChannelReader<int64 * string list>) (state: string) (timeout: TimeSpan) =
    task {
        use cts = new CancellationTokenSource(timeout)
        let mutable found = None

        try
            while found.IsNone do
                let! at, states = frames.ReadAsync(cts.Token)

                if List.contains state states then
                    found <- Some at
        with
        | :? OperationCanceledException
        | :? ChannelClosedException -> ()

        return found
    }

/// Waits until the poller has seen `state`, within `timeout`: the instant of the answer that showed it.
let private polledWith (poller: Poller) (state: string) (timeout: TimeSpan) =
    task {
        let deadline =
            Stopwatch.GetTimestamp()
            + int64 (timeout.TotalSeconds * float Stopwatch.Frequency)

        let mutable found = None

        while found.IsNone && Stopwatch.GetTimestamp() < deadline do
            match poller.Seen state with
            | true, at -> found <- Some at
            | _ -> do! Task.Delay 1

        return found
    }

let mutable private calls = 0

/// One call: `POST /callback`, its event stream and a `GET` poller opened, then each step written into the
/// storm and timed; a short random pause between steps keeps them off the storm's 1 ms rhythm.
let measureCall (client: HttpClient) (baseUrl: string) (server: FakeAsterisk.Server) (random: Random) =
    task {
        // A distinct valid number for each call in a run (as bench/e2e picks them): the number's limit
        // allows one call a second at least.
        let n = Interlocked.Increment &calls
        let area = [| 514; 438; 450; 613 |][n % 4]
        let number = $"+1 {area} 555 {200 + (n / 4) % 800:D4}"

        use body =
            new StringContent($$"""{"phoneNumber":"{{number}}","language":"EN"}""", Encoding.UTF8, "application/json")

        use! posted = client.PostAsync(baseUrl + "callback", body)
        let! answer = posted.Content.ReadAsStringAsync()

        let statusUrl =
            use doc = JsonDocument.Parse answer

            match doc.RootElement.TryGetProperty "statusUrl" with
            | true, url -> url.GetString()
            | _ -> failwith $"POST /callback answered no statusUrl ({int posted.StatusCode}): {answer}"

        let channelId =
            server.NextOriginate(TimeSpan.FromSeconds 5.0)
            |> Option.defaultWith (fun () -> failwith "the sidecar sent no Originate")

        let url = baseUrl + statusUrl.TrimStart '/'
        use stop = new CancellationTokenSource()
        let frames = Channel.CreateUnbounded<int64 * string list>()
        let reading = readFrames client (url + "/events") frames.Writer stop.Token
        let poller = Poller(client, url, stop.Token)
        let wait = TimeSpan.FromSeconds 5.0
        let! queued = frameWith frames.Reader "queued" wait
        let samples = ResizeArray()
        let mutable complete = queued.IsSome

        for step in steps channelId do
            if complete then
                do! Task.Delay(5 + random.Next 10)
                let! written = server.Inject step.Bytes
                let! sse = frameWith frames.Reader step.State wait
                let! polled = polledWith poller step.State wait

                match sse, polled with
                | Some sse, Some polled ->
                    samples.Add {
                        State = step.State
                        SseMs = ms written sse
                        GetMs = ms written polled
                    }
                | _ -> complete <- false

        let! ended = Task.WhenAny(reading, Task.Delay(TimeSpan.FromSeconds 2.0))

        let streamEnded =
            obj.ReferenceEquals(ended, reading) && reading.IsCompletedSuccessfully

        stop.Cancel()

        try
            do! poller.Stopped
            do! reading
        with _ ->
            ()

        return {
            Samples = List.ofSeq samples
            Complete = complete
            StreamEnded = streamEnded
            Polls = poller.Polls
        }
    }
