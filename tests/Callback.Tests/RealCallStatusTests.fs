/// Every outcome of a callback end to end: the sidecar in process against the local Asterisk 22 with the
/// shipped pjsip.conf, SIPp playing the visitor's phone behind the trunk and the owner's phone, and the call
/// monitor (`Monitor__Username`, the shipped `[callback-monitor]` user) folding what Asterisk really sends.
/// Each test reads the call as the visitor's page does.
///
/// What the real Asterisk 22.10 emitted where it differed from what the fold expected is written beside
/// the test that found it (look for "Asterisk emitted").
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

/// Everything a test here needs: the `env-sip` settings of a running Asterisk (with the monitor user), SIPp.
let private bed =
    lazy
        (rootOnLinux "real call status (Asterisk in a chroot, SIPp)"
         |> Result.bind (fun () -> available () |> Result.mapError Unavailable)
         |> Result.bind (startSip >> Result.mapError Broken))

let private withBed = onThisMachine "real call status" bed

/// The visitor's number of each single-call test: the policy's example number, its last two digits varied.
let private numberFor (n: int) = $"+1 438 555 23{n:D2}"

/// The voices of the two test phones (RtpPhone fills each RTP payload with one).
let private visitorVoice, ownerVoice = 0x11uy, 0x22uy

let private port env key = int ((setting env key).Split(':')[1])

let private visitorPhone env scenario calls options =
    start "visitor" scenario (port env "SIP_TRUNK") calls options (visitorVoice, ownerVoice)

let private ownerPhone env scenario calls options =
    start "owner" scenario (port env "SIP_OWNER") calls options (ownerVoice, visitorVoice)

/// A sidecar on the local Asterisk with its monitor; `extra` adds settings (`Ami:MaxSessions`, …).
let private sidecarFor env (extra: (string * string) list) =
    let settings =
        sidecarSettings env |> List.map (fun (k, v) -> k.Replace("__", ":"), v)

    new Sidecar(
        extra
        @ (settings |> List.filter (fun (k, _) -> not (List.exists (fst >> (=) k) extra)))
    )

/// The statusUrl of a callback's answer, which must be 200 with five true booleans and name its call.
let private placed (status: HttpStatusCode, body: string) =
    Expect.equal status HttpStatusCode.OK $"200: {body}"
    Expect.equal (stages body) [ true; true; true; true; true ] "five true booleans"
    let root = JsonDocument.Parse(body).RootElement
    let statusUrl = root.GetProperty("statusUrl").GetString()
    Expect.equal statusUrl $"""/calls/{root.GetProperty("callId").GetString()}""" "statusUrl names the call"
    statusUrl

/// Posts one callback in English to `number`: its statusUrl.
let private callback (sidecar: Sidecar) (number: string) =
    placed (sidecar.Post(form [ "phoneNumber", number; "language", "en" ]))

/// The same without blocking a thread while it waits, for many at once: its statusUrl.
let private callbackAsync (sidecar: Sidecar) (number: string) =
    task {
        use content = form [ "phoneNumber", number; "language", "en" ]
        use! response = sidecar.Client.PostAsync("/callback", content)
        let! body = response.Content.ReadAsStringAsync()
        return placed (response.StatusCode, body)
    }

/// What a call must end as: state, outcome, history, the cause and SIP code of the leg it is about.
type private Expected = {
    State: string
    Outcome: string
    History: string list
    HangupCause: int option
    SipCode: int option
}

let private expectEnd (expected: Expected) (call: Seen) =
    Expect.equal call.Outcome (Some expected.Outcome) "outcome"
    Expect.equal call.State expected.State "state"
    Expect.equal call.History expected.History "history, oldest first"
    Expect.equal call.HangupCause expected.HangupCause "hangupCause.code"
    Expect.equal call.SipCode expected.SipCode "sipCode"

let private ring = variable "ring_ms" "200"

let private talk (ms: int) = variable "talk_ms" (string ms)

/// One phone of a scenario: its SIPp scenario and options.
type private PhonePlan = {
    Scenario: string
    Options: string list
}

let private plan scenario options = {
    Scenario = scenario
    Options = options
}

