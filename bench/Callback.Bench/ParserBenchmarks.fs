/// In-memory parser benchmarks: every reader parses the same buffer of real Asterisk 22 messages from a
/// MemoryStream, so BenchmarkDotNet's per-operation time and allocation are per message.
module Callback.Bench.ParserBenchmarks

open System
open System.Buffers
open System.IO
open System.Text
open BenchmarkDotNet.Attributes
open Callback.Ami
open Callback.Bench.Readers

/// Messages in the buffer one benchmark invocation parses.
[<Literal>]
let MessagesPerInvoke = 100_000

[<MemoryDiagnoser>]
type Parser() =
    let mutable bytes: byte[] = null
    let buffer = Array.zeroCreate<byte> ReadSize

    member private _.Open() =
        new MemoryStream(bytes, 0, bytes.Length, false, true)

    [<Params(Corpus.Mix.NewchannelHangup, Corpus.Mix.Callback)>]
    member val Mix = Corpus.Mix.NewchannelHangup with get, set

    [<GlobalSetup>]
    member this.Setup() =
        bytes <- Corpus.build this.Mix MessagesPerInvoke

    /// Stream.Read into a 16 KiB buffer, counting "\r\n\r\n": the floor.
    [<Benchmark(Baseline = true, OperationsPerInvoke = MessagesPerInvoke)>]
    member this.RawFloor() = rawFloor (this.Open()) buffer

    /// The same through PipeReader.Create(stream): the pipe's own cost.
    [<Benchmark(OperationsPerInvoke = MessagesPerInvoke)>]
    member this.PipeFloor() = pipeFloor (this.Open())

    /// The product's FrameReader.TryReadMessage, draining each read of the pipe.
    [<Benchmark(OperationsPerInvoke = MessagesPerInvoke)>]
    member this.FrameReader() = (framesDrain (this.Open())).Messages

    /// The same parser behind a copy of Connection.Receive: one ReadAsync, Task and delegate per message.
    [<Benchmark(OperationsPerInvoke = MessagesPerInvoke)>]
    member this.ReceiveMirror() = (receiveMirror (this.Open())).Messages

    /// StreamReader.ReadLine + one Dictionary per message.
    [<Benchmark(OperationsPerInvoke = MessagesPerInvoke)>]
    member this.NaiveReadLine() =
        let struct (count, _) = naiveSync (this.Open())
        count

    /// PROPOSED Framing.fs change 1 (bench prototype): contiguous fast path, exact-size Header[].
    [<Benchmark(OperationsPerInvoke = MessagesPerInvoke)>]
    member this.ProposedFrameReader() =
        (Proposed.fastDrain false (this.Open())).Messages

    /// PROPOSED Framing.fs changes 1 + 2: the fast path and a cache for short values.
    [<Benchmark(OperationsPerInvoke = MessagesPerInvoke)>]
    member this.ProposedFrameReaderInterned() =
        (Proposed.fastDrain true (this.Open())).Messages

    /// PROPOSED Connection.fs change (ValueTask + TryRead fast path + one delegate per connection) with
    /// the product's FrameReader.
    [<Benchmark(OperationsPerInvoke = MessagesPerInvoke)>]
    member this.ProposedReceive() =
        (Proposed.receiveProposed false (this.Open())).Messages

    /// Every proposed change: what Connection.Receive would cost.
    [<Benchmark(OperationsPerInvoke = MessagesPerInvoke)>]
    member this.ProposedReceiveFast() =
        (Proposed.receiveProposed true (this.Open())).Messages

    /// PROPOSED, API-changing: values kept as bytes until read (3 allocations per message).
    [<Benchmark(OperationsPerInvoke = MessagesPerInvoke)>]
    member this.ProposedLazyValues() = Proposed.lazyDrain (this.Open())

/// One buffer as a ReadOnlySequence cut into segments of the given sizes (cycled).
type private Segment(memory: ReadOnlyMemory<byte>, index: int64) =
    inherit ReadOnlySequenceSegment<byte>()

    do
        base.Memory <- memory
        base.RunningIndex <- index

    member this.Append(next: ReadOnlyMemory<byte>) =
        let s = Segment(next, this.RunningIndex + int64 this.Memory.Length)
        this.Next <- s
        s

