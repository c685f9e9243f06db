namespace Callback.Ami

open System
open System.Buffers
open System.Text

/// Turns the bytes Asterisk sends into lines (the greeting) and messages (everything after it).
///
/// Written by hand on top of System.IO.Pipelines' `ReadOnlySequence` because no library on our feed
/// frames AMI. Splits only on the blank line, keeps key order and repeated keys, accepts a bare LF, and
/// leaves an incomplete message in the buffer until the rest arrives. It decodes nothing: a message is a
/// copy of its bytes and where its lines lie (see `Message`). One instance per connection, for its scratch
/// arrays.
type FrameReader() =
    static let trimCr (line: ReadOnlySpan<byte>) =
        if line.Length > 0 && line[line.Length - 1] = '\r'B then
            line.Slice(0, line.Length - 1)
        else
            line

    /// Where the lines of the message being cut lie in the span; grown when a message has more lines.
    let mutable fields = Array.zeroCreate<Field> 64
    /// A message that straddles the pipe's segments is copied here to be cut like any other.
    let mutable linear: byte[] = Array.empty

    let field (line: ReadOnlySpan<byte>) (start: int) =
        match line.IndexOf ':'B with
        | -1 -> {
            Start = start
            KeyEnd = start + line.Length
            ValueStart = start + line.Length
            End = start + line.Length
          }
        | colon ->
            let space =
                if colon + 1 < line.Length && line[colon + 1] = ' 'B then
                    1
                else
                    0

            {
                Start = start
                KeyEnd = start + colon
                ValueStart = start + colon + 1 + space
                End = start + line.Length
            }

    let add (f: Field) count =
        if count = fields.Length then
            Array.Resize(&fields, 2 * count)

        fields[count] <- f

    /// The message at the front of `span`: the bytes it took, or 0 when its blank line is not there yet.
    /// Blank lines before its first line are noise between messages, taken with it.
    let cut (span: ReadOnlySpan<byte>) (message: byref<Message>) =
        let mutable position = 0
        let mutable count = 0
        let mutable complete = false
        let mutable newline = span.IndexOf '\n'B

        while not complete && newline >= 0 do
            let line = trimCr (span.Slice(position, newline))

            if line.IsEmpty then
                complete <- count > 0
            else
                add (field line position) count
                count <- count + 1

            position <- position + newline + 1
            newline <- if complete then -1 else span.Slice(position).IndexOf '\n'B

        if complete then
            let first = fields[0].Start
            let bytes = span.Slice(first, fields[count - 1].End - first).ToArray()

            let own = Array.zeroCreate<Field> count

            for i in 0 .. count - 1 do
                let f = fields[i]

                own[i] <- {
                    Start = f.Start - first
                    KeyEnd = f.KeyEnd - first
                    ValueStart = f.ValueStart - first
                    End = f.End - first
                }

            message <- Message(bytes, own)
            position
        else
            0

    /// A buffer whose first segment ends inside a message: copy its front, in windows that double (a
    /// message is rarely over a few hundred bytes, the buffer may hold many), and cut from the copy.
    let cutAcrossSegments (buffer: ReadOnlySequence<byte>) (message: byref<Message>) =
        let available = int (min buffer.Length (int64 FrameReader.MaxMessageBytes))
        let mutable window = min available 4096
        let mutable taken = 0

        while taken = 0 && window > 0 do
            if linear.Length < window then
                linear <- Array.zeroCreate (max window (2 * linear.Length))

            buffer.Slice(0, window).CopyTo(Span linear)
            taken <- cut (ReadOnlySpan(linear, 0, window)) &message

            window <-
                if taken > 0 || window = available then
                    0
                else
                    min available (2 * window)

        taken

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
        let taken =
            match cut buffer.FirstSpan &message with
            | 0 when not buffer.IsSingleSegment -> cutAcrossSegments buffer &message
            | taken -> taken

        if taken > 0 then
            buffer <- buffer.Slice taken

        taken > 0
