/// Callbacks over real SIP: the sidecar against the local Asterisk 22 with the shipped pjsip.conf loaded,
/// SIPp playing the visitor's phone behind the trunk (127.0.0.1:5070) and the owner's phone (5071). Each
/// test is proven from both ends: SIPp's message trace and RTP counts, and Asterisk's own events (a monitor
/// session) or log.
module Callback.Tests.RealSipTests

open System
open System.IO
open System.Net
open System.Text.RegularExpressions
open Expecto
open Callback.Tests.OnThisMachine
open Callback.Tests.Programs
open Callback.Tests.LocalAsterisk
open Callback.Tests.TestSidecar
open Callback.Tests.AmiMonitor
open Callback.Tests.Sipp
open Callback.Tests.SipEvidence

/// The visitor's number in every test here: one constant, so that it can follow the destination policy.
let visitorNumber = "+1 438 555 2368"

/// The 11 digits Asterisk dials for it.
let visitorDigits = Regex.Replace(visitorNumber, "[^0-9]", "")

/// The voices the two test phones speak (RtpPhone fills each RTP payload with one).
let private visitorVoice, ownerVoice = 0x11uy, 0x22uy

/// Everything a test here needs: the `env-sip` and `monitor-env` settings of a running Asterisk, and SIPp.
let private bed =
    lazy
        (rootOnLinux "real SIP (Asterisk in a chroot, SIPp)"
         |> Result.bind (fun () -> available () |> Result.mapError Unavailable)
         |> Result.bind (startSip >> Result.mapError Broken))

let private withSip = onThisMachine "real-SIP" bed

/// Each call is one attempt (no retry): these tests record how one SIP call ends.
let private sidecarFor (env: (string * string) list) =
    new Sidecar(
        (sidecarSettings env |> List.map (fun (k, v) -> k.Replace("__", ":"), v))
        @ [ "Callback:MaxAttempts", "1" ]
    )

/// The visitor's phone behind the trunk, running `scenario`.
let private visitor env scenario options =
    start "visitor" scenario (int ((setting env "SIP_TRUNK").Split(':')[1])) 1 options (visitorVoice, ownerVoice)

/// The owner's phone, running `scenario`.
let private owner env scenario options =
    start "owner" scenario (int ((setting env "SIP_OWNER").Split(':')[1])) 1 options (ownerVoice, visitorVoice)

/// Posts one callback to `visitorNumber` in `language`; the sidecar must answer 200, five true booleans.
let private callback (sidecar: Sidecar) (language: string) (number: string) =
    let status, body =
        sidecar.Post(form [ "phoneNumber", number; "language", language ])

    Expect.equal status HttpStatusCode.OK $"200: {body}"
    Expect.equal (stages body) [ true; true; true; true; true ] "five true booleans"

/// SIPp's side of an answered callback: one INVITE to the visitor's 11 digits from Originate__CallerId, the
/// owner rung once, `hungUp` sent the one BYE and Asterisk then hung up `other`.
let private provenBySipp env (visitorPhone: Phone) (ownerPhone: Phone) (hungUp: Phone) (other: Phone) =
    let invites = calls visitorPhone
    Expect.equal invites.Length 1 $"the trunk gets exactly one INVITE: {describeCalls visitorPhone}"
    let trunk = setting env "SIP_TRUNK"
    Expect.equal (firstLine invites.Head) $"INVITE sip:{visitorDigits}@{trunk} SIP/2.0" "its Request-URI"
    let callerId = Regex.Match(setting env "Originate__CallerId", "^(.*) <(.*)>$")
    let from = $"\"{callerId.Groups[1].Value}\" <sip:{callerId.Groups[2].Value}@"
    Expect.stringContains (header "From" invites.Head) from "its From"
    Expect.equal (calls ownerPhone).Length 1 "the owner's phone is rung once"

    let sentBye =
        hungUp.Messages
        |> List.filter (fun m -> m.Sent && (firstLine m).StartsWith "BYE ")

    Expect.equal sentBye.Length 1 $"{hungUp.Name} hangs up"
    Expect.equal (received "BYE" other.Messages).Length 1 $"Asterisk then hangs up {other.Name}"

