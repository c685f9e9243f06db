/// The call fold on what Asterisk 22 really sent (tests/fixtures/ami: the SIP endings and the Local
/// callbacks), read with the product's own FrameReader, and on what a monitor must survive: other calls'
/// events in between, duplicates, events before Newchannel, unknown events, OriginateResponse first.
module Callback.Tests.CallStateTests

open System
open System.Buffers
open System.IO
open Expecto
open FsCheck
open FsCheck.FSharp
open Callback.Ami
open Callback.Calls
open Callback.Domain
open Callback.Tests.Frames

let private fixtureDir = Path.Combine(AppContext.BaseDirectory, "fixtures", "ami")

/// Every message of a recorded session, after its banner line.
let private recorded (file: string) =
    let all = File.ReadAllBytes(Path.Combine(fixtureDir, file))
    let afterBanner = all[Array.IndexOf(all, byte '\n') + 1 ..]
    let messages, _ = readAllFrom (FrameReader()) (ReadOnlySequence<byte> afterBanner)
    messages

let private t0 = DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero)

/// Message i of a recording is received at t0 + i × 100 ms.
let private timed (messages: Message list) =
    messages |> List.mapi (fun i m -> t0.AddMilliseconds(100.0 * float i), m)

/// The call the recording's OriginateResponse names (its Uniqueid is the ChannelId), queued at t0.
let private callIn (messages: Message list) =
    let channelId =
        messages
        |> List.pick (fun m ->
            if Message.tryFind "Event" m = Some "OriginateResponse" then
                Message.tryFind "Uniqueid" m
            else
                None)

    let callbackId = ChannelId.tryParse channelId |> Option.map (fst >> CallId.value)

    CallState.ofChannel channelId callbackId t0

let private foldTimed (timedMessages: (DateTimeOffset * Message) list) =
    CallState.foldMessages (callIn (List.map snd timedMessages)) timedMessages

let private fold file = foldTimed (timed (recorded file))

let private states (call: Call) = call.History |> List.map _.State

let private cause code text sip =
    Some {
        Code = code
        Text = text
        SipCode = sip
    }

/// The instant of the first message named `event` (in receipt order), for the talk time.
let private firstAt (event: string) (pred: Message -> bool) (timedMessages: (DateTimeOffset * Message) list) =
    timedMessages
    |> List.find (fun (_, m) -> Message.tryFind "Event" m = Some event && pred m)
    |> fst

/// The SIP endings that fail before the visitor answers: file, the states, the outcome and its cause.
let private failures = [
    "sip-visitor-busy.txt", [ State.Queued; State.Ringing; State.Failed ], Failed(Busy, cause 17 "User busy" (Some 486))
    "sip-visitor-reject.txt",
    [ State.Queued; State.Ringing; State.Failed ],
    Failed(Rejected, cause 21 "Call Rejected" (Some 603))
    "sip-visitor-unavailable.txt",
    [ State.Queued; State.Ringing; State.Failed ],
    Failed(Congestion, cause 34 "Circuit/channel congestion" (Some 503))
    "sip-visitor-no-answer.txt",
    [ State.Queued; State.Ringing; State.Failed ],
    Failed(NoAnswer, cause 19 "User alerting, no answer" (Some 480))
    // As observed: nothing listening looks like no answer (19, 480), but the phone never rang.
    "sip-visitor-unreachable.txt",
    [ State.Queued; State.Failed ],
    Failed(Unreachable, cause 19 "User alerting, no answer" (Some 480))
]

let private answeredStates = [ State.Queued; State.Ringing; State.Answered; State.Connecting ]

/// The call ends like this, whatever the instants: `Completed`'s talk time is compared by the tests that
/// compute it.
let private endOf (call: Call) =
    let status =
        match call.Status with
        | Ended(Completed _, c) -> Ended(Completed TimeSpan.Zero, c)
        | other -> other

    status, states call

let private isEvent name (m: Message) = Message.tryFind "Event" m = Some name

let private ourUniqueid (call: Call) (m: Message) =
    Message.tryFind "Uniqueid" m = Some call.ChannelId

