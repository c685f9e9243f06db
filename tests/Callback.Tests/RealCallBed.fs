/// The bed of the real call status tests: the sidecar in process against the local Asterisk 22 with the
/// shipped pjsip.conf and its call monitor (`Monitor__Username`, the shipped `[callback-monitor]` user),
/// SIPp playing the visitor's phone behind the trunk and the owner's phone; placing callbacks and saying
/// how a call must end.
module Callback.Tests.RealCallBed

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
let bed =
    lazy
        (rootOnLinux "real call status (Asterisk in a chroot, SIPp)"
         |> Result.bind (fun () -> available () |> Result.mapError Unavailable)
         |> Result.bind (startSip >> Result.mapError Broken))

let withBed = onThisMachine "real call status" bed

/// The visitor's number of each single-call test: the policy's example number, its last two digits varied.
let numberFor (n: int) = $"+1 438 555 23{n:D2}"

/// The voices of the two test phones (RtpPhone fills each RTP payload with one).
let visitorVoice, ownerVoice = 0x11uy, 0x22uy

let port env key = int ((setting env key).Split(':')[1])

let visitorPhone env scenario calls options =
    start "visitor" scenario (port env "SIP_TRUNK") calls options (visitorVoice, ownerVoice)

let ownerPhone env scenario calls options =
    start "owner" scenario (port env "SIP_OWNER") calls options (ownerVoice, visitorVoice)

/// A sidecar on the local Asterisk with its monitor; `extra` adds settings (`Ami:MaxSessions`, …). A
/// failed call is final at once (no retry) unless `extra` sets `Callback:MaxAttempts`: these tests read
/// each call's first outcome.
let sidecarFor env (extra: (string * string) list) =
    let settings =
        (sidecarSettings env |> List.map (fun (k, v) -> k.Replace("__", ":"), v))
        @ [ "Callback:MaxAttempts", "1" ]

    new Sidecar(
        extra
        @ (settings |> List.filter (fun (k, _) -> not (List.exists (fst >> (=) k) extra)))
    )

/// The statusUrl of a callback's answer, which must be 200 with five true booleans and name its call.
let placed (status: HttpStatusCode, body: string) =
    Expect.equal status HttpStatusCode.OK $"200: {body}"
    Expect.equal (stages body) [ true; true; true; true; true ] "five true booleans"
    let root = JsonDocument.Parse(body).RootElement
    let statusUrl = root.GetProperty("statusUrl").GetString()
    Expect.equal statusUrl $"""/calls/{root.GetProperty("callId").GetString()}""" "statusUrl names the call"
    statusUrl

/// Posts one callback in English to `number`: its statusUrl.
let callback (sidecar: Sidecar) (number: string) =
    placed (sidecar.Post(form [ "phoneNumber", number; "language", "en" ]))

/// The same without blocking a thread while it waits, for many at once: its statusUrl.
let callbackAsync (sidecar: Sidecar) (number: string) =
    task {
        use content = form [ "phoneNumber", number; "language", "en" ]
        use! response = sidecar.Client.PostAsync("/callback", content)
        let! body = response.Content.ReadAsStringAsync()
        return placed (response.StatusCode, body)
    }

/// What a call must end as: state, outcome, history, the cause and SIP code of the leg it is about.
type Expected = {
    State: string
    Outcome: string
    History: string list
    HangupCause: int option
    SipCode: int option
}

let expectEnd (expected: Expected) (call: Seen) =
    Expect.equal call.Outcome (Some expected.Outcome) "outcome"
    Expect.equal call.State expected.State "state"
    Expect.equal call.History expected.History "history, oldest first"
    Expect.equal call.HangupCause expected.HangupCause "hangupCause.code"
    Expect.equal call.SipCode expected.SipCode "sipCode"

let ring = variable "ring_ms" "200"

let talk (ms: int) = variable "talk_ms" (string ms)

/// One phone of a scenario: its SIPp scenario and options.
type PhonePlan = {
    Scenario: string
    Options: string list
}

let plan scenario options = {
    Scenario = scenario
    Options = options
}

/// The history of a call the visitor answered, up to the answer.
let answered = [ "queued"; "ringing"; "answered" ]