let private segmented (bytes: byte[]) (sizes: int[]) =
    let mutable at = 0
    let mutable i = 0

    let take () =
        let n = min sizes[i % sizes.Length] (bytes.Length - at)
        let m = ReadOnlyMemory(bytes, at, n)
        at <- at + n
        i <- i + 1
        m

    let first = Segment(take (), 0L)
    let mutable last = first

    while at < bytes.Length do
        last <- last.Append(take ())

    ReadOnlySequence<byte>(first, 0, last, last.Memory.Length)

let private cutAll (read: Cut<Message>) (sequence: ReadOnlySequence<byte>) =
    let mutable buffer = sequence
    let messages = ResizeArray()
    let mutable go = true

    while go do
        match read.Invoke(&buffer) with
        | ValueSome m -> messages.Add m
        | ValueNone -> go <- false

    messages.ToArray(), buffer.Length

/// The proposed FastFrameReader cuts exactly the messages the product's FrameReader cuts: the corpora
/// and edge cases (bare LF, noise blank lines, a line without a colon, a lone CR line, an incomplete tail),
/// whole or cut into segments of many sizes.
let private verifyProposed () =
    let edge =
        Encoding.UTF8.GetBytes(
            "\r\n\nEvent: A\nKey:NoSpace\nNoColon\nEmpty: \n\nEvent: B\r\nRepeat: 1\r\nRepeat: 2\r\n\r\n"
            + "Event: C\r\nX: \u00e9t\u00e9\r\n\r\r\nY: z\r\n\r\nEvent: D\r\nIncomplete: yes\r\n"
        )

    let inputs = [
        "edge cases", edge
        "callback-transcript", Corpus.build Corpus.Mix.Callback 2_000
        "newchannel-hangup", Corpus.build Corpus.Mix.NewchannelHangup 2_000
    ]

    let render (messages: Message[], rest: int64) =
        let text =
            messages
            |> Array.map (fun m -> m.Headers |> Array.map (fun h -> $"{h.Key}={h.Value}") |> String.concat "|")
            |> String.concat "\n"

        $"{text}\nrest={rest}"

    for name, bytes in inputs do
        for sizes in [ [| bytes.Length |]; [| 1 |]; [| 7; 13 |]; [| 400; 17; 4096 |]; [| 16384 |] ] do
            let sequence = segmented bytes sizes
            let product = FrameReader()
            let proposed = Proposed.FastFrameReader(true)

            let expected =
                cutAll
                    (Cut(fun b ->
                        let mutable m = Unchecked.defaultof<Message>

                        if product.TryReadMessage(&b, &m) then
                            ValueSome m
                        else
                            ValueNone))
                    sequence

            let actual =
                cutAll
                    (Cut(fun b ->
                        let mutable m = Unchecked.defaultof<Message>

                        if proposed.TryReadMessage(&b, &m) then
                            ValueSome m
                        else
                            ValueNone))
                    sequence

            if render expected <> render actual then
                failwithf "FastFrameReader differs from FrameReader on %s cut into %A" name sizes

            let lazyReader = Proposed.LazyFrameReader()
            let mutable buffer = sequence
            let lazyMessages = ResizeArray()
            let mutable m = Unchecked.defaultof<Proposed.LazyMessage>

            while lazyReader.TryReadMessage(&buffer, &m) do
                lazyMessages.Add {
                    Headers = m.Headers |> Array.mapi (fun i h -> { Key = h.Key; Value = m.Value i })
                }

            if render expected <> render (lazyMessages.ToArray(), buffer.Length) then
                failwithf "LazyFrameReader differs from FrameReader on %s cut into %A" name sizes

