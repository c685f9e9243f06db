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

let foldOnce (t: Transcript) =
    let call = CallState.ofChannel t.ChannelId None (fst t.Messages.Head)
    CallState.foldMessages call t.Messages

/// A monitor's working set with `live` other calls up (each with its first channel), which none of the
/// recordings' events is about: with the index, they should cost nothing.
let workingSet (live: int) =
    let set = WorkingSet()
    let t0 = DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero)

    for _ in 1..live do
        let callId = Callback.Domain.CallId.create ()

        let channelId =
            Callback.Domain.ChannelId.format callId Callback.Domain.Attempt.first

        set.Add(TrackedCall.queued callId Callback.Domain.Attempt.first t0) |> ignore

        let first = {
            Channel = "PJSIP/trunk-1"
            Uniqueid = channelId
            Linkedid = channelId
            CallbackId = None
        }

        set.Apply(t0, Newchannel first) |> ignore

    set

/// Folds `t` as the monitor does: its call added to `set`, each message parsed and routed through the
/// working set, the call removed at the end. Only for recordings whose call is a ChannelId of ours.
let foldRouted (set: WorkingSet) (t: Transcript) =
    let callId, attempt = (Callback.Domain.ChannelId.tryParse t.ChannelId).Value
    set.Add(TrackedCall.queued callId attempt (fst t.Messages.Head)) |> ignore

    for at, message in t.Messages do
        match CallEvent.tryParse message with
        | Some event -> set.Apply(at, event) |> ignore
        | None -> ()

    let call = (set.TryFind callId).Value.Call
    set.Remove callId
    call

/// Whether the recording's call is named by a ChannelId (`<callId>-<attempt>`), so a working set routes it.
let routable (t: Transcript) =
    (Callback.Domain.ChannelId.tryParse t.ChannelId).IsSome

/// Folds every transcript with `foldOne` until `duration` has passed: messages folded, time taken, bytes
/// allocated.
let roundWith (foldOne: Transcript -> Call) (all: Transcript list) (duration: TimeSpan) =
    let watch = Stopwatch.StartNew()
    let allocatedBefore = GC.GetAllocatedBytesForCurrentThread()
    let mutable messages = 0L
    let mutable folds = 0L
    let mutable finals = 0L

    while watch.Elapsed < duration do
        for t in all do
            if Call.isFinal (foldOne t) then
                finals <- finals + 1L

            folds <- folds + 1L
            messages <- messages + int64 t.Messages.Length

    let elapsed = watch.Elapsed
    let allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore

    // Every fold must end its call: the result is used, and a regression of the fold stops the benchmark.
    if finals <> folds then
        failwith $"{folds - finals} of {folds} folds did not end their call"

    messages, elapsed, allocated

/// Folds every transcript with the fold alone.
let round all duration = roundWith foldOnce all duration

/// Every transcript's final state, to check the corpus before timing it.
let verify (all: Transcript list) =
    for t in all do
        let call = foldOnce t

        if not (Call.isFinal call) then
            failwith $"{t.Name}: the fold does not end the call"
