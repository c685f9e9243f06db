/// The readers compared, over any Stream: the raw floor, a naive line reader, and the product's
/// FrameReader driven the way Connection drives it.
module Callback.Bench.Readers

open System
open System.Buffers
open System.Collections.Generic
open System.IO
open System.IO.Pipelines
open System.Text
open System.Threading
open System.Threading.Tasks
open Callback.Ami

/// The machine's load averages (1, 5, 15 minutes) as /proc/loadavg gives them, for the results files.
let loadAverage () =
    File.ReadAllText("/proc/loadavg").Split(' ')
    |> Array.take 3
    |> String.concat " "

/// Bytes asked of the stream per read by every reader: Connection's PipeReader bufferSize.
[<Literal>]
let ReadSize = 16384

/// Counts "\r\n\r\n" in a stream fed chunk by chunk, exactly as one leftmost, non-overlapping scan of the
/// whole stream would: the raw floor does only this.
[<Sealed>]
type SeparatorCounter() =
    static let separator = "\r\n\r\n"B
    // At most the last 3 bytes after the last counted separator: where the next one may have begun.
    let tail = Array.zeroCreate<byte> 3
    let mutable tailLength = 0
    let window = Array.zeroCreate<byte> 6

    member _.Count(chunk: ReadOnlySpan<byte>) : int =
        let mutable count = 0
        let mutable pos = 0
        let mutable matched = false

        if tailLength > 0 && chunk.Length > 0 then
            let take = min 3 chunk.Length
            Array.blit tail 0 window 0 tailLength
            chunk.Slice(0, take).CopyTo(Span(window, tailLength, take))
            let i = ReadOnlySpan(window, 0, tailLength + take).IndexOf(ReadOnlySpan separator)

            if i >= 0 && i < tailLength then
                count <- 1
                pos <- i + 4 - tailLength
                matched <- true

        let mutable i = chunk.Slice(pos).IndexOf(ReadOnlySpan separator)

        while i >= 0 do
            count <- count + 1
            pos <- pos + i + 4
            matched <- true
            i <- chunk.Slice(pos).IndexOf(ReadOnlySpan separator)

        if matched then
            let from = max pos (chunk.Length - 3)
            tailLength <- chunk.Length - from
            chunk.Slice(from).CopyTo(Span(tail, 0, tailLength))
        else
            // No separator ended here: keep the last 3 bytes of old tail + chunk.
            let combined = tailLength + chunk.Length

            if chunk.Length >= 3 then
                chunk.Slice(chunk.Length - 3).CopyTo(Span(tail))
                tailLength <- 3
            elif combined > 0 then
                let keepOld = min tailLength (3 - chunk.Length)
                Array.blit tail (tailLength - keepOld) window 0 keepOld
                chunk.CopyTo(Span(window, keepOld, chunk.Length))
                tailLength <- keepOld + chunk.Length
                Array.blit window 0 tail 0 tailLength

        count

/// What a reader saw: messages, events, fields, and the markers of bench/stream's fake server
/// (`Event: UserEvent` with `UserEvent: WarmupEnd`, then `UserEvent: StreamEnd`; not counted as events).
/// It reads what an event consumer reads: the name of every event (decoded), and of the fake server's
/// UserEvents the `UserEvent` header. With `everyValue` it also decodes every key and value of every
/// message, as the peers and the naive reader do whether or not the consumer looks at them.
[<Sealed; AllowNullLiteral>]
type Tally(everyValue: bool) =
    new() = Tally(false)

    member val Messages = 0 with get, set
    member val Events = 0 with get, set
    member val Fields = 0L with get, set
    /// Events received when the warm-up marker came.
    member val WarmEvents = -1 with get, set
    member val Ended = false with get, set

    member t.Warmed = t.WarmEvents >= 0

    member t.Observe(message: Message) =
        t.Messages <- t.Messages + 1
        t.Fields <- t.Fields + int64 (if everyValue then message.Headers.Length else message.Count)

        if Message.kind message = Event then
            if message.Value 0 = "UserEvent" then
                match Message.tryFind "UserEvent" message with
                | Some "WarmupEnd" -> t.WarmEvents <- t.Events
                | Some "StreamEnd" -> t.Ended <- true
                | _ -> t.Events <- t.Events + 1
            else
                t.Events <- t.Events + 1

/// The next read of a PipeReader, without an await when it already completed (in memory, always).
let readNow (reader: PipeReader) =
    let pending = reader.ReadAsync()

    if pending.IsCompletedSuccessfully then
        pending.Result
    else
        pending.AsTask().GetAwaiter().GetResult()

// ---- the raw floor ----

/// Reads the stream with `buffer` and counts separators: no parsing at all.
let rawFloor (stream: Stream) (buffer: byte[]) =
    let counter = SeparatorCounter()
    let mutable total = 0
    let mutable n = stream.Read(buffer, 0, buffer.Length)

    while n > 0 do
        total <- total + counter.Count(ReadOnlySpan(buffer, 0, n))
        n <- stream.Read(buffer, 0, buffer.Length)

    total

