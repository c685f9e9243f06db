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

    /// The same, decoding every key and value of every message, as the naive reader and the peers do.
    [<Benchmark(OperationsPerInvoke = MessagesPerInvoke)>]
    member this.FrameReaderEveryValue() =
        (framesDrainWith true (this.Open())).Messages

    /// The same parser behind a copy of Connection.Receive's mechanics (a ValueTask per message).
    [<Benchmark(OperationsPerInvoke = MessagesPerInvoke)>]
    member this.ReceiveMirror() = (receiveMirror (this.Open())).Messages

    /// StreamReader.ReadLine + one Dictionary per message.
    [<Benchmark(OperationsPerInvoke = MessagesPerInvoke)>]
    member this.NaiveReadLine() =
        let struct (count, _) = naiveSync (this.Open())
        count

/// Every reader must see every message of the buffer; checked before anything is timed.
let verify () =
    for mix in [ Corpus.Mix.NewchannelHangup; Corpus.Mix.Callback ] do
        let bytes = Corpus.build mix MessagesPerInvoke
        let open' () = new MemoryStream(bytes, false)

        let counts = [
            "RawFloor", rawFloor (open' ()) (Array.zeroCreate ReadSize)
            "PipeFloor", pipeFloor (open' ())
            "FrameReader", (framesDrain (open' ())).Messages
            "FrameReaderEveryValue", (framesDrainWith true (open' ())).Messages
            "ReceiveMirror", (receiveMirror (open' ())).Messages
            "NaiveReadLine",
            (let struct (c, _) = naiveSync (open' ())
             c)
        ]

        for name, count in counts do
            if count <> MessagesPerInvoke then
                failwithf "%s counted %d messages in the %s buffer, expected %d" name count mix MessagesPerInvoke

/// Where FrameReader's time goes: the same work done step by step over one contiguous byte[] (no pipe),
/// each step adding one piece of what FrameReader does per line. The differences between rows are the
/// cost of each piece.
module Anatomy =
    /// Where one line lies (as the product's internal `Field`).
    [<Struct>]
    type Field = {
        Start: int
        KeyEnd: int
        ValueStart: int
        End: int
    }

    /// level 0: find every newline and colon (Marks.find) and walk them line by line; 1: + note where each
    /// line's key and value lie; 2: + one copy of the message's bytes and its exact-size field array (all
    /// FrameReader does); 3: + decode every key and value, which FrameReader leaves to whoever reads them.
    let run (level: int) (bytes: byte[]) =
        let span = ReadOnlySpan bytes
        let scratch = Array.zeroCreate<Field> 128
        let mutable lineStart = 0
        let mutable colon = -1
        let mutable count = 0
        let mutable messages = 0
        let mutable check = 0
        let mutable block = 0

        while block < span.Length do
            let struct (newlines, colons) = Marks.find (span.Slice block)
            let mutable marks = newlines ||| colons

            while marks <> 0UL do
                let bit = Numerics.BitOperations.TrailingZeroCount marks
                let at = block + bit
                marks <- marks &&& (marks - 1UL)

                if (colons >>> bit) &&& 1UL <> 0UL then
                    if colon < 0 then
                        colon <- at
                else
                    let lineEnd = if span[at - 1] = '\r'B then at - 1 else at

                    if lineEnd > lineStart then
                        if level >= 1 then
                            scratch[count] <- {
                                Start = lineStart
                                KeyEnd = colon
                                ValueStart = colon + 2
                                End = lineEnd
                            }

                        count <- count + 1
                    else
                        if level >= 2 then
                            let first = scratch[0].Start
                            let own = span.Slice(first, scratch[count - 1].End - first).ToArray()
                            let fields = Array.zeroCreate<Field> count
                            Array.blit scratch 0 fields 0 count
                            check <- check + own.Length + fields.Length

                            if level >= 3 then
                                for f in fields do
                                    let key = Encoding.UTF8.GetString(own, f.Start - first, f.KeyEnd - f.Start)

                                    let value = Encoding.UTF8.GetString(own, f.ValueStart - first, f.End - f.ValueStart)

                                    check <- check + key.Length + value.Length

                        messages <- messages + 1
                        count <- 0

                    lineStart <- at + 1
                    colon <- -1

            block <- block + Marks.Block

        messages + (check &&& 0)

    [<MemoryDiagnoser>]
    type ParserAnatomy() =
        let mutable bytes: byte[] = null

        [<GlobalSetup>]
        member _.Setup() =
            bytes <- Corpus.build Corpus.Mix.NewchannelHangup MessagesPerInvoke

        [<Benchmark(Baseline = true, OperationsPerInvoke = MessagesPerInvoke)>]
        member _.Step1MarkLines() = run 0 bytes

        [<Benchmark(OperationsPerInvoke = MessagesPerInvoke)>]
        member _.Step2NoteFields() = run 1 bytes

        [<Benchmark(OperationsPerInvoke = MessagesPerInvoke)>]
        member _.Step3CopyMessage() = run 2 bytes

        [<Benchmark(OperationsPerInvoke = MessagesPerInvoke)>]
        member _.Step4DecodeEveryValue() = run 3 bytes

/// The readers interleaved in ONE process, round after round, each timed with a Stopwatch: on a shared
/// machine the load drifts between BenchmarkDotNet's separate processes, and an A/B comparison made
/// minutes apart can show the drift instead of the change. Here every reader meets the same drift;
/// the minimum over the rounds is the least disturbed run of each.
let compare (rounds: int) =
    let readers: (string * (Stream -> int)) list = [
        "RawFloor", (fun s -> rawFloor s (Array.zeroCreate ReadSize))
        "FrameReader", (fun s -> (framesDrain s).Messages)
        "FrameReaderEveryValue", (fun s -> (framesDrainWith true s).Messages)
        "ReceiveMirror", (fun s -> (receiveMirror s).Messages)
        "NaiveReadLine",
        (fun s ->
            let struct (c, _) = naiveSync s
            c)
    ]

    let sb = Text.StringBuilder()
    let line (x: string) = sb.AppendLine x |> ignore

    let load = loadAverage ()

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
