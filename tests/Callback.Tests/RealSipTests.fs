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

let private sidecarFor (env: (string * string) list) =
    new Sidecar(sidecarSettings env |> List.map (fun (k, v) -> k.Replace("__", ":"), v))

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

/// Channels of the call whose first channel is the trunk's: every event of a channel named `PJSIP/<prefix>-`.
let private ofChannel (prefix: string) (events: Event list) =
    events
    |> List.filter (fun e -> (field "Channel" e).StartsWith $"PJSIP/{prefix}-")

/// Waits until every PJSIP channel that appeared has hung up and the OriginateResponse came.
let private awaitCallEnd (monitor: Monitor) =
    monitor.Await (TimeSpan.FromSeconds 30.0) (fun events ->
        let pjsip (name: string) =
            events
            |> List.filter (fun e -> isEvent name e && (field "Channel" e).StartsWith "PJSIP/")
            |> List.map (field "Uniqueid")
            |> set

        let created = pjsip "Newchannel"

        List.exists (isEvent "OriginateResponse") events
        && not created.IsEmpty
        && created = pjsip "Hangup")

/// Where `record` saves a monitor's stream when CALLBACK_RECORD_SIP_FIXTURES names a folder (the fixtures
/// in tests/fixtures/ami/ were made so); otherwise nothing is written.
let private record (name: string) (monitor: Monitor) =
    match Environment.GetEnvironmentVariable "CALLBACK_RECORD_SIP_FIXTURES" with
    | null
    | "" -> ()
    | folder ->
        monitor.Logoff()
        File.WriteAllBytes(Path.Combine(folder, $"sip-{name}.txt"), monitor.Bytes)

/// The fields a failure test asserts, in the order Asterisk emitted them: Hangup causes per channel kind,
/// DialEnd statuses, OriginateResponse Response and Reason.
let private outcome (events: Event list) =
    let kind (e: Event) = (field "Channel" e).Split('-')[0]

    {|
        Hangups =
            events
            |> List.filter (isEvent "Hangup")
            |> List.filter (fun e -> (field "Channel" e).StartsWith "PJSIP/")
            |> List.map (fun e -> kind e, field "Cause" e)
        DialEnds =
            events
            |> List.filter (isEvent "DialEnd")
            |> List.map (fun e -> field "DestChannel" e |> fun c -> c.Split('-')[0], field "DialStatus" e)
        Originate =
            events
            |> List.filter (isEvent "OriginateResponse")
            |> List.map (fun e -> field "Response" e, field "Reason" e)
    |}

[<Tests>]
let tests =
    testSequenced
    <| testList "Real SIP" [
        withSip "observe"
        <| fun (env, monitorEnv) ->
            use monitor = connect env monitorEnv
            use sidecar = sidecarFor env
            use v = visitor env "busy" (variable "ring_ms" "200")
            callback sidecar "en" visitorNumber
            Expect.isTrue (awaitCallEnd monitor) "call ended"
            printfn "%A" (outcome monitor.Events)
    ]
