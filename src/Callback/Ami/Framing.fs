namespace Callback.Ami

open System
open System.Buffers
open System.Text

/// Turns the bytes Asterisk sends into lines (the greeting) and messages (everything after it).
///
/// Written by hand on top of System.IO.Pipelines' `ReadOnlySequence` because no library on our feed
/// frames AMI. Splits only on the blank line, keeps key order and repeated keys, accepts a bare LF, and
/// leaves an incomplete message in the buffer until the rest arrives. One instance per connection: it
/// keeps a scratch list and a key cache, so steady-state parsing allocates one string per value and one
/// array per message (keys come from the cache).
type FrameReader() =
    let headers = ResizeArray<Header>(32)
    // A small direct-mapped cache from key bytes to the interned key string: AMI uses a few dozen keys.
    let cacheBytes: byte[][] = Array.zeroCreate 256
    let cacheKeys: string[] = Array.zeroCreate 256

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
                Value = if value.IsEmpty then "" else Encoding.UTF8.GetString value
            }

    static let trimCr (line: ReadOnlySpan<byte>) =
        if line.Length > 0 && line[line.Length - 1] = '\r'B then
            line.Slice(0, line.Length - 1)
        else
            line

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
        let mutable reader = SequenceReader<byte>(buffer)
        let mutable raw = ReadOnlySequence<byte>()
        let mutable complete = false
        headers.Clear()

        while not complete && reader.TryReadTo(&raw, '\n'B, true) do
            let line =
                trimCr (
                    if raw.IsSingleSegment then
                        raw.FirstSpan
                    else
                        ReadOnlySpan(raw.ToArray())
                )

            if line.IsEmpty then
                // A blank line ends a message; blank lines before any header are noise between messages.
                complete <- headers.Count > 0
            else
                headers.Add(header line)

        if complete then
            message <- { Headers = headers.ToArray() }
            buffer <- buffer.Slice reader.Position

        complete