/// The RTP of an answered callback: the announcement to the visitor and the whisper to the owner before the
/// bridge, then each phone's voice at the other.
let private provenByRtp (visitorPhone: Phone) (ownerPhone: Phone) =
    Expect.isGreaterThan visitorPhone.Media.PromptBeforePeer 50 "the visitor hears the announcement (≥ 1 s) first"
    Expect.isGreaterThan ownerPhone.Media.PromptBeforePeer 15 "the owner hears the whisper (≥ 0.3 s) before the bridge"
    Expect.isGreaterThan visitorPhone.Media.FromPeer 25 "the owner's voice reaches the visitor"
    Expect.isGreaterThan ownerPhone.Media.FromPeer 25 "the visitor's voice reaches the owner"

/// Asterisk's side of an answered callback in `language`: its events and its log since `offset`.
let private provenByAsterisk env offset language (monitor: Monitor) =
    let events = monitor.Events

    Expect.equal
        (playbacks "trunk" events)
        [ "pls-hold-while-try", language ]
        "the announcement, in the visitor's language"

    Expect.equal (playbacks "owner" events) [ "hello", language ] "the whisper, to the owner only, in the same language"

    let bridges endpoint =
        onEndpoint endpoint events
        |> List.filter (isEvent "BridgeEnter")
        |> List.map (field "BridgeUniqueid")

    Expect.equal (bridges "trunk") (bridges "owner") "both legs enter the same bridge"
    Expect.equal (bridges "trunk").Length 1 "once"
    Expect.equal ((outcome events).Hangups |> List.map snd) [ "16"; "16" ] "both legs end with normal clearing"
    Expect.equal (outcome events).Originate [ "Success", "4" ] "OriginateResponse Success, Reason 4 (answered)"
    Expect.isEmpty (sip (monitor.Channels())) "no channel is left"

    let played channel sound =
        $@"<PJSIP/{channel}-\w+> Playing '{sound}\.gsm' \(language '{language}'\)"

    Expect.isTrue (awaitLog env offset (played "trunk" "pls-hold-while-try")) "the log: the announcement"
    Expect.isTrue (awaitLog env offset (played "owner" "hello")) "the log: the whisper"
    Expect.isTrue (soundExists env language "pls-hold-while-try") $"sounds/{language}/pls-hold-while-try.gsm exists"
    Expect.isTrue (soundExists env language "hello") $"sounds/{language}/hello.gsm exists"

/// A callback in `language` that is answered at both ends, ended by whichever phone's scenario is
/// `answer-hangup`: proven by SIPp's traces and RTP counts and by Asterisk's events and log.
let private bridgedCallback language visitorScenario ownerScenario (env, monitorEnv) =
    use monitor = connect env monitorEnv
    use sidecar = sidecarFor env

    // The visitor who hangs up stays through the announcement (about 3 s), the owner's ring and whisper.
    let options scenario talkMs =
        variable "ring_ms" "300"
        @ (if scenario = "answer-hangup" then
               variable "talk_ms" talkMs
           else
               [])

    use visitorPhone = visitor env visitorScenario (options visitorScenario "6000")
    use ownerPhone = owner env ownerScenario (options ownerScenario "2500")
    let offset = logLength env
    callback sidecar language visitorNumber

    let ended (phone: Phone) (seconds: float) =
        phone.AwaitExit(TimeSpan.FromSeconds seconds)

    Expect.equal
        (ended visitorPhone 30.0)
        (Some 0)
        $"the visitor's SIPp ends its call: {tail 10 visitorPhone.Output}\ncalls: {describeCalls visitorPhone}"

    Expect.equal (ended ownerPhone 10.0) (Some 0) $"the owner's SIPp ends its call: {tail 10 ownerPhone.Output}"
    Expect.isTrue (awaitCallEnd monitor) "Asterisk hung up both legs"
    record $"callback-{language}" monitor

    let hungUp, other =
        if visitorScenario = "answer-hangup" then
            visitorPhone, ownerPhone
        else
            ownerPhone, visitorPhone

    provenBySipp env visitorPhone ownerPhone hungUp other
    provenByRtp visitorPhone ownerPhone
    provenByAsterisk env offset language monitor