/// Two recordings and a random interleaving of them that keeps each one's order.
let private interleaved =
    let files =
        [ for f, _, _ in failures -> f ]
        @ [ "sip-callback-en.txt"; "sip-owner-busy.txt"; "events-callback.txt" ]

    gen {
        let! ours = Gen.elements files
        let! theirs = Gen.elements (files |> List.filter ((<>) ours))
        let mine = timed (recorded ours)
        let others = recorded theirs |> List.map (fun m -> t0, m)

        let! picks =
            Gen.listOfLength (mine.Length + others.Length) (Gen.elements [ true; false ])

        let rec merge a b picks =
            match a, b, picks with
            | [], rest, _
            | rest, [], _ -> rest
            | x :: a', y :: b', pick :: picks' ->
                if pick then
                    x :: merge a' b picks'
                else
                    y :: merge a b' picks'
            | a, b, [] -> a @ b

        return ours, mine, merge mine others picks
    }

let private config = {
    FsCheckConfig.defaultConfig with
        maxTest = 100
}

/// A channel event as Asterisk writes it, for the cases no recording holds.
let private channelEvent name (channel: string) (uniqueid: string) (linkedid: string) (extra: (string * string) list) =
    message (
        [
            "Event", name
            "Privilege", "call,all"
            "Channel", channel
            "Uniqueid", uniqueid
            "Linkedid", linkedid
        ]
        @ extra
    )

let private hangup channel uniqueid linkedid (code: int) text =
    channelEvent "Hangup" channel uniqueid linkedid [ "Cause", string code; "Cause-txt", text ]

let private applyAll (call: Call) (messages: Message list) =
    CallState.foldMessages call (timed messages)

