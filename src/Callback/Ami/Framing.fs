namespace Callback.Ami

open System
open System.Buffers
open System.Text

/// A small direct-mapped cache from bytes to the string they decode to. AMI repeats a few dozen keys and
/// many short values (`call,all`, `Up`, `<unknown>`, a context name) in every event: after the first one,
/// each costs a hash and a comparison instead of a string. A slot keeps its latest occupant.
[<Sealed>]
type internal StringCache(slots: int, maxLength: int) =
    let bytesOf: byte[][] = Array.zeroCreate slots
    let strings: string[] = Array.zeroCreate slots

    member _.Get(bytes: ReadOnlySpan<byte>) =
        if bytes.Length > maxLength then
            Encoding.UTF8.GetString bytes
        else
            let mutable hash = 2166136261u

            for b in bytes do
                hash <- (hash ^^^ uint32 b) * 16777619u

            let slot = int (hash % uint32 slots)
            let cached = bytesOf[slot]

            if not (isNull cached) && bytes.SequenceEqual(ReadOnlySpan cached) then
                strings[slot]
            else
                let s = Encoding.UTF8.GetString bytes
                bytesOf[slot] <- bytes.ToArray()
                strings[slot] <- s
                s

/// Turns the bytes Asterisk sends into lines (the greeting) and messages (everything after it).
///
/// Written by hand on top of System.IO.Pipelines' `ReadOnlySequence` because no library on our feed
/// frames AMI. Splits only on the blank line, keeps key order and repeated keys, accepts a bare LF, and
/// leaves an incomplete message in the buffer until the rest arrives. One instance per connection: it
/// keeps a scratch list and string caches, so steady-state parsing allocates one array per message and a
/// string only for values it has not just seen (unique ids, channel names, times).
type FrameReader() =
    static let trimCr (line: ReadOnlySpan<byte>) =
        if line.Length > 0 && line[line.Length - 1] = '\r'B then
            line.Slice(0, line.Length - 1)
        else
            line

    let headers = ResizeArray<Header>(32)
    let keys = StringCache(256, 64)
    let values = StringCache(1024, 24)
    let key (bytes: ReadOnlySpan<byte>) = keys.Get bytes

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
                Value = if value.IsEmpty then "" else values.Get value
            }

    /// One line into `headers`; true when it is the blank line that ends a message. Blank lines before any
    /// header are noise between messages.
    let take (line: ReadOnlySpan<byte>) =
        if line.IsEmpty then
            headers.Count > 0
        else
            headers.Add(header line)
            false

    /// The common case, a message wholly inside the buffer's first segment, with plain span searches
    /// (vectorised by the runtime): the bytes the message took, or 0 when it does not end there.
    let readFromSpan (span: ReadOnlySpan<byte>) =
        let mutable position = 0
        let mutable complete = false
        let mutable newline = span.IndexOf '\n'B

        while not complete && newline >= 0 do
            complete <- take (trimCr (span.Slice(position, newline)))
            position <- position + newline + 1
            newline <- if complete then -1 else span.Slice(position).IndexOf '\n'B

        if complete then position else 0

    /// The general case, lines that may straddle segments.
    let readFromSequence (reader: byref<SequenceReader<byte>>) =
        let mutable raw = ReadOnlySequence<byte>()
        let mutable complete = false

        while not complete && reader.TryReadTo(&raw, '\n'B, true) do
            complete <-
                take (
                    trimCr (
                        if raw.IsSingleSegment then
                            raw.FirstSpan
                        else
                            ReadOnlySpan(raw.ToArray())
                    )
                )

        complete

    /// The bytes a message (or the greeting line) may take before the peer is judged broken.
    static member MaxMessageBytes = 64 * 1024

    /// Cuts the first line (the greeting `Asterisk Call Manager/…`) off `buffer`, without its line end.
    member _.TryReadLine(buffer: byref<ReadOnlySequence<byte>>, line: byref<string>) : bool =
        let mutable reader = SequenceReader<byte>(buffer)
        let mutable raw = ReadOnlySequence<byte>()

        if reader.TryReadTo(&raw, '\n'B, true) then
            line <- Encoding.UTF8.GetString(trimCr (ReadOnlySpan(raw.ToArray())))
            buffer <- buffer.Slice reader.Position
            true
        else
            false

    /// Cuts one whole message off `buffer`; false (and `buffer` untouched) while its blank line is missing.
    member _.TryReadMessage(buffer: byref<ReadOnlySequence<byte>>, message: byref<Message>) : bool =
        headers.Clear()
        let inFirstSegment = readFromSpan buffer.FirstSpan

        let complete =
            if inFirstSegment > 0 then
                buffer <- buffer.Slice inFirstSegment
                true
            elif buffer.IsSingleSegment then
                false
            else
                headers.Clear()
                let mutable reader = SequenceReader<byte>(buffer)
                let complete = readFromSequence &reader

                if complete then
                    buffer <- buffer.Slice reader.Position

                complete

        if complete then
            message <- { Headers = headers.ToArray() }

        complete