let private ring = variable "ring_ms" "200"

/// A callback that fails at `visitorScenario` (None: nothing listens at the trunk's address) or, with the
/// visitor answering, at `ownerScenario`: Asterisk's events, recorded as fixture `sip-<name>.txt`.
let private failedCallback name visitorScenario ownerScenario (env, monitorEnv) =
    use monitor = connect env monitorEnv
    use sidecar = sidecarFor env

    let visitorPhone =
        visitorScenario
        |> Option.map (fun (scenario, options) -> visitor env scenario options)

    use _ = phones (Option.toList visitorPhone)

    let ownerPhone =
        ownerScenario
        |> Option.map (fun (scenario, options) -> owner env scenario options)

    use _ = phones (Option.toList ownerPhone)
    use _ = silentVisitor visitorPhone.IsNone
    callback sidecar "en" visitorNumber
    Expect.isTrue (awaitCallEnd monitor) "every channel of the call hung up, and the OriginateResponse came"
    record name monitor

    for phone in Option.toList visitorPhone @ Option.toList ownerPhone do
        Expect.equal
            (phone.AwaitExit(TimeSpan.FromSeconds 10.0))
            (Some 0)
            $"{phone.Name}'s SIPp plays its scenario to the end: {tail 10 phone.Output}"

        Expect.equal (calls phone).Length 1 $"{phone.Name}'s phone gets one INVITE: {describeCalls phone}"

    Expect.isEmpty (sip (monitor.Channels())) "no channel is left"
    outcome monitor.Events

/// How a failed callback ends, as Asterisk 22.10 reports it (recorded in tests/fixtures/ami/sip-*.txt).
type private Ending = {
    /// Hangup `Cause` per channel. Compared in any order: when the owner does not answer, the owner's Hangup
    /// (after its CANCEL is answered) and the visitor's race, and both orders were recorded.
    Causes: (string * string) list
    /// `DialEnd` DestChannel kind and `DialStatus`, in order.
    DialEnds: (string * string) list
    /// OriginateResponse `Response` and `Reason`.
    Originate: string * string
}

/// The failure cases: name, the visitor's scenario (None: nothing listens), the owner's, and what Asterisk
/// reports. Each catches a dialplan, config or sidecar change that alters how a failed callback ends.
let private failures = [
    "visitor-busy",
    Some("busy", ring),
    None,
    {
        Causes = [ "PJSIP/trunk", "17" ]
        DialEnds = [ "PJSIP/trunk", "BUSY" ]
        Originate = "Failure", "0"
    }
    "visitor-reject",
    Some("reject", ring),
    None,
    {
        Causes = [ "PJSIP/trunk", "21" ]
        DialEnds = [ "PJSIP/trunk", "NOANSWER" ]
        Originate = "Failure", "0"
    }
    "visitor-unavailable",
    Some("unavailable", ring),
    None,
    {
        Causes = [ "PJSIP/trunk", "34" ]
        DialEnds = [ "PJSIP/trunk", "CONGESTION" ]
        Originate = "Failure", "0"
    }
    "visitor-no-answer",
    Some("no-answer", []),
    None,
    {
        Causes = [ "PJSIP/trunk", "19" ]
        DialEnds = []
        Originate = "Failure", "3"
    }
    "visitor-unreachable",
    None,
    None,
    {
        Causes = [ "PJSIP/trunk", "19" ]
        DialEnds = []
        Originate = "Failure", "3"
    }
    "owner-busy",
    Some("answer", ring),
    Some("busy", ring),
    {
        Causes = [ "PJSIP/owner", "17"; "PJSIP/trunk", "16" ]
        DialEnds = [ "PJSIP/trunk", "ANSWER"; "PJSIP/owner", "BUSY" ]
        Originate = "Success", "4"
    }
    "owner-no-answer",
    Some("answer", ring),
    Some("no-answer", []),
    {
        Causes = [ "PJSIP/owner", "0"; "PJSIP/trunk", "16" ]
        DialEnds = [ "PJSIP/trunk", "ANSWER"; "PJSIP/owner", "NOANSWER" ]
        Originate = "Success", "4"
    }
]

