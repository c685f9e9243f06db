/// NOT product code: prototypes of the changes proposed for src/Callback/Ami/Framing.fs and Connection.fs
/// (see bench/results/parser.md), measured next to the product's code so the gain is a number, not a
/// promise. `ParserBenchmarks.verify` checks that they cut exactly the same messages as the product.
module Callback.Bench.Proposed

open System
open System.Buffers
open System.IO
open System.IO.Pipelines
open System.Text
open System.Threading
open System.Threading.Tasks
open Callback.Ami
open Callback.Bench.Readers

/// FrameReader with a contiguous fast path: when the whole message lies in the buffer's first segment
/// (nearly always: Connection reads 16 KiB, a message is ~400 bytes), find its blank line with two
/// vectorized searches, count its lines, allocate the Header[] at its exact size and fill it from spans.
/// No SequenceReader per line, no scratch list, no copy. A message that spans segments goes to the
/// product's FrameReader unchanged. Key cache as in the product.
/// `internValues`: short values (≤ 24 bytes) also go through a cache like the keys' (1024 slots), so
/// the values that repeat in every event (`call,all`, `Down`, `<unknown>`, `en`, a context, `1`, …)
/// stop costing a string each; unique ones (Uniqueid, Channel) are still allocated.
[<Sealed>]
type FastFrameReader(internValues: bool) =
    let fallback = FrameReader()
    let cacheBytes: byte[][] = Array.zeroCreate 256
    let cacheKeys: string[] = Array.zeroCreate 256
    let valueBytes: byte[][] = Array.zeroCreate 1024
    let valueStrings: string[] = Array.zeroCreate 1024

    let valueOf (bytes: ReadOnlySpan<byte>) =
        if not internValues || bytes.Length > 24 then
            Encoding.UTF8.GetString bytes
        else
            let mutable hash = 2166136261u

            for b in bytes do
                hash <- (hash ^^^ uint32 b) * 16777619u

            let slot = int (hash &&& 1023u)
            let cached = valueBytes[slot]

            if not (isNull cached) && bytes.SequenceEqual(ReadOnlySpan cached) then
                valueStrings[slot]
            else
                let v = Encoding.UTF8.GetString bytes
                valueBytes[slot] <- bytes.ToArray()
                valueStrings[slot] <- v
                v

    static let crlfBlank = "\n\r\n"B
    static let lfBlank = "\n\n"B

    // The product's key cache, unchanged.
    let key (bytes: ReadOnlySpan<byte>) =
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

    // The product's header split (values through valueOf).
    let header (line: ReadOnlySpan<byte>) =
        match line.IndexOf ':'B with
        | -1 -> {
            Key = Encoding.UTF8.GetString line
            Value = ""
          }
        | colon ->
            let value = line.Slice(colon + 1)

            let value =
                if value.Length > 0 && value[0] = ' 'B then
                    value.Slice 1
                else
                    value

            {
                Key = key (line.Slice(0, colon))
                Value = if value.IsEmpty then "" else valueOf value
            }

    new() = FastFrameReader(false)

    member _.TryReadMessage(buffer: byref<ReadOnlySequence<byte>>, message: byref<Message>) : bool =
        let span = buffer.FirstSpan
        // Blank lines before a message are noise between messages, as in the product.
        let mutable start = 0
        let mutable skipping = true

        while skipping do
            if start < span.Length && span[start] = '\n'B then
                start <- start + 1
            elif start + 1 < span.Length && span[start] = '\r'B && span[start + 1] = '\n'B then
                start <- start + 2
            else
                skipping <- false

        let rest = span.Slice start
        let crlf = rest.IndexOf(ReadOnlySpan crlfBlank)
        // A bare-LF blank line counts only before the CRLF one: never scan the rest of the buffer for it.
        let lf =
            (if crlf < 0 then rest else rest.Slice(0, crlf + 1)).IndexOf(ReadOnlySpan lfBlank)

        let blank =
            if crlf < 0 then lf
            elif lf < 0 then crlf
            else min crlf lf

        if blank < 0 then
            // Not whole in the first segment: the product's path (or wait for more bytes).
            not buffer.IsSingleSegment && fallback.TryReadMessage(&buffer, &message)
        else
            // Header lines, each with its '\n'; then the blank line.
            let body = rest.Slice(0, blank + 1)
            let consumed = start + blank + (if blank = crlf then 3 else 2)
            let headers = Array.zeroCreate<Header>(body.Count '\n'B)
            let mutable pos = 0

            for i in 0 .. headers.Length - 1 do
                let nl = body.Slice(pos).IndexOf '\n'B
                let line = body.Slice(pos, nl)

                let line =
                    if line.Length > 0 && line[line.Length - 1] = '\r'B then
                        line.Slice(0, line.Length - 1)
                    else
                        line

                headers[i] <- header line
                pos <- pos + nl + 1

            message <- { Headers = headers }
            buffer <- buffer.Slice consumed
            true