/// One callback to `number` (Asterisk's events recorded as fixture `sip-<fixture>.txt` when asked), the visitor's phone playing `visitor` (None: nothing listens at the trunk),
/// the owner's `owner` (None: no owner phone: it must not be rung); the call as it ended.
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

let private answered = [ "queued"; "ringing"; "answered" ]

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

/// How many callbacks the load test places at once, and the rates and AMI bounds raised for them.
let private concurrent = 100

let private loadSettings = [ "Ami:MaxQueued", string concurrent; "Ami:ConnectTimeout", "15000" ]

/// The visitor's end a number dictates in `answer-or-busy.xml`: an odd last digit is busy.
let private dictated (number: string) =
    if int (number[number.Length - 1]) % 2 = 1 then
        "busy"
    else
        "completed"

/// 100 callbacks at once, half to numbers whose phone is busy, half answered and bridged to an owner who
/// talks 3 s: every one reaches the end its number dictates, none is left live, and each visitor's stream
/// agrees with GET. Prints how long it took.
///
/// Asterisk emitted, on a loaded machine with an owner who talked only 1 s: the whisper ("hello", 0.6 s
/// when idle) took longer than that, the owner hung up during it (`HangupRequest` on the owner, its lone
/// `BridgeEnter`/`BridgeLeave`, the visitor never entering the bridge), and the call rightly ended
/// `owner-no-answer`. Hence 3 s.
let private concurrentCallbacks (env, monitorEnv) =
    let numbers = [ for i in 0 .. concurrent - 1 -> numberFor i ]
    let answering = numbers |> List.filter (dictated >> (=) "completed") |> List.length
    use recorder = AmiMonitor.connect env monitorEnv
    use sidecar = sidecarFor env loadSettings

    use visitors =
        visitorPhone env "answer-or-busy" concurrent (variable "ring_ms" "300")

    use owners =
        ownerPhone env "answer-hangup" answering (variable "ring_ms" "300" @ talk 3000)

    let clock = Stopwatch.StartNew()

    let statusUrls =
        numbers
        |> List.map (fun number -> callbackAsync sidecar number)
        |> Threading.Tasks.Task.WhenAll
        |> _.Result
        |> List.ofArray
        |> List.zip numbers

    let posted = clock.Elapsed

    let streams =
        statusUrls
        |> List.map (fun (_, url) -> stateFrames sidecar.Client (TimeSpan.FromSeconds 90.0) url)

    let ends =
        statusUrls
        |> List.map (fun (number, url) -> number, awaitFinal sidecar.Client 90.0 url)

    let allFinal = clock.Elapsed

    for (_, call), stream in List.zip ends streams do
        expectStreamMatches call stream.Result

    awaitCallEnd recorder |> ignore
    record "concurrent" recorder

    eprintfn
        "Real call status: %d concurrent callbacks posted in %.2f s, all final %.2f s after the first POST"
        concurrent
        posted.TotalSeconds
        allFinal.TotalSeconds

    let wrong =
        ends
        |> List.filter (fun (number, call) -> call.Outcome <> Some(dictated number))

    if not wrong.IsEmpty then
        let callIdOf number =
            (statusUrls |> List.find (fst >> (=) number) |> snd).Replace("/calls/", "")

        let events = recorder.Events

        let asteriskSaid (number, _) =
            let id = callIdOf number

            events
            |> List.filter (fun e ->
                [ "Uniqueid"; "Linkedid"; "DestUniqueid" ]
                |> List.exists (fun k -> (AmiMonitor.field k e).StartsWith id))
            |> List.map (fun e ->
                [
                    "Event"
                    "Channel"
                    "ChannelState"
                    "DestChannel"
                    "DialStatus"
                    "Cause"
                    "Response"
                    "Reason"
                ]
                |> List.map (fun k -> AmiMonitor.field k e)
                |> String.concat " ")

        failtestf
            "%d calls did not end as their number dictates (odd last digit busy, the others completed): %A\nAsterisk said of the first: %A"
            wrong.Length
            wrong
            (asteriskSaid wrong.Head)

    Expect.equal
        (visitors.AwaitExit(TimeSpan.FromSeconds 30.0))
        (Some 0)
        $"the trunk's SIPp ends its calls: {tail 10 visitors.Output}"

    Expect.equal
        (owners.AwaitExit(TimeSpan.FromSeconds 10.0))
        (Some 0)
        $"the owner's SIPp ends its calls: {tail 10 owners.Output}"

