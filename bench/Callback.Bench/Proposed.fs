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

// ---- lazy values: the larger, API-changing proposal ----

/// A header whose value stays bytes until asked for.
[<Struct>]
type LazyHeader = { Key: string; Start: int; Length: int }

/// One message: its own copy of its bytes (one array) and its headers (one array); a value becomes a
/// string only when read.
type LazyMessage = {
    Bytes: byte[]
    Headers: LazyHeader[]
} with

    member m.Value(i: int) =
        let h = m.Headers[i]

        if h.Length = 0 then
            ""
        else
            Encoding.UTF8.GetString(m.Bytes, h.Start, h.Length)

/// FrameReader's framing (blank line, bare LF, noise, incomplete tail left in the buffer) and key cache,
/// but values left as offsets into one byte[] copy of the message: 3 allocations per message instead of
/// one per field. A message across segments is copied out first (rare: once per read at most).
[<Sealed>]
type LazyFrameReader() =
    let cacheBytes: byte[][] = Array.zeroCreate 256
    let cacheKeys: string[] = Array.zeroCreate 256
    let starts = Array.zeroCreate<int> 256
    let lengths = Array.zeroCreate<int> 256
    let mutable linear: byte[] = Array.zeroCreate 4096

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

    /// The bytes the message took (0: not whole in `span`).
    let parse (span: ReadOnlySpan<byte>) (message: byref<LazyMessage>) =
        let mutable pos = 0
        let mutable first = -1
        let mutable count = 0
        let mutable ended = false
        let mutable newline = span.IndexOf '\n'B

        while not ended && newline >= 0 do
            let raw = span.Slice(pos, newline)

            let length =
                if raw.Length > 0 && raw[raw.Length - 1] = '\r'B then
                    raw.Length - 1
                else
                    raw.Length

            if length = 0 then
                ended <- count > 0
            else
                if first < 0 then
                    first <- pos

                if count = starts.Length then
                    failwith "more than 256 lines in one message"

                starts[count] <- pos
                lengths[count] <- length
                count <- count + 1

            pos <- pos + newline + 1
            newline <- if ended then -1 else span.Slice(pos).IndexOf '\n'B

        if not ended then
            0
        else
            let body = span.Slice(first, starts[count - 1] + lengths[count - 1] - first)
            let bytes = body.ToArray()
            let headers = Array.zeroCreate<LazyHeader> count

            for i in 0 .. count - 1 do
                let line = span.Slice(starts[i], lengths[i])
                let offset = starts[i] - first

                headers[i] <-
                    match line.IndexOf ':'B with
                    | -1 -> {
                        Key = Encoding.UTF8.GetString line
                        Start = 0
                        Length = 0
                      }
                    | colon ->
                        let skip =
                            if colon + 1 < line.Length && line[colon + 1] = ' 'B then
                                2
                            else
                                1

                        {
                            Key = key (line.Slice(0, colon))
                            Start = offset + colon + skip
                            Length = line.Length - colon - skip
                        }

            message <- { Bytes = bytes; Headers = headers }
            pos

    member _.TryReadMessage(buffer: byref<ReadOnlySequence<byte>>, message: byref<LazyMessage>) : bool =
        let taken = parse buffer.FirstSpan &message

        if taken > 0 then
            buffer <- buffer.Slice taken
            true
        elif buffer.IsSingleSegment then
            false
        else
            let length = int (min buffer.Length (int64 FrameReader.MaxMessageBytes))

            if linear.Length < length then
                linear <- Array.zeroCreate (max length (2 * linear.Length))

            buffer.Slice(0, length).CopyTo(Span linear)
            let taken = parse (ReadOnlySpan(linear, 0, length)) &message

            if taken > 0 then
                buffer <- buffer.Slice taken
                true
            else
                false

/// LazyFrameReader draining each read; like Tally it reads the first header (the Event name) of each.
let lazyDrain (stream: Stream) =
    let reader =
        PipeReader.Create(stream, StreamPipeReaderOptions(bufferSize = ReadSize, leaveOpen = true))

    let frames = LazyFrameReader()
    let mutable messages = 0
    let mutable events = 0
    let mutable finished = false

    while not finished do
        let result = readNow reader
        let mutable buffer = result.Buffer
        let mutable message = Unchecked.defaultof<LazyMessage>

        while frames.TryReadMessage(&buffer, &message) do
            messages <- messages + 1

            if
                message.Headers.Length > 0
                && message.Headers[0].Key = "Event"
                && message.Value 0 <> "UserEvent"
            then
                events <- events + 1

        reader.AdvanceTo(buffer.Start, buffer.End)
        finished <- result.IsCompleted

    reader.Complete()
    messages
