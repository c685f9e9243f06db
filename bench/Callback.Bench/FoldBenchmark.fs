/// The call fold's throughput on one thread: every recorded callback transcript (tests/fixtures/ami, the SIP
/// endings and the Local callback), read once with the product's FrameReader, then folded again and again
/// from a fresh call, as the monitor folds each message it receives (CallEvent.tryParse, then CallState.apply).
module Callback.Bench.FoldBenchmark

open System
open System.Buffers
open System.Diagnostics
open System.IO
open Callback.Ami
open Callback.Calls

/// The recordings folded, each embedded under its own name.
let transcripts = [
    "sip-callback-en.txt"
    "sip-callback-fr.txt"
    "sip-owner-busy.txt"
    "sip-owner-no-answer.txt"
    "sip-visitor-busy.txt"
    "sip-visitor-no-answer.txt"
    "sip-visitor-reject.txt"
    "sip-visitor-unavailable.txt"
    "sip-visitor-unreachable.txt"
    "events-callback.txt"
]

let private messagesOf (name: string) =
    use stream =
        Reflection.Assembly.GetExecutingAssembly().GetManifestResourceStream name

    use memory = new MemoryStream()
    stream.CopyTo memory
    let all = memory.ToArray()
    let afterBanner = Array.IndexOf(all, byte '\n') + 1

    let mutable buffer =
        ReadOnlySequence<byte>(all, afterBanner, all.Length - afterBanner)

    let reader = FrameReader()
    let mutable message = Unchecked.defaultof<Message>
    let messages = ResizeArray()

    while reader.TryReadMessage(&buffer, &message) do
        messages.Add message

    messages.ToArray()

/// One recording, ready to fold: its call's ChannelId and its messages, each with an instant.
type Transcript = {
    Name: string
    ChannelId: string
    Messages: (DateTimeOffset * Message) list
    /// How many of its messages are events the fold reads.
    Read: int
}

let load () =
    let t0 = DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero)

    transcripts
    |> List.map (fun name ->
        let messages = messagesOf name

        let channelId =
            messages
            |> Array.pick (fun m ->
                if Message.tryFind "Event" m = Some "OriginateResponse" then
                    Message.tryFind "Uniqueid" m
                else
                    None)

        {
            Name = name
            ChannelId = channelId
            Messages =
                messages
                |> Array.mapi (fun i m -> t0.AddMilliseconds(float i * 100.0), m)
                |> List.ofArray
            Read = messages |> Array.filter (CallEvent.tryParse >> Option.isSome) |> Array.length
        })

let private foldOnce (t: Transcript) =
    let call = CallState.ofChannel t.ChannelId None (fst t.Messages.Head)
    CallState.foldMessages call t.Messages

/// Folds every transcript until `duration` has passed: messages folded, time taken, bytes allocated.
let round (all: Transcript list) (duration: TimeSpan) =
    let watch = Stopwatch.StartNew()
    let allocatedBefore = GC.GetAllocatedBytesForCurrentThread()
    let mutable messages = 0L
    let mutable folds = 0L
    let mutable finals = 0L

    while watch.Elapsed < duration do
        for t in all do
            if Call.isFinal (foldOnce t) then
                finals <- finals + 1L

            folds <- folds + 1L
            messages <- messages + int64 t.Messages.Length

    let elapsed = watch.Elapsed
    let allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore

    // Every fold must end its call: the result is used, and a regression of the fold stops the benchmark.
    if finals <> folds then
        failwith $"{folds - finals} of {folds} folds did not end their call"

    messages, elapsed, allocated

/// Every transcript's final state, to check the corpus before timing it.
let verify (all: Transcript list) =
    for t in all do
        let call = foldOnce t

        if not (Call.isFinal call) then
            failwith $"{t.Name}: the fold does not end the call"
