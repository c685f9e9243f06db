/// Every outcome of a callback end to end: the sidecar in process against the local Asterisk 22 with the
/// shipped pjsip.conf, SIPp playing the visitor's phone behind the trunk and the owner's phone, and the call
/// monitor (`Monitor__Username`, the shipped `[callback-monitor]` user) folding what Asterisk really sends.
/// Each test reads the call as the visitor's page does.
///
/// What the real Asterisk 22.10 emitted where it differed from what the fold expected is written beside
/// the test that found it (look for "Asterisk emitted", here and in RealCallLoadTests.fs).
module Callback.Tests.RealCallStatusTests

open System
open System.Diagnostics
open System.Net
open System.Text.Json
open System.Text.RegularExpressions
open Expecto
open Callback.Calls
open Callback.Domain
open Callback.Tests.OnThisMachine
open Callback.Tests.Programs
open Callback.Tests.LocalAsterisk
open Callback.Tests.TestSidecar
open Callback.Tests.Sipp
open Callback.Tests.SipEvidence
open Callback.Tests.StatusClient
open Callback.Tests.RealCallBed

/// One callback to `number`, the visitor's phone playing `visitor` (None: nothing listens at the trunk),
/// the owner's `owner` (None: no owner phone: it must not be rung); Asterisk's events recorded as fixture
/// `sip-<fixture>.txt` when asked. The call as `GET` and the stream finally show it.
let private oneCall (env, monitorEnv) fixture (number: string) (visitor: PhonePlan option) (owner: PhonePlan option) =
    use recorder = AmiMonitor.connect env monitorEnv
    use sidecar = sidecarFor env []

    let running =
        (visitor
         |> Option.map (fun p -> visitorPhone env p.Scenario 1 p.Options)
         |> Option.toList)
        @ (owner
           |> Option.map (fun p -> ownerPhone env p.Scenario 1 p.Options)
           |> Option.toList)

    use _ = phones running
    use _ = silentVisitor visitor.IsNone
    let statusUrl = callback sidecar number
    // The visitor's page opens the stream as soon as the callback is placed.
    let stream = stateFrames sidecar.Client (TimeSpan.FromSeconds 45.0) statusUrl
    let call = awaitFinal sidecar.Client 30.0 statusUrl
    Expect.isTrue call.Tracking "the call is tracked"
    expectStreamMatches call stream.Result
    Expect.isTrue (awaitCallEnd recorder) "Asterisk hung up every channel of the call"
    record fixture recorder

    for phone in running do
        Expect.equal
            (phone.AwaitExit(TimeSpan.FromSeconds 10.0))
            (Some 0)
            $"{phone.Name}'s SIPp plays its scenario to the end: {tail 10 phone.Output}"

    call


/// The single-call outcomes: name, fixture name, the visitor's and the owner's phones, how the call must end. Each catches
/// a fold or monitor change that reports that ending wrong (outcome, state, history, cause, SIP code).
let private endings = [
    "the visitor's phone is busy (486): failed, busy, cause 17",
    "visitor-busy",
    Some(plan "busy" ring),
    None,
    {
        State = "failed"
        Outcome = "busy"
        History = [ "queued"; "ringing"; "failed" ]
        HangupCause = Some 17
        SipCode = Some 486
    }
    "the visitor declines (603): failed, rejected, cause 21",
    "visitor-reject",
    Some(plan "reject" ring),
    None,
    {
        State = "failed"
        Outcome = "rejected"
        History = [ "queued"; "ringing"; "failed" ]
        HangupCause = Some 21
        SipCode = Some 603
    }
    "the carrier cannot reach the visitor (503): failed, congestion, cause 34",
    "visitor-unavailable",
    Some(plan "unavailable" ring),
    None,
    {
        State = "failed"
        Outcome = "congestion"
        History = [ "queued"; "ringing"; "failed" ]
        HangupCause = Some 34
        SipCode = Some 503
    }
    "the visitor's phone rings out: failed, no-answer, cause 19",
    "visitor-no-answer",
    Some(plan "no-answer" []),
    None,
    {
        State = "failed"
        Outcome = "no-answer"
        History = [ "queued"; "ringing"; "failed" ]
        HangupCause = Some 19
        SipCode = Some 480
    }
    "nothing answers at the visitor's address: failed, unreachable, never ringing",
    "visitor-unreachable",
    None,
    None,
    {
        State = "failed"
        Outcome = "unreachable"
        History = [ "queued"; "failed" ]
        HangupCause = Some 19
        SipCode = Some 480
    }
    "the owner's phone is busy: ended, owner-busy, with the owner's cause 17",
    "owner-busy",
    Some(plan "answer" ring),
    Some(plan "busy" ring),
    {
        State = "ended"
        Outcome = "owner-busy"
        History = answered @ [ "connecting"; "ended" ]
        HangupCause = Some 17
        SipCode = Some 486
    }
    "the owner does not answer: ended, owner-no-answer",
    "owner-no-answer",
    Some(plan "answer" ring),
    Some(plan "no-answer" []),
    {
        State = "ended"
        Outcome = "owner-no-answer"
        History = answered @ [ "connecting"; "ended" ]
        HangupCause = Some 0
        SipCode = None
    }
    "the visitor hangs up during the announcement: ended, visitor-hung-up, the owner never rung",
    "visitor-hangs-up-announcing",
    Some(plan "answer-hangup" (ring @ talk 1000)),
    None,
    {
        State = "ended"
        Outcome = "visitor-hung-up"
        History = answered @ [ "ended" ]
        // Asterisk emitted: for the visitor's BYE during Playback, `SoftHangupRequest Cause: 16` and then
        // `Hangup Cause: 0 Unknown` (in a bridge the same BYE gives Hangup 16). The call reports the Hangup's
        // cause, as Asterisk gave it (sip-visitor-hangs-up-announcing.txt).
        HangupCause = Some 0
        SipCode = None
    }
]

/// The owner talks `talkMs` after answering, then hangs up: the call is completed, and its talk time runs
/// from the bridge (after the whisper) to that hangup.
let private completed bed =
    let talkMs = 3000

    let call =
        oneCall
            bed
            "callback-completed"
            (numberFor 1)
            (Some(plan "answer" ring))
            (Some(plan "answer-hangup" (ring @ talk talkMs)))

    expectEnd
        {
            State = "ended"
            Outcome = "completed"
            History = answered @ [ "connecting"; "bridged"; "ended" ]
            HangupCause = Some 16
            SipCode = None
        }
        call

    let seconds = Expect.wantSome call.TalkSeconds "talkSeconds"
    // The whisper ("hello", about 0.6 s) plays to the owner between their answer and the bridge.
    Expect.isLessThanOrEqual seconds (float talkMs / 1000.0) "no more than the owner's talk"
    Expect.isGreaterThan seconds (float talkMs / 1000.0 - 1.5) "the owner's talk less the whisper"

[<Tests>]
let tests =
    // Not while another list uses the local Asterisk: one of them stops it.
    testSequencedGroup "the local Asterisk"
    <| testList "Real call status" [
        withBed "the visitor answers, the owner answers and hangs up: ended, completed, with the talk time"
        <| completed

        for i, (name, fixture, visitor, owner, expected) in List.indexed endings do
            withBed name
            <| fun bed -> oneCall bed fixture (numberFor (10 + i)) visitor owner |> expectEnd expected
    ]