/// FastFrameReader draining each read (the in-memory counterpart of Readers.framesDrain).
let fastDrain (internValues: bool) (stream: Stream) =
    let reader =
        PipeReader.Create(stream, StreamPipeReaderOptions(bufferSize = ReadSize, leaveOpen = true))

    let frames = FastFrameReader(internValues)
    let tally = Tally()
    let mutable finished = false

    while not finished do
        let result = readNow reader
        let mutable buffer = result.Buffer
        let mutable message = Unchecked.defaultof<Message>

        while frames.TryReadMessage(&buffer, &message) do
            tally.Observe message

        reader.AdvanceTo(buffer.Start, buffer.End)
        finished <- result.IsCompleted

    reader.Complete()
    tally

/// Connection.Receive as proposed (with `fast`: over FastFrameReader with interned values): a ValueTask, a synchronous fast path when a whole message is already
/// buffered (PipeReader.TryRead: no ReadAsync, no Task, no state machine), and the Cut delegate created
/// once per connection instead of once per call. The slow path is Connection's, unchanged.
[<Sealed>]
type ReceiveProposed(stream: Stream, fast: bool) =
    let reader =
        PipeReader.Create(stream, StreamPipeReaderOptions(bufferSize = ReadSize, leaveOpen = true))

    let frames = FrameReader()
    let fastFrames = FastFrameReader(true)

    let cut =
        if fast then
            Cut(fun buffer ->
                let mutable message = Unchecked.defaultof<Message>

                if fastFrames.TryReadMessage(&buffer, &message) then
                    ValueSome message
                else
                    ValueNone)
        else
            Cut(fun buffer ->
                let mutable message = Unchecked.defaultof<Message>

                if frames.TryReadMessage(&buffer, &message) then
                    ValueSome message
                else
                    ValueNone)

    static let take (reader: PipeReader) (result: ReadResult) (cut: Cut<Message>) =
        let mutable rest = result.Buffer

        match cut.Invoke(&rest) with
        | ValueSome value ->
            reader.AdvanceTo rest.Start
            ValueSome(Ok value)
        | ValueNone ->
            reader.AdvanceTo(result.Buffer.Start, result.Buffer.End)

            if result.IsCompleted then
                ValueSome(Error Closed)
            elif result.Buffer.Length > int64 FrameReader.MaxMessageBytes then
                ValueSome(Error Oversized)
            else
                ValueNone

    static let readUntil (reader: PipeReader) (ct: CancellationToken) cut =
        task {
            let mutable outcome = ValueNone

            try
                while outcome.IsNone do
                    let! result = reader.ReadAsync ct
                    outcome <- take reader result cut
            with
            | :? OperationCanceledException -> outcome <- ValueSome(Error Cancelled)
            | :? IOException as e -> outcome <- ValueSome(Error(Broken e.Message))
            | :? ObjectDisposedException -> outcome <- ValueSome(Error Closed)

            return outcome.Value
        }

    member _.Receive(ct: CancellationToken) : ValueTask<Result<Message, LinkError>> =
        let mutable buffered = Unchecked.defaultof<ReadResult>

        let slow () =
            ValueTask<Result<Message, LinkError>>(readUntil reader ct cut: Task<Result<Message, LinkError>>)

        if reader.TryRead(&buffered) then
            match take reader buffered cut with
            | ValueSome(outcome: Result<Message, LinkError>) -> ValueTask<Result<Message, LinkError>>(outcome)
            | ValueNone -> slow ()
        else
            slow ()

    interface IDisposable with
        member _.Dispose() = reader.Complete()

/// Receive() until the stream ends.
let receiveProposed (fast: bool) (stream: Stream) =
    use receiver = new ReceiveProposed(stream, fast)
    let tally = Tally()
    let mutable finished = false

    while not finished do
        let pending = receiver.Receive CancellationToken.None

        let outcome =
            if pending.IsCompletedSuccessfully then
                pending.Result
            else
                pending.AsTask().GetAwaiter().GetResult()

        match outcome with
        | Ok message -> tally.Observe message
        | Error _ -> finished <- true

    tally