[<Tests>]
let tests =
    testList "CallState" [
        testList "recorded SIP endings" [
            for file, expectedStates, expectedStatus in failures do
                // Catches classifying from OriginateResponse Reason (0 for busy, reject and 503 alike), taking
                // DialStatus over the cause (603 is DialEnd NOANSWER), or ringing on DialBegin alone.
                test $"{file} ends {expectedStates |> List.last} with the visitor's cause and SIP code" {
                    let call = fold file
                    Expect.equal call.Status expectedStatus "outcome and cause"
                    Expect.equal (states call) expectedStates "history"
                }

            test "sip-callback-en.txt: ringing, answered, owner ringing, bridged, completed with the talk time" {
                let messages = timed (recorded "sip-callback-en.txt")
                let call = foldTimed messages
                Expect.equal (states call) (answeredStates @ [ State.Bridged; State.Ended ]) "history"

                let bridged = (call.History |> List.find (fun t -> t.State = State.Bridged)).At
                let hungUp = firstAt "Hangup" (fun _ -> true) messages

                // The bridge is complete at the second BridgeEnter; talk stops at the first Hangup.
                Expect.equal bridged (messages |> List.filter (snd >> isEvent "BridgeEnter") |> List.item 1 |> fst) "at"

                match call.Status with
                | Ended(Completed talk, c) ->
                    Expect.equal talk (hungUp - bridged) "talk time: bridge to hangup"
                    Expect.isGreaterThan talk TimeSpan.Zero "some talk"
                    Expect.equal (c |> Option.map _.Code) (Some 16) "normal clearing"
                | other -> failtest $"expected completed, got {other}"
            }

            test "sip-callback-fr.txt: the visitor hangs up after the bridge, which is completed" {
                let call = fold "sip-callback-fr.txt"
                Expect.equal (states call) (answeredStates @ [ State.Bridged; State.Ended ]) "history"
                Expect.equal (endOf call |> fst) (Ended(Completed TimeSpan.Zero, cause 16 "Normal Clearing" None)) "end"
            }

            // Catches reporting the visitor's cause 16 for an owner outcome, or missing the owner's dial status.
            test "sip-owner-busy.txt: answered, owner rang then busy, with the owner's cause" {
                let call = fold "sip-owner-busy.txt"
                Expect.equal (states call) (answeredStates @ [ State.Ended ]) "history"
                Expect.equal call.Status (Ended(OwnerBusy, cause 17 "User busy" (Some 486))) "owner-busy"
            }

            test "sip-owner-no-answer.txt: answered, owner rang out, with the owner's cause 0 as Asterisk gave it" {
                let call = fold "sip-owner-no-answer.txt"
                Expect.equal (states call) (answeredStates @ [ State.Ended ]) "history"

                match call.Status with
                | Ended(OwnerNoAnswer, Some c) -> Expect.equal c.Code 0 "cause 0"
                | other -> failtest $"expected owner-no-answer, got {other}"
            }

            // Catches ending the call on the HangupRequest/SoftHangupRequest (before the Hangup), taking the
            // visitor's early hangup for completed or an owner outcome, or dropping the cause Asterisk gave.
            test
                "sip-visitor-hangs-up-announcing.txt: answered, then the visitor left: visitor-hung-up, cause 0 as Asterisk gave it" {
                let call = fold "sip-visitor-hangs-up-announcing.txt"
                Expect.equal (states call) [ State.Queued; State.Ringing; State.Answered; State.Ended ] "history"
                Expect.equal call.Status (Ended(VisitorHungUp, cause 0 "Unknown" None)) "visitor-hung-up"
            }
        ]

        testList "recorded Local callbacks" [
            // Catches taking the visitor's Local ;2 half (Linkedid = ChannelId, another Uniqueid) for the owner.
            for file in [ "events-callback.txt"; "originate-with-events.txt" ] do
                test $"{file}: Local visitor and owner answer at once, bridged, completed" {
                    let call = fold file
                    Expect.equal (states call) [ State.Queued; State.Answered; State.Bridged; State.Ended ] "history"

                    Expect.equal
                        (endOf call |> fst)
                        (Ended(Completed TimeSpan.Zero, cause 16 "Normal Clearing" None))
                        "end"
                }
        ]

        testList "what a monitor must survive" [
            // Catches a fold that adopts any channel (no membership check) or keys legs by Channel name.
            testPropertyWithConfig config "another call's events in between change neither outcome nor history"
            <| Prop.forAll (Arb.fromGen interleaved) (fun (file, mine, merged) ->
                let alone = foldTimed mine
                let mixed = CallState.foldMessages (callIn (List.map snd mine)) merged
                Expect.equal mixed.Status alone.Status file
                Expect.equal mixed.History alone.History file)

            // Catches a fold that counts a second Hangup or DialEnd, or moves again on a repeated Newstate.
            test "every event received twice gives the same call" {
                for file in
                    [ for f, _, _ in failures -> f ]
                    @ [ "sip-callback-en.txt"; "sip-owner-busy.txt" ] do
                    let messages = timed (recorded file)
                    let twice = messages |> List.collect (fun m -> [ m; m ])
                    let call = callIn (List.map snd messages)
                    Expect.equal (CallState.foldMessages call twice) (foldTimed messages) file
            }

            // Catches a fold that ignores a channel's events until its Newchannel.
            test "the visitor's Newchannel arriving last changes nothing" {
                for file in [ "sip-visitor-busy.txt"; "sip-callback-en.txt" ] do
                    let messages = timed (recorded file)
                    let call = callIn (List.map snd messages)

                    let first, rest =
                        messages
                        |> List.partition (fun (_, m) -> isEvent "Newchannel" m && ourUniqueid call m)

                    let late = rest @ first
                    Expect.equal (CallState.foldMessages call late).Status (foldTimed messages).Status file
            }

            // Catches finalising on OriginateResponse Failure: the Hangup's cause (17) would be lost.
            test "an OriginateResponse Failure before the Hangup does not end the call; the Hangup does, with its cause" {
                let messages = recorded "sip-visitor-busy.txt"
                let call = callIn messages
                let response = messages |> List.findIndex (isEvent "OriginateResponse")
                let hangupAt = messages |> List.findIndex (isEvent "Hangup")
                Expect.isLessThan response hangupAt "the recording has the response first"
                let before = applyAll call (List.take (response + 1) messages)
                Expect.equal before.Status (Live Ringing) "still ringing after the Failure"
                Expect.equal (CallState.apply t0 Settle before).Status (Live Ringing) "Settle waits for a live channel"
                let after = applyAll call messages
                Expect.equal after.Status (Failed(Busy, cause 17 "User busy" (Some 486))) "the Hangup decides"
            }

            // Catches a Settle that is ignored (a call without a channel would stay queued until `lost`), or
            // one that ends a call without a failed Originate.
            test "an Originate that failed without a channel is unreachable once the settle window is over" {
                let call = CallState.queued (CallId.create ()) Attempt.first t0
                Expect.equal (CallState.apply t0 Settle call) call "no Failure yet: Settle does nothing"

                let failure =
                    message [
                        "Event", "OriginateResponse"
                        "ActionID", call.ChannelId
                        "Response", "Failure"
                        "Channel", "PJSIP/14385552368@trunk"
                        "Reason", "0"
                        "Uniqueid", call.ChannelId
                    ]

                let failed = applyAll call [ failure ]
                Expect.equal failed.Status (Live Queued) "not on the Failure alone"
                let settled = CallState.apply (t0.AddSeconds 2.0) Settle failed
                Expect.equal settled.Status (Failed(Unreachable, None)) "unreachable, no cause"
                Expect.equal (states settled) [ State.Queued; State.Failed ] "history"
            }

            test "lost ends a live call as failed, and a final call never changes again" {
                let messages = recorded "sip-visitor-busy.txt"
                let call = callIn messages
                let rang = messages |> List.findIndex (isEvent "DialState")
                let ringing = applyAll call (List.take (rang + 1) messages)
                Expect.equal ringing.Status (Live Ringing) "ringing once DialState RINGING came"
                let lost = CallState.apply (t0.AddMinutes 1.0) Lost ringing
                Expect.equal lost.Status (Failed(FailedOutcome.Lost, None)) "lost"
                Expect.equal (states lost) [ State.Queued; State.Ringing; State.Failed ] "history"
                Expect.equal (applyAll lost messages) lost "the rest of the recording changes nothing"

                Expect.equal
                    (CallState.apply t0 Lost (applyAll call messages))
                    (applyAll call messages)
                    "busy stays busy"
            }

            // Catches a fold that owns every channel carrying the call's CALLBACK_ID: a retry inherits it.
            test "the next attempt's channels are not this attempt's, a channel carrying only the call's id is" {
                let id = CallId.create ()
                let first = CallState.queued id Attempt.first t0
                let second = ChannelId.format id (Attempt.next Attempt.first)
                let callbackId = [ "Variable", "__CALLBACK_ID"; "Value", CallId.value id ]

                let retry = [
                    channelEvent "Newchannel" "PJSIP/trunk-2" second second []
                    channelEvent "VarSet" "PJSIP/trunk-2" second second callbackId
                    hangup "PJSIP/trunk-2" second second 17 "User busy"
                ]

                Expect.equal (applyAll first retry) first "attempt 1 untouched"

                let transferred = channelEvent "VarSet" "PJSIP/owner-9" "1796.9" "1796.9" callbackId

                Expect.isTrue ((applyAll first [ transferred ]).Legs.ContainsKey "1796.9") "adopted by its CALLBACK_ID"
            }

            // Catches taking the first Hangup's cause: a Local ;1 half hangs up with 0, its ;2 half has the cause.
            test "a Local visitor's busy is read from the ;2 half whatever the order of the two Hangups" {
                let call = CallState.queued (CallId.create ()) Attempt.first t0
                let one, two = call.ChannelId, call.ChannelId + ";2"
                let visitor = "Local/15145550123@demo-visitor-00000007"

                let opening = [
                    channelEvent "Newchannel" (visitor + ";1") one one []
                    channelEvent "Newchannel" (visitor + ";2") two one []
                    channelEvent "Newstate" (visitor + ";1") one one [ "ChannelState", "5" ]
                ]

                let hangups = [
                    hangup (visitor + ";1") one one 0 "Unknown"
                    hangup (visitor + ";2") two one 17 "User busy"
                ]

                for ending in [ hangups; List.rev hangups ] do
                    let ended = applyAll call (opening @ ending)
                    Expect.equal ended.Status (Failed(Busy, cause 17 "User busy" None)) "busy, cause 17"
            }

            // Catches counting every leg but the first channel as the owner's: the carrier leg would ring as
            // `connecting`, and the busy visitor would end as an owner outcome.
            test "with Originate to a Local channel whose ;2 half dials the carrier, the carrier leg is the visitor's" {
                let call = CallState.queued (CallId.create ()) Attempt.first t0
                let one, two, carrier = call.ChannelId, call.ChannelId + ";2", "1796.4"
                let local, trunk = "Local/14385552368@outbound-00000009", "PJSIP/trunk-4"

                let events = [
                    channelEvent "Newchannel" (local + ";1") one one []
                    channelEvent "Newchannel" (local + ";2") two one []
                    channelEvent "Newchannel" trunk carrier one []
                    message (
                        [
                            "Event", "DialBegin"
                            "Channel", local + ";2"
                            "Uniqueid", two
                            "Linkedid", one
                        ]
                        @ [ "DestChannel", trunk; "DestUniqueid", carrier; "DestLinkedid", one ]
                    )
                    channelEvent "Newstate" trunk carrier one [ "ChannelState", "5" ]
                    channelEvent "Hangup" trunk carrier one [
                        "Cause", "17"
                        "Cause-txt", "User busy"
                        "TechCause", "486"
                    ]
                    hangup (local + ";2") two one 17 "User busy"
                    hangup (local + ";1") one one 0 "Unknown"
                ]

                let ended = applyAll call events
                Expect.equal (states ended) [ State.Queued; State.Ringing; State.Failed ] "the carrier rang: ringing"
                Expect.equal ended.Status (Failed(Busy, cause 17 "User busy" (Some 486))) "busy, with the SIP code"
            }

            test "the owner ringing before the visitor's answer was seen records answered at the same instant" {
                let call = CallState.queued (CallId.create ()) Attempt.first t0

                let ownerRings =
                    channelEvent "Newstate" "PJSIP/owner-1" "1796.1" call.ChannelId [ "ChannelState", "5" ]

                let connecting = CallState.foldMessages call [ t0.AddSeconds 5.0, ownerRings ]
                Expect.equal connecting.Status (Live Connecting) "connecting"

                Expect.equal
                    (connecting.History |> List.map (fun t -> t.State, t.At))
                    [
                        State.Queued, t0
                        State.Answered, t0.AddSeconds 5.0
                        State.Connecting, t0.AddSeconds 5.0
                    ]
                    "history"
            }

            // Catches counting an owner who hung up during the whisper as the visitor hanging up, or the reverse.
            test "an owner who answered but left before the bridge did not take the call; a visitor who left did" {
                let call = CallState.queued (CallId.create ()) Attempt.first t0
                let visitor, owner = call.ChannelId, "1796.3"
                let trunk, phone = "PJSIP/trunk-3", "PJSIP/owner-3"

                let dialled = [
                    channelEvent "Newstate" trunk visitor visitor [ "ChannelState", "6" ]
                    channelEvent "Newchannel" phone owner visitor []
                    channelEvent "Newstate" phone owner visitor [ "ChannelState", "5" ]
                    message (
                        [ "Event", "DialEnd"; "Uniqueid", visitor; "Linkedid", visitor ]
                        @ [ "DestChannel", phone; "DestUniqueid", owner; "DestLinkedid", visitor ]
                        @ [ "DialStatus", "ANSWER" ]
                    )
                ]

                let ownerLeaves = [
                    hangup phone owner visitor 16 "Normal Clearing"
                    hangup trunk visitor visitor 16 "Normal Clearing"
                ]

                Expect.equal
                    (applyAll call (dialled @ ownerLeaves)).Status
                    (Ended(OwnerNoAnswer, cause 16 "Normal Clearing" None))
                    "the owner left first"

                Expect.equal
                    (applyAll call (dialled @ List.rev ownerLeaves)).Status
                    (Ended(VisitorHungUp, cause 16 "Normal Clearing" None))
                    "the visitor left first"
            }

            test "unknown events about the call's channel change nothing" {
                let messages = timed (recorded "sip-visitor-busy.txt")
                let call = callIn (List.map snd messages)

                let unknown =
                    message [
                        "Event", "SomethingNew"
                        "Uniqueid", call.ChannelId
                        "ChannelState", "6"
                        "DialStatus", "ANSWER"
                    ]

                let noisy = messages |> List.collect (fun (at, m) -> [ at, unknown; at, m ])
                Expect.equal (CallState.foldMessages call noisy) (foldTimed messages) "unchanged"
            }
        ]
    ]
