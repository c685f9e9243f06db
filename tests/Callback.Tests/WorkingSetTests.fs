/// The monitor's working set: each event reaches only the calls it may be about (by ChannelId, leg,
/// `CALLBACK_ID`, OriginateResponse), and routing changes no call's result.
module Callback.Tests.WorkingSetTests

open System
open System.Buffers
open System.Diagnostics
open System.IO
open Expecto
open FsCheck
open FsCheck.FSharp
open Callback.Ami
open Callback.Calls
open Callback.Domain
open Callback.Tests.Frames

let private t0 = DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero)

let private recorded (file: string) =
    let all =
        File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "fixtures", "ami", file))

    let afterBanner = all[Array.IndexOf(all, byte '\n') + 1 ..]
    fst (readAllFrom (FrameReader()) (ReadOnlySequence<byte> afterBanner))

/// The attempt a recording's OriginateResponse names.
let private attemptIn (messages: Message list) =
    messages
    |> List.pick (fun m ->
        if Message.tryFind "Event" m = Some "OriginateResponse" then
            Message.tryFind "Uniqueid" m |> Option.bind ChannelId.tryParse
        else
            None)

let private files = [
    "sip-callback-en.txt"
    "sip-callback-fr.txt"
    "sip-owner-busy.txt"
    "sip-owner-no-answer.txt"
    "sip-visitor-busy.txt"
    "sip-visitor-no-answer.txt"
    "sip-visitor-reject.txt"
    "sip-visitor-unavailable.txt"
    "sip-visitor-unreachable.txt"
]

/// Three recordings of different calls, merged in a random order that keeps each one's own order.
let private merged =
    gen {
        let! picked = Gen.shuffle files |> Gen.map (Seq.take 3 >> List.ofSeq)

        let tagged =
            picked |> List.mapi (fun i file -> recorded file |> List.map (fun m -> i, m))

        let rec merge (lists: (int * Message) list list) =
            gen {
                match lists |> List.filter (not << List.isEmpty) with
                | [] -> return []
                | nonEmpty ->
                    let! pick = Gen.choose (0, nonEmpty.Length - 1)
                    let head = List.head nonEmpty[pick]
                    let rest = nonEmpty |> List.mapi (fun i l -> if i = pick then List.tail l else l)
                    let! tail = merge rest
                    return head :: tail
            }

        let! order = merge tagged
        return picked, order |> List.map snd
    }

let private event (lines: (string * string) list) =
    (CallEvent.tryParse (message lines)).Value

/// Events of channels that are no call of ours: Asterisk's own Uniqueids, another sidecar's ActionIDs.
let private unrelated (i: int) =
    let id = $"1733000000.{i}"

    match i % 5 with
    | 0 ->
        event [
            "Event", "Newchannel"
            "Channel", $"PJSIP/other-{i}"
            "Uniqueid", id
            "Linkedid", id
        ]
    | 1 ->
        event [
            "Event", "Newstate"
            "Channel", "PJSIP/o"
            "Uniqueid", id
            "Linkedid", id
            "ChannelState", "5"
        ]
    | 2 ->
        event [
            "Event", "Hangup"
            "Channel", "PJSIP/o"
            "Uniqueid", id
            "Linkedid", id
            "Cause", "16"
        ]
    | 3 ->
        event [
            "Event", "OriginateResponse"
            "Response", "Failure"
            "ActionID", $"other-{i}"
            "Uniqueid", "<unknown>"
        ]
    | _ ->
        event [
            "Event", "VarSet"
            "Channel", "PJSIP/o"
            "Uniqueid", id
            "Linkedid", id
            "Variable", "__CALLBACK_ID"
            "Value", CallId.value (CallId.create ())
        ]

let private withCalls (count: int) =
    let set = WorkingSet()

    for _ in 1..count do
        let callId = CallId.create ()
        let channelId = ChannelId.format callId Attempt.first
        set.Add(TrackedCall.queued callId Attempt.first t0) |> ignore

        set.Apply(
            t0,
            event [
                "Event", "Newchannel"
                "Channel", "PJSIP/trunk-1"
                "Uniqueid", channelId
                "Linkedid", channelId
            ]
        )
        |> ignore

    set

[<Tests>]
let tests =
    testList "Working set" [
        // Catches an index that hands every event to every live call (the cost grows with the live calls).
        test "10,000 unrelated events with 100 live calls reach no call and change none" {
            let set = withCalls 100
            let before = set.Calls
            let clock = Stopwatch.StartNew()

            for i in 1..10000 do
                let event = unrelated i
                Expect.isEmpty (set.Route event) "routed to no call"
                Expect.isEmpty (set.Apply(t0, event)) "no call changed"

            Expect.equal set.Count 100 "every call still there"

            for call in before do
                Expect.isTrue (obj.ReferenceEquals((set.TryFind call.CallId).Value, call)) "unchanged"

            Expect.isLessThan clock.Elapsed.TotalSeconds 5.0 "in well under a second a thousand"
        }

        // Catches routing by ChannelId alone: a leg known only from an earlier event would lose its Hangup.
        test "a leg first seen through CALLBACK_ID is routed by its Uniqueid alone afterwards" {
            let callId = CallId.create ()
            let set = WorkingSet()
            set.Add(TrackedCall.queued callId Attempt.first t0) |> ignore

            let named = [ "Channel", "PJSIP/owner-1"; "Uniqueid", "1733.7"; "Linkedid", "1733.7" ]

            set.Apply(
                t0,
                event (
                    [ "Event", "Newchannel"; "ChanVariable", $"CALLBACK_ID={CallId.value callId}" ]
                    @ named
                )
            )
            |> ignore

            let hangup = event ([ "Event", "Hangup"; "Cause", "16" ] @ named)
            Expect.equal (set.Route hangup |> List.map _.CallId) [ callId ] "found by its leg"
        }

        // Catches an OriginateResponse routed by Uniqueid only (with no channel made it is `<unknown>`).
        test "an OriginateResponse is routed by its ActionID" {
            let callId = CallId.create ()
            let set = WorkingSet()
            set.Add(TrackedCall.queued callId Attempt.first t0) |> ignore

            let response =
                event [
                    "Event", "OriginateResponse"
                    "Response", "Failure"
                    "ActionID", ChannelId.format callId Attempt.first
                    "Uniqueid", "<unknown>"
                ]

            Expect.equal (set.Route response |> List.map _.CallId) [ callId ] "its call"
        }

        // Catches an index that misses any event the fold would take: every call would differ from the
        // fold over every event.
        testPropertyWithConfig
            {
                FsCheckConfig.defaultConfig with
                    maxTest = 50
            }
            "three calls' events interleaved give each call what folding every event into it gives"
        <| Prop.forAll (Arb.fromGen merged) (fun (picked, messages) ->
            let set = WorkingSet()

            let attempts = picked |> List.map (fun file -> attemptIn (recorded file))

            for callId, attempt in attempts do
                set.Add(TrackedCall.queued callId attempt t0) |> ignore

            let timed =
                messages |> List.mapi (fun i m -> t0.AddMilliseconds(100.0 * float i), m)

            for at, m in timed do
                CallEvent.tryParse m |> Option.iter (fun e -> set.Apply(at, e) |> ignore)

            for callId, attempt in attempts do
                let alone = CallState.foldMessages (CallState.queued callId attempt t0) timed
                Expect.equal (set.TryFind callId).Value.Call alone "the same call")
    ]