/// The 25 numbers of the concurrency test: the visitor's number with its last two digits 00…24.
let private concurrentDigits = [
    for i in 0..24 -> visitorDigits.Substring(0, visitorDigits.Length - 2) + $"{i:D2}"
]

let private concurrentCallbacks (env, monitorEnv) =
    use monitor = connect env monitorEnv
    use sidecar = sidecarFor env

    use visitorPhone =
        start
            "visitor"
            "answer"
            (int ((setting env "SIP_TRUNK").Split(':')[1]))
            25
            (variable "ring_ms" "300")
            (visitorVoice, ownerVoice)

    use ownerPhone =
        start
            "owner"
            "answer-hangup"
            (int ((setting env "SIP_OWNER").Split(':')[1]))
            25
            (variable "ring_ms" "300" @ variable "talk_ms" "1500")
            (ownerVoice, visitorVoice)

    concurrentDigits
    |> List.map (fun digits -> Threading.Tasks.Task.Run(fun () -> callback sidecar "en" $"+{digits}"))
    |> List.iter (fun t -> t.Wait())

    Expect.equal
        (visitorPhone.AwaitExit(TimeSpan.FromSeconds 60.0))
        (Some 0)
        $"the trunk's SIPp ends 25 calls: {tail 10 visitorPhone.Output}"

    Expect.equal
        (ownerPhone.AwaitExit(TimeSpan.FromSeconds 10.0))
        (Some 0)
        $"the owner's SIPp ends 25 calls: {tail 10 ownerPhone.Output}"

    Expect.isTrue (awaitCallEnd monitor) "Asterisk hung up every leg"

    let uris =
        calls visitorPhone
        |> List.map (fun m -> Regex.Match(firstLine m, "^INVITE sip:(\d+)@").Groups[1].Value)

    Expect.equal (List.sort uris) concurrentDigits "exactly 25 INVITEs, one per number"
    let events = monitor.Events
    let entered = onEndpoint "trunk" events |> List.filter (isEvent "BridgeEnter")
    Expect.equal entered.Length 25 "25 visitors bridged"
    Expect.equal (onEndpoint "owner" events |> List.filter (isEvent "BridgeEnter")).Length 25 "with 25 owner legs"
    Expect.isEmpty (sip (monitor.Channels())) "CoreShowChannels: nothing left after the BYEs"

let private inboundCall (env, monitorEnv) =
    use monitor = connect env monitorEnv
    use ownerPhone = owner env "answer" (variable "ring_ms" "300")
    let trunk = setting env "SIP_TRUNK"

    use caller =
        start
            "caller"
            "inbound-caller"
            (int (trunk.Split(':')[1]))
            1
            (variable "talk_ms" "1000" @ [ "-s"; "15145550100"; setting env "SIP_ASTERISK" ])
            (visitorVoice, ownerVoice)

    Expect.equal
        (caller.AwaitExit(TimeSpan.FromSeconds 20.0))
        (Some 0)
        $"the caller is answered and hangs up: {tail 10 caller.Output}"

    Expect.equal
        (ownerPhone.AwaitExit(TimeSpan.FromSeconds 10.0))
        (Some 0)
        $"the owner's phone answered: {tail 10 ownerPhone.Output}"

    Expect.equal (calls ownerPhone).Length 1 "the owner's phone rings once"

    let newchannel =
        onEndpoint "trunk" monitor.Events |> List.tryFind (isEvent "Newchannel")

    Expect.equal
        (newchannel |> Option.map (fun e -> field "Context" e, field "Exten" e))
        (Some("from-trunk", "15145550100"))
        "the call comes in through the trunk endpoint, to the DID"