/// The same through a PipeReader (as Connection reads): what the pipe alone costs.
let pipeFloor (stream: Stream) =
    let reader =
        PipeReader.Create(stream, StreamPipeReaderOptions(bufferSize = ReadSize, leaveOpen = true))

    let counter = SeparatorCounter()
    let mutable total = 0
    let mutable finished = false

    while not finished do
        let result = readNow reader
        let mutable segments = result.Buffer.GetEnumerator()

        while segments.MoveNext() do
            total <- total + counter.Count(segments.Current.Span)

        reader.AdvanceTo result.Buffer.End
        finished <- result.IsCompleted

    reader.Complete()
    total

// ---- the naive reader ----

/// One Dictionary per message (repeated keys: the last wins, the usual bug), one string per line,
/// per key and per value.
let naiveAdd (message: Dictionary<string, string>) (line: string) =
    let colon = line.IndexOf ':'

    if colon > 0 then
        let value =
            if colon + 1 < line.Length && line[colon + 1] = ' ' then
                line.Substring(colon + 2)
            else
                line.Substring(colon + 1)

        message[line.Substring(0, colon)] <- value

/// StreamReader.ReadLine + a Dictionary per message.
let naiveSync (stream: Stream) =
    use reader =
        new StreamReader(stream, Encoding.UTF8, false, ReadSize, leaveOpen = true)

    let mutable message = Dictionary<string, string>()
    let mutable count = 0
    let mutable fields = 0L
    let mutable line = reader.ReadLine()

    while not (isNull line) do
        if line.Length = 0 then
            if message.Count > 0 then
                count <- count + 1
                fields <- fields + int64 message.Count
                message <- Dictionary<string, string>()
        else
            naiveAdd message line

        line <- reader.ReadLine()

    struct (count, fields)

// ---- the product's FrameReader ----

/// Cuts every whole message off one read and hands each to `tally`; tells the pipe what was consumed.
let drainRead (frames: FrameReader) (reader: PipeReader) (result: ReadResult) (tally: Tally) =
    let mutable buffer = result.Buffer
    let mutable message = Unchecked.defaultof<Message>

    while frames.TryReadMessage(&buffer, &message) do
        tally.Observe message

    reader.AdvanceTo(buffer.Start, buffer.End)

/// FrameReader over PipeReader.Create(stream) (Connection's options), draining each read: the parser
/// itself, without the per-message Task of Connection.Receive.
let framesDrainWith (everyValue: bool) (stream: Stream) =
    let reader =
        PipeReader.Create(stream, StreamPipeReaderOptions(bufferSize = ReadSize, leaveOpen = true))

    let frames = FrameReader()
    let tally = Tally(everyValue)
    let mutable finished = false

    while not finished do
        let result = readNow reader
        drainRead frames reader result tally
        finished <- result.IsCompleted

    reader.Complete()
    tally

/// FrameReader draining each read, reading what an event consumer reads (see `Tally`).
let framesDrain (stream: Stream) = framesDrainWith false stream

/// Cuts one item off the front of a buffer (as Connection's internal `Cut`).
type Cut<'T> = delegate of byref<ReadOnlySequence<byte>> -> 'T voption

/// A copy of Connection.Receive's mechanics (its `take` and `readUntil`: a `ValueTask`, every whole message
/// of a read cut at once and queued, one `Cut` delegate per connection) over any stream, so they can be
/// measured in memory: Connection itself only opens sockets.
[<Sealed>]
type ReceiveMirror(stream: Stream) =
    let reader =
        PipeReader.Create(stream, StreamPipeReaderOptions(bufferSize = ReadSize, leaveOpen = true))

    let frames = FrameReader()
    let pending = Queue<Message>()

    let cut =
        Cut(fun buffer ->
            let mutable message = Unchecked.defaultof<Message>

            while frames.TryReadMessage(&buffer, &message) do
                pending.Enqueue message

            if pending.Count > 0 then
                ValueSome(pending.Dequeue())
            else
                ValueNone)

    static let take (reader: PipeReader) (result: ReadResult) (cut: Cut<Message>) =
        let mutable rest = result.Buffer

        match cut.Invoke(&rest) with
        | ValueSome value ->
            reader.AdvanceTo rest.Start
            ValueSome(Ok value)
        | ValueNone ->
            // As Connection: the reader may have dropped part of a message over its cap.
            reader.AdvanceTo(rest.Start, result.Buffer.End)

            if result.IsCompleted then
                ValueSome(Error Closed)
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

        let buffered =
            if pending.Count > 0 then ValueSome(Ok(pending.Dequeue()))
            elif reader.TryRead(&buffered) then take reader buffered cut
            else ValueNone

        match buffered with
        | ValueSome outcome -> ValueTask<Result<Message, LinkError>>(outcome: Result<Message, LinkError>)
        | ValueNone -> ValueTask<Result<Message, LinkError>>(readUntil reader ct cut: Task<Result<Message, LinkError>>)

    interface IDisposable with
        member _.Dispose() = reader.Complete()

/// Receive() until the stream ends, as a caller of Connection.Receive would.
let receiveMirror (stream: Stream) =
    use mirror = new ReceiveMirror(stream)
    let tally = Tally()
    let mutable finished = false

    while not finished do
        let pending = mirror.Receive CancellationToken.None

        let outcome =
            if pending.IsCompletedSuccessfully then
                pending.Result
            else
                pending.AsTask().GetAwaiter().GetResult()

        match outcome with
        | Ok message -> tally.Observe message
        | Error _ -> finished <- true

    tally
