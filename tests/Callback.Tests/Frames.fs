/// What the framing tests and the recorded-transcript tests share: bytes as a socket leaves them in a pipe
/// (one segment or many, cut anywhere, fed one read at a time) and the messages a FrameReader makes of them.
module Callback.Tests.Frames

open System
open System.Buffers
open System.Text
open FsCheck.FSharp
open Callback.Ami

/// One piece of a multi-segment sequence, as a socket read would leave it in a pipe.
type private Chunk(memory: ReadOnlyMemory<byte>, runningIndex: int64) as this =
    inherit ReadOnlySequenceSegment<byte>()

    do
        this.Memory <- memory
        this.RunningIndex <- runningIndex

    member this.Append(bytes: byte[]) =
        let next = Chunk(ReadOnlyMemory bytes, this.RunningIndex + int64 this.Memory.Length)
        this.Next <- next
        next

/// The chunks as one sequence with a segment per chunk.
let segmented (chunks: byte[] list) =
    match chunks with
    | [] -> ReadOnlySequence<byte>.Empty
    | first :: rest ->
        let start = Chunk(ReadOnlyMemory first, 0L)
        let last = rest |> List.fold (fun (c: Chunk) bytes -> c.Append bytes) start
        ReadOnlySequence<byte>(start, 0, last, last.Memory.Length)

let bytes (text: string) = Encoding.UTF8.GetBytes text

/// The lines as Asterisk writes a message: each ended by CRLF, then the blank line.
let wire (lines: string list) =
    String.concat "" (lines |> List.map (fun l -> l + "\r\n")) + "\r\n"

/// A message with these headers, in order.
let message (lines: (string * string) list) =
    lines |> List.map (fun (k, v) -> { Key = k; Value = v }) |> Message.ofHeaders

/// Every whole message at the front of `buffer`, and what is left after them.
let readAllFrom (reader: FrameReader) (buffer: ReadOnlySequence<byte>) =
    let mutable buffer = buffer
    let mutable read = Unchecked.defaultof<Message>
    let messages = ResizeArray()

    while reader.TryReadMessage(&buffer, &read) do
        messages.Add read

    List.ofSeq messages, buffer

/// Feeds the chunks one at a time to `reader`, as reads from a socket: append, take every whole message,
/// keep the rest.
let readIncrementallyWith (reader: FrameReader) (chunks: byte[] list) =

    let messages, rest =
        ((([], [||]): Message list * byte[]), chunks)
        ||> List.fold (fun (messages, pending) chunk ->
            let found, rest =
                readAllFrom reader (ReadOnlySequence<byte>(Array.append pending chunk))

            messages @ found, rest.ToArray())

    messages, rest

/// Feeds the chunks one at a time to a reader with the default cap.
let readIncrementally (chunks: byte[] list) =
    readIncrementallyWith (FrameReader()) chunks

/// The bytes in segments of `size` bytes (the last one shorter).
let segmentsOf (size: int) (all: byte[]) =
    all |> Array.chunkBySize size |> List.ofArray

/// The bytes cut at random places into chunks, empty chunks included.
let chunksOf (all: byte[]) =
    gen {
        let! cuts =
            Gen.listOf (Gen.choose (0, all.Length)) |> Gen.map (List.sort >> List.distinct)

        let! empties = Gen.elements [ true; false ]
        let bounds = 0 :: cuts @ [ all.Length ] |> List.pairwise
        let chunks = bounds |> List.map (fun (a, b) -> all[a .. b - 1])

        return
            if empties then
                chunks |> List.collect (fun c -> [ c; [||] ])
            else
                chunks
    }
