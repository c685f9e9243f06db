namespace Callback.Ami

open System
open System.Buffers
open System.Numerics
open System.Runtime.Intrinsics
open System.Text

/// Where the line ends (`\n`) and colons are in up to 64 bytes, one bit per byte. Splitting a message line
/// by line with `IndexOf` costs a call per line and per colon (most of the parser's time on 20-byte
/// lines); comparing whole blocks at once and walking the set bits does the same in a few instructions
/// per line. By hand because no library here marks every occurrence of two bytes.
[<RequireQualifiedAccess>]
module Marks =
    /// Bytes looked at per call.
    [<Literal>]
    let Block = 64

    let private newline = '\n'B
    let private colon = ':'B

    /// Both masks of a full 64-byte block, with the widest vectors the CPU runs natively.
    let private vectored (block: ReadOnlySpan<byte>) =
        if Vector256.IsHardwareAccelerated then
            let a = Vector256.Create(values = block)
            let b = Vector256.Create(values = block.Slice 32)
            let n = Vector256.Create newline
            let c = Vector256.Create colon
            let bits (v: Vector256<byte>) = uint64 (v.ExtractMostSignificantBits())

            struct (bits (Vector256.Equals(a, n)) ||| (bits (Vector256.Equals(b, n)) <<< 32),
                    bits (Vector256.Equals(a, c)) ||| (bits (Vector256.Equals(b, c)) <<< 32))
        else
            let n = Vector128.Create newline
            let c = Vector128.Create colon
            let mutable newlines = 0UL
            let mutable colons = 0UL

            for i in 0..3 do
                let v = Vector128.Create(values = block.Slice(16 * i))

                newlines <-
                    newlines
                    ||| (uint64 (Vector128.Equals(v, n).ExtractMostSignificantBits()) <<< (16 * i))

                colons <-
                    colons
                    ||| (uint64 (Vector128.Equals(v, c).ExtractMostSignificantBits()) <<< (16 * i))

            struct (newlines, colons)

    /// Newlines and colons among the first `Block` bytes of `bytes` (or all of them, when fewer).
    let find (bytes: ReadOnlySpan<byte>) =
        if bytes.Length >= Block && Vector128.IsHardwareAccelerated then
            vectored bytes
        else
            let mutable newlines = 0UL
            let mutable colons = 0UL

            for i in 0 .. min Block bytes.Length - 1 do
                if bytes[i] = newline then
                    newlines <- newlines ||| (1UL <<< i)
                elif bytes[i] = colon then
                    colons <- colons ||| (1UL <<< i)

            struct (newlines, colons)