/// What the dev Asterisk loaded as pjsip.conf: the shipped file, but for its placeholder provider address
/// lines, and the #include of the dev overlay at its end.
let private pjsipAsShipped env =
    let root = (setting env "ASTERISK_FULL_LOG").Replace("/var/log/asterisk/full", "")

    let loaded =
        File.ReadAllLines(Path.Combine(root, "etc", "asterisk", "pjsip.conf"))
        |> List.ofArray

    let shipped =
        File.ReadAllLines(Path.Combine(repoRoot, "asterisk", "pjsip.conf"))
        |> List.ofArray

    let differ =
        List.zip shipped (List.truncate shipped.Length loaded)
        |> List.filter (fun (a, b) -> a <> b)

    Expect.equal
        differ
        [
            "contact = sip:sip.provider.example", "contact = sip:" + setting env "SIP_TRUNK"
            "match = sip.provider.example", "match = 127.0.0.1"
        ]
        "only the provider's address differs"

    Expect.equal (List.skip shipped.Length loaded) [ ""; "#include pjsip-dev.conf" ] "then the dev overlay"

/// The recorded fixture `sip-<name>.txt`, as copied next to the test program.
let private fixture (name: string) =
    File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "fixtures", "ami", $"sip-{name}.txt"))

/// The committed fixtures say what the live tests assert: a fixture re-recorded from a different Asterisk
/// behaviour, or a changed expectation, fails here on every machine, not only where SIPp runs.
[<Tests>]
let fixtures =
    testList "SIP fixtures" [
        for name, _, _, ending in failures do
            test $"sip-{name}.txt records causes {ending.Causes} and OriginateResponse {ending.Originate}" {
                let seen = outcome (parse (fixture name))
                Expect.equal (List.sort seen.Hangups) (List.sort ending.Causes) "Hangup causes, in any order"
                Expect.equal seen.DialEnds ending.DialEnds "DialEnd statuses"
                Expect.equal seen.Originate [ ending.Originate ] "OriginateResponse"
            }
    ]

[<Tests>]
let tests =
    // Not while the Real Asterisk 22 list runs: it stops Asterisk in one of its tests.
    testSequencedGroup "the local Asterisk"
    <| testList "Real SIP" [
        withSip "the dev Asterisk loads the shipped pjsip.conf, only the provider's address pointed at SIPp"
        <| fun (env, _) -> pjsipAsShipped env

        withSip "SIP listens on 127.0.0.1:5060 only, not on every address as the shipped file would"
        <| fun _ ->
            let udp = File.ReadAllText "/proc/net/udp"
            Expect.stringContains udp " 0100007F:13C4 " "127.0.0.1:5060 is bound"
            Expect.isFalse (udp.Contains " 00000000:13C4 ") "0.0.0.0:5060 is not"

        withSip
            "an English callback over SIP: one INVITE, announced in English, whisper to the owner, bridged, the owner's BYE ends both legs"
        <| bridgedCallback "en" "answer" "answer-hangup"

        withSip
            "a French callback over SIP: announced and whispered in French on both legs, the visitor's BYE ends both legs"
        <| bridgedCallback "fr" "answer-hangup" "answer"

        for name, visitorScenario, ownerScenario, ending in failures do
            withSip
                $"{name}: Asterisk reports causes {ending.Causes}, DialEnd {ending.DialEnds}, OriginateResponse {ending.Originate}"
            <| fun bed ->
                let seen = failedCallback name visitorScenario ownerScenario bed
                Expect.equal (List.sort seen.Hangups) (List.sort ending.Causes) "Hangup causes, in any order"
                Expect.equal seen.DialEnds ending.DialEnds "DialEnd statuses"
                Expect.equal seen.Originate [ ending.Originate ] "OriginateResponse"

        withSip "25 concurrent callbacks through the trunk: 25 INVITEs, 25 bridged calls, no channel left"
        <| concurrentCallbacks

        withSip "an inbound call from the trunk to the dev DID rings the owner's phone"
        <| inboundCall
    ]