/// The pid of the local Asterisk: the process named `asterisk` whose root is the chroot of `env`.
let private asteriskPid env =
    let root = (setting env "ASTERISK_FULL_LOG").Replace("/var/log/asterisk/full", "")

    let isOurs (pid: int) =
        try
            IO.File.ReadAllText($"/proc/{pid}/comm").Trim() = "asterisk"
            && IO.DirectoryInfo($"/proc/{pid}/root").LinkTarget = root
        with _ ->
            false

    IO.Directory.GetDirectories "/proc"
    |> Array.choose (fun d ->
        match Int32.TryParse(IO.Path.GetFileName d) with
        | true, pid -> Some pid
        | _ -> None)
    |> Array.tryFind isOurs

/// Kills the local Asterisk (SIGKILL: no Hangup, no Shutdown, the AMI link just drops), then starts it again
/// under a lock of our own, which must be free once `asterisk.sh start` returns: the new Asterisk keeps no
/// descriptor of the command that started it.
let private crashAndRestart env =
    let pid = Expect.wantSome (asteriskPid env) "Asterisk runs"
    use proc = Process.GetProcessById pid
    proc.Kill()
    Expect.isTrue (proc.WaitForExit(TimeSpan.FromSeconds 10.0)) "Asterisk is gone"
    let lock = IO.Path.GetTempFileName()

    try
        let started =
            run [] (TimeSpan.FromMinutes 2.0) "flock" [ lock; "bash"; "asterisk/dev/asterisk.sh"; "start" ]

        Expect.equal started.Code 0 $"asterisk.sh start: {tail 10 started.Output}"
        let free = run [] (TimeSpan.FromSeconds 10.0) "flock" [ "-n"; lock; "true" ]
        Expect.equal free.Code 0 "the starter's lock is free: Asterisk did not inherit it"
    finally
        IO.File.Delete lock

/// Asterisk dies while the visitor and the owner talk and comes back: the monitor reconnects (its log says
/// so), reconciles, finds none of the call's channels and ends the call `lost`: never left `bridged`.
let private restartedMidCall (env, _) =
    use sidecar = sidecarFor env []
    use visitor = visitorPhone env "answer" 1 ring
    use owner = ownerPhone env "answer" 1 ring
    let statusUrl = callback sidecar (numberFor 2)
    let stream = stateFrames sidecar.Client (TimeSpan.FromSeconds 90.0) statusUrl

    awaitCall sidecar.Client 20.0 "bridged" (fun c -> c.State = "bridged") statusUrl
    |> ignore

    crashAndRestart env
    let call = awaitFinal sidecar.Client 60.0 statusUrl
    expectStreamMatches call stream.Result
    Expect.equal (call.State, call.Outcome) ("failed", Some "lost") "lost, as reconciliation found it"
    Expect.equal call.History (answered @ [ "connecting"; "bridged"; "failed" ]) "history"

    let logged (text: string) =
        sidecar.Log |> List.filter (fun line -> line.Contains text) |> List.length

    Expect.isGreaterThanOrEqual (logged "lost: ") 1 "the monitor's link loss is logged"

    Expect.isGreaterThanOrEqual
        (logged "Call monitor: reconciled")
        2
        "reconciled at the first Ready and again after the reconnect"

    let metrics = sidecar.Client.GetStringAsync("/metrics").Result

    let reconnects =
        Regex.Match(metrics, @"^callback_monitor_reconnects_total (\d+)", RegexOptions.Multiline)

    Expect.isTrue reconnects.Success "the reconnects metric"
    Expect.isGreaterThanOrEqual (int reconnects.Groups[1].Value) 1 "the reconnect is counted"
    Expect.stringContains metrics "callback_monitor_connected 1" "connected again"

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

        withBed $"{concurrent} concurrent callbacks, half busy, half answered: each ends as its SIPp scenario dictates"
        <| concurrentCallbacks

        // Last: it kills and restarts Asterisk.
        withBed "Asterisk killed and restarted mid-call: the monitor reconnects and the bridged call ends lost"
        <| restartedMidCall
    ]