/// Turns the bytes Asterisk sends into lines (the greeting) and messages (everything after it).
///
/// Written by hand on top of System.IO.Pipelines' `ReadOnlySequence` because no library on our feed
/// frames AMI. Splits only on the blank line, keeps key order and repeated keys, accepts a bare LF, and
/// leaves an incomplete message in the buffer until the rest arrives. It decodes nothing: a message is a
/// copy of its bytes and where its lines lie (see `Message`). One instance per connection, for its scratch
/// arrays and because a message over `maxMessageBytes` is skipped to its end across reads: it is counted
/// (`Skipped`), never returned, and the messages after it are read as usual.
type FrameReader(maxMessageBytes: int) =
    static let trimCr (line: ReadOnlySpan<byte>) =
        if line.Length > 0 && line[line.Length - 1] = '\r'B then
            line.Slice(0, line.Length - 1)
        else
            line

    /// Where the lines of the message being cut lie in the span; grown when a message has more lines.
    let mutable fields = Array.zeroCreate<Field> 64
    /// A message that straddles the pipe's segments is copied here to be cut like any other.
    let mutable linear: byte[] = Array.empty
    /// Inside a message over the cap, being dropped up to its blank line.
    let mutable skipping = false
    /// While skipping: 0 inside a line, 1 just after a LF, 2 after LF CR (a blank line needs one more LF).
    let mutable lineState = 0
    let mutable skipped = 0L

    do
        if maxMessageBytes < 64 then
            invalidArg (nameof maxMessageBytes) "A cap under 64 bytes would skip every message."

    /// Line `[start, lineEnd)` of `span` (CR already trimmed), its first colon at `colon` (-1: none), as
    /// offsets from `first`, where the message's copy of its bytes will begin.
    let field (span: ReadOnlySpan<byte>) first start colon lineEnd =
        if colon < 0 then
            {
                Start = start - first
                KeyEnd = lineEnd - first
                ValueStart = lineEnd - first
                End = lineEnd - first
            }
        else
            let space =
                if colon + 1 < lineEnd && span[colon + 1] = ' 'B then
                    1
                else
                    0

            {
                Start = start - first
                KeyEnd = colon - first
                ValueStart = colon + 1 + space - first
                End = lineEnd - first
            }

    let add (f: Field) count =
        if count = fields.Length then
            Array.Resize(&fields, 2 * count)

        fields[count] <- f

    /// The message at the front of `span`: the bytes it took, or 0 when its blank line is not there yet.
    /// Blank lines before its first line are noise between messages, taken with it.
    let cut (span: ReadOnlySpan<byte>) (message: byref<Message>) =
        let mutable lineStart = 0
        let mutable first = -1
        let mutable colon = -1
        let mutable count = 0
        let mutable taken = 0
        let mutable block = 0

        while taken = 0 && block < span.Length do
            let struct (newlines, colons) = Marks.find (span.Slice block)
            let mutable marks = newlines ||| colons

            while taken = 0 && marks <> 0UL do
                let bit = BitOperations.TrailingZeroCount marks
                let at = block + bit
                marks <- marks &&& (marks - 1UL)

                if (colons >>> bit) &&& 1UL <> 0UL then
                    if colon < 0 then
                        colon <- at
                else
                    let lineEnd =
                        if at > lineStart && span[at - 1] = '\r'B then
                            at - 1
                        else
                            at

                    if lineEnd > lineStart then
                        if count = 0 then
                            first <- lineStart

                        add (field span first lineStart colon lineEnd) count
                        count <- count + 1
                    elif count > 0 then
                        taken <- at + 1

                    lineStart <- at + 1
                    colon <- -1

            block <- block + Marks.Block

        if taken > 0 then
            let bytes = span.Slice(first, fields[count - 1].End).ToArray()
            message <- Message(bytes, Array.sub fields 0 count)

        taken

    /// A buffer whose first segment ends inside a message: copy its front, in windows that double (a
    /// message is rarely over a few hundred bytes, the buffer may hold many), and cut from the copy.
    let cutAcrossSegments (buffer: ReadOnlySequence<byte>) (message: byref<Message>) =
        let available = int (min buffer.Length (int64 maxMessageBytes))
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

    /// Drops the bytes of `span` up to and including the blank line that ends the skipped message;
    /// how many it dropped, and whether the end was among them.
    let skipIn (span: ReadOnlySpan<byte>) (found: byref<bool>) =
        let mutable i = 0

        while not found && i < span.Length do
            if lineState = 0 then
                match span.Slice(i).IndexOf '\n'B with
                | -1 -> i <- span.Length
                | at ->
                    i <- i + at + 1
                    lineState <- 1
            else
                let b = span[i]
                i <- i + 1

                if b = '\n'B then found <- true
                elif b = '\r'B && lineState = 1 then lineState <- 2
                else lineState <- 0

        i

    /// Drops what `buffer` holds of the skipped message; true once its end is dropped too.
    let skipOversized (buffer: byref<ReadOnlySequence<byte>>) =
        let mutable found = false
        let mutable dropped = 0L
        let mutable segments = buffer.GetEnumerator()

        while not found && segments.MoveNext() do
            dropped <- dropped + int64 (skipIn segments.Current.Span &found)

        buffer <- buffer.Slice dropped

        if found then
            skipping <- false

        found

    /// The message at the front of `buffer`, looking no further than the cap: the bytes it took, or 0.
    let cutWithinCap (buffer: ReadOnlySequence<byte>) (message: byref<Message>) =
        let first = buffer.FirstSpan

        match cut (first.Slice(0, min first.Length maxMessageBytes)) &message with
        | 0 when not buffer.IsSingleSegment && first.Length < maxMessageBytes -> cutAcrossSegments buffer &message
        | taken -> taken

    /// No message ends within the cap's bytes. Blank lines in front (noise between messages) are dropped
    /// first, and the cut is tried again on what follows; a message that starts right away is skipped.
    let startSkipping (buffer: byref<ReadOnlySequence<byte>>) =
        let mutable reader = SequenceReader<byte>(buffer)

        if reader.AdvancePastAny('\r'B, '\n'B) > 0L then
            buffer <- buffer.Slice reader.Position
        else
            skipping <- true
            lineState <- 0
            skipped <- skipped + 1L

    /// The default cap on one message: 1 MiB, far above the largest event Asterisk sends in practice
    /// (a channel with many variables is a few KiB), low enough that a broken peer cannot exhaust memory.
    static member DefaultMaxMessageBytes = 1024 * 1024

    /// A reader with the default cap.
    new() = FrameReader(FrameReader.DefaultMaxMessageBytes)

    /// The most bytes one message may take; a longer one is skipped.
    member _.MaxMessageBytes = maxMessageBytes

    /// How many messages over the cap were skipped so far.
    member _.Skipped = skipped

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

    /// Cuts one whole message off `buffer`; false while its blank line is missing. `buffer` is then
    /// untouched, unless a message over the cap is being skipped: what arrived of it is dropped from it.
    member _.TryReadMessage(buffer: byref<ReadOnlySequence<byte>>, message: byref<Message>) : bool =
        let mutable taken = 0
        let mutable waiting = false

        while taken = 0 && not waiting do
            if skipping then
                waiting <- not (skipOversized &buffer)
            else
                taken <- cutWithinCap buffer &message

                if taken = 0 then
                    if buffer.Length >= int64 maxMessageBytes then
                        startSkipping &buffer
                    else
                        waiting <- true

        if taken > 0 then
            buffer <- buffer.Slice taken

        taken > 0