/// Every reader must see every message of the buffer; checked before anything is timed.
let verify () =
    verifyProposed ()

    for mix in [ Corpus.Mix.NewchannelHangup; Corpus.Mix.Callback ] do
        let bytes = Corpus.build mix MessagesPerInvoke
        let open' () = new MemoryStream(bytes, false)

        let counts = [
            "RawFloor", rawFloor (open' ()) (Array.zeroCreate ReadSize)
            "PipeFloor", pipeFloor (open' ())
            "FrameReader", (framesDrain (open' ())).Messages
            "ReceiveMirror", (receiveMirror (open' ())).Messages
            "NaiveReadLine",
            (let struct (c, _) = naiveSync (open' ())
             c)
            "ProposedFrameReader", (Proposed.fastDrain false (open' ())).Messages
            "ProposedFrameReaderInterned", (Proposed.fastDrain true (open' ())).Messages
            "ProposedReceive", (Proposed.receiveProposed false (open' ())).Messages
            "ProposedReceiveFast", (Proposed.receiveProposed true (open' ())).Messages
            "ProposedLazyValues", Proposed.lazyDrain (open' ())
        ]

        for name, count in counts do
            if count <> MessagesPerInvoke then
                failwithf "%s counted %d messages in the %s buffer, expected %d" name count mix MessagesPerInvoke

/// Where FrameReader's time goes: the same work done step by step over one contiguous byte[] (no pipe),
/// each step adding one piece of what FrameReader does per line. The differences between rows are the
/// cost of each piece.
module Anatomy =
    /// FrameReader's key cache.
    [<Sealed>]
    type KeyCache() =
        let cacheBytes: byte[][] = Array.zeroCreate 256
        let cacheKeys: string[] = Array.zeroCreate 256

        member _.Key(bytes: ReadOnlySpan<byte>) =
            let mutable hash = 2166136261u

            for b in bytes do
                hash <- (hash ^^^ uint32 b) * 16777619u

            let slot = int (hash &&& 255u)
            let cached = cacheBytes[slot]

            if not (isNull cached) && bytes.SequenceEqual(ReadOnlySpan cached) then
                cacheKeys[slot]
            else
                let k = Encoding.UTF8.GetString bytes
                cacheBytes[slot] <- bytes.ToArray()
                cacheKeys[slot] <- k
                k

    /// level 0: split lines; 1: + find the colon; 2: + key from the cache; 3: + one string per value;
    /// 4: + the Header[] of each message.
    let run (level: int) (keys: KeyCache) (bytes: byte[]) =
        let span = ReadOnlySpan bytes
        let scratch = Array.zeroCreate<Header> 128
        let mutable pos = 0
        let mutable count = 0
        let mutable messages = 0
        let mutable check = 0

        while pos < span.Length do
            let nl = span.Slice(pos).IndexOf '\n'B

            let line =
                span.Slice(pos, (if nl > 0 && span[pos + nl - 1] = '\r'B then nl - 1 else nl))

            if line.IsEmpty then
                if level >= 4 then
                    let headers = Array.zeroCreate<Header> count
                    Array.blit scratch 0 headers 0 count
                    check <- check + headers.Length

                messages <- messages + 1
                count <- 0
            elif level >= 1 then
                let colon = line.IndexOf ':'B

                if level >= 2 then
                    let k = keys.Key(line.Slice(0, colon))

                    let v =
                        if level >= 3 && colon + 2 < line.Length then
                            Encoding.UTF8.GetString(line.Slice(colon + 2))
                        else
                            ""

                    scratch[count] <- { Key = k; Value = v }
                    count <- count + 1
                else
                    check <- check + colon

            pos <- pos + nl + 1

        messages + (check &&& 0)

    [<MemoryDiagnoser>]
    type ParserAnatomy() =
        let mutable bytes: byte[] = null
        let key = KeyCache()

        [<GlobalSetup>]
        member _.Setup() =
            bytes <- Corpus.build Corpus.Mix.NewchannelHangup MessagesPerInvoke

        [<Benchmark(Baseline = true, OperationsPerInvoke = MessagesPerInvoke)>]
        member _.Step1SplitLines() = run 0 key bytes

        [<Benchmark(OperationsPerInvoke = MessagesPerInvoke)>]
        member _.Step2FindColon() = run 1 key bytes

        [<Benchmark(OperationsPerInvoke = MessagesPerInvoke)>]
        member _.Step3KeyCache() = run 2 key bytes

        [<Benchmark(OperationsPerInvoke = MessagesPerInvoke)>]
        member _.Step4ValueStrings() = run 3 key bytes

        [<Benchmark(OperationsPerInvoke = MessagesPerInvoke)>]
        member _.Step5HeaderArray() = run 4 key bytes

/// The readers interleaved in ONE process, round after round, each timed with a Stopwatch: on a shared
/// machine the load drifts between BenchmarkDotNet's separate processes, and an A/B comparison made
/// minutes apart can show the drift instead of the change. Here every reader meets the same drift;
/// the minimum over the rounds is the least disturbed run of each.
let compare (rounds: int) =
    let readers: (string * (Stream -> int)) list = [
        "RawFloor", (fun s -> rawFloor s (Array.zeroCreate ReadSize))
        "FrameReader", (fun s -> (framesDrain s).Messages)
        "ReceiveMirror", (fun s -> (receiveMirror s).Messages)
        "NaiveReadLine",
        (fun s ->
            let struct (c, _) = naiveSync s
            c)
        "ProposedFrameReader", (fun s -> (Proposed.fastDrain false s).Messages)
        "ProposedFrameReaderInterned", (fun s -> (Proposed.fastDrain true s).Messages)
        "ProposedReceive", (fun s -> (Proposed.receiveProposed false s).Messages)
        "ProposedReceiveFast", (fun s -> (Proposed.receiveProposed true s).Messages)
        "ProposedLazyValues", Proposed.lazyDrain
    ]

    let sb = Text.StringBuilder()
    let line (x: string) = sb.AppendLine x |> ignore

    let load =
        File.ReadAllText("/proc/loadavg").Split(' ')
        |> Array.take 3
        |> String.concat " "

    line "# AMI parser readers interleaved in one process"
    line ""

    line
        $"Generated by `dotnet bench/Callback.Bench/bin/Release/net10.0/Callback.Bench.dll compare --rounds {rounds}`, {DateTime.UtcNow:``yyyy-MM-dd HH:mm``} UTC, load average at the start {load} on {Environment.ProcessorCount} cores. Every round runs every reader once over the same buffer (see parser.md for the readers), so load drift hits them all alike; the first 3 rounds warm the JIT up and are not counted. The minimum is the least disturbed run."

    line ""

    for mix in [ Corpus.Mix.NewchannelHangup; Corpus.Mix.Callback ] do
        let bytes = Corpus.build mix MessagesPerInvoke
        let times = readers |> List.map (fun (n, _) -> n, ResizeArray<float>()) |> dict
        let allocated = Collections.Generic.Dictionary<string, int64>()

        for round in 1..rounds do
            for name, read in readers do
                let before = GC.GetAllocatedBytesForCurrentThread()
                let watch = Diagnostics.Stopwatch.StartNew()
                let n = read (new MemoryStream(bytes, false))
                let ns = watch.Elapsed.TotalMilliseconds * 1e6 / float n
                // The first rounds warm the JIT up.
                if round > 3 then
                    times[name].Add ns

                allocated[name] <- (GC.GetAllocatedBytesForCurrentThread() - before) / int64 n

        line $"## `{mix}`: {rounds - 3} interleaved rounds of {MessagesPerInvoke:N0} messages per reader"
        line ""
        line "| reader | min ns/message | median ns/message | min vs FrameReader | allocated B/message |"
        line "|---|---:|---:|---:|---:|"
        let minOf name = Seq.min times[name]
        let baseline = minOf "FrameReader"

        for name, _ in readers do
            let sorted = times[name] |> Seq.sort |> Array.ofSeq
            let median = sorted[sorted.Length / 2]
            let change = (minOf name / baseline - 1.0) * 100.0

            let changeText =
                if name = "FrameReader" then
                    "–"
                else
                    sprintf "%+.0f %%" change

            line $"| {name} | {minOf name:N0} | {median:N0} | {changeText} | {allocated[name]:N0} |"

        line ""

    sb.ToString()
