/// The bytes the benchmarks parse: real Asterisk 22 messages from the recorded transcript
/// (tests/fixtures/ami/events-callback.txt), repeated into a large buffer.
module Callback.Bench.Corpus

open System
open System.IO
open System.Text

/// The two message mixes measured.
[<RequireQualifiedAccess>]
module Mix =
    /// Every message of the recorded callback transcript after the greeting: responses and 21 kinds of event
    /// (VarSet, Newexten, TestEvent with a repeated key, OriginateResponse, …).
    [<Literal>]
    let Callback = "callback-transcript"

    /// Only the Newchannel and Hangup events (~380 bytes each): what bench/stream's fake server sends.
    [<Literal>]
    let NewchannelHangup = "newchannel-hangup"

let private fixture () =
    use stream =
        Reflection.Assembly.GetExecutingAssembly().GetManifestResourceStream "events-callback.txt"

    use memory = new MemoryStream()
    stream.CopyTo memory
    memory.ToArray()

/// The messages of the fixture after its greeting line, each with its closing blank line.
let private recorded () : byte[][] =
    let bytes = fixture ()
    let start = Array.IndexOf(bytes, byte '\n') + 1
    let separator = "\r\n\r\n"B
    let messages = ResizeArray()
    let mutable at = start

    while at < bytes.Length do
        match bytes.AsSpan(at).IndexOf(ReadOnlySpan separator) with
        | -1 -> at <- bytes.Length
        | i ->
            messages.Add(bytes.AsSpan(at, i + 4).ToArray())
            at <- at + i + 4

    messages.ToArray()

let private startsWith (prefix: string) (message: byte[]) =
    message.AsSpan().StartsWith(ReadOnlySpan(Encoding.ASCII.GetBytes prefix))

/// The messages of one mix, in recorded order.
let messages (mix: string) : byte[][] =
    let all = recorded ()

    match mix with
    | Mix.Callback -> all
    | Mix.NewchannelHangup ->
        all
        |> Array.filter (fun m -> startsWith "Event: Newchannel\r\n" m || startsWith "Event: Hangup\r\n" m)
    | other -> invalidArg "mix" $"unknown mix '{other}'"

/// `count` messages of the mix, cycled, back to back in one buffer.
let build (mix: string) (count: int) : byte[] =
    let ms = messages mix
    let total = Seq.init count (fun i -> ms[i % ms.Length].LongLength) |> Seq.sum
    let buffer = Array.zeroCreate<byte>(int total)
    let mutable at = 0

    for i in 0 .. count - 1 do
        let m = ms[i % ms.Length]
        Buffer.BlockCopy(m, 0, buffer, at, m.Length)
        at <- at + m.Length

    buffer

/// What a message of the mix holds on average, and what "one string per value, one array and one
/// record per message" costs in bytes on 64-bit .NET: the allocation floor of an ordered-pairs parser
/// whose keys come from a cache.
type Shape = {
    Mix: string
    Messages: int
    MeanBytes: float
    MeanFields: float
    /// Bytes of one exact-size string per non-empty value + the Header[] + the Message record.
    FloorBytes: float
}

let shape (mix: string) : Shape =
    let ms = messages mix
    let align8 n = (n + 7) &&& ~~~7

    let perMessage (m: byte[]) =
        let text = Encoding.UTF8.GetString m

        let lines =
            text.Split("\r\n", StringSplitOptions.RemoveEmptyEntries)
            |> Array.filter (fun l -> l.Length > 0)

        let values =
            lines
            |> Array.map (fun l ->
                match l.IndexOf ':' with
                | -1 -> ""
                | c -> l.Substring(c + 1).TrimStart(' '))

        let strings =
            values
            |> Array.filter (fun v -> v.Length > 0)
            |> Array.sumBy (fun v -> align8 (22 + 2 * v.Length))

        let headerArray = align8 (24 + 16 * lines.Length)
        let record = 24
        float lines.Length, float (strings + headerArray + record)

    let stats = ms |> Array.map perMessage

    {
        Mix = mix
        Messages = ms.Length
        MeanBytes = ms |> Array.averageBy (fun m -> float m.Length)
        MeanFields = stats |> Array.averageBy fst
        FloorBytes = stats |> Array.averageBy snd
    }
