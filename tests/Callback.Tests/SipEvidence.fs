/// What a SIP test call left behind, read from both ends: Asterisk's events (a monitor session) and SIPp's
/// trace. Pure readings of what was recorded, plus the waits on it.
module Callback.Tests.SipEvidence

open System
open System.IO
open Expecto
open Callback.Tests.Programs
open Callback.Tests.LocalAsterisk
open Callback.Tests.AmiMonitor
open Callback.Tests.Sipp

/// The events of SIP channels only: the Local-channel lists may run callbacks on the same Asterisk meanwhile.
let sip (events: Event list) =
    events |> List.filter (fun e -> (field "Channel" e).StartsWith "PJSIP/")

/// Waits until every PJSIP channel that appeared has hung up and the OriginateResponse came.
let awaitCallEnd (monitor: Monitor) =
    monitor.Await (TimeSpan.FromSeconds 30.0) (fun events ->
        let pjsip (name: string) =
            events
            |> List.filter (fun e -> isEvent name e && (field "Channel" e).StartsWith "PJSIP/")
            |> List.map (field "Uniqueid")
            |> set

        let created = pjsip "Newchannel"

        List.exists (isEvent "OriginateResponse") (sip events)
        && not created.IsEmpty
        && created = pjsip "Hangup")

/// How long Asterisk may go on sending an INVITE that nothing answers: pjsip retransmits it until Timer B
/// (64 × T1 = 32 s, pjsip's default, which the dev Asterisk keeps) ends its transaction, long after the
/// Originate's timeout (5 s in the test settings) hung the channel up, since a CANCEL must wait for a
/// provisional response that never comes. The last retransmission leaves at 31.5 s; 2 s more cover the
/// Originate's own delay.
let unansweredInviteLifetime = TimeSpan.FromSeconds 34.0

/// Held by a test that leaves the visitor's port silent, from just before its POST: when the test ends,
/// passed or failed, it waits until Asterisk's INVITE can no longer be retransmitted. Otherwise the next
/// test's phone on that port receives the last retransmission as a call of its own (seen: it answered the
/// stray INVITE, its scenario failed, its own call then found nothing listening, and so on, test after test).
let silentVisitor (silent: bool) =
    let posted = Diagnostics.Stopwatch.StartNew()

    {
        new IDisposable with
            member _.Dispose() =
                let left = unansweredInviteLifetime - posted.Elapsed

                if silent && left > TimeSpan.Zero then
                    Threading.Thread.Sleep left
    }

/// Where `record` saves a monitor's stream when CALLBACK_RECORD_SIP_FIXTURES names a folder (the fixtures
/// in tests/fixtures/ami/ were made so); otherwise nothing is written.
let record (name: string) (monitor: Monitor) =
    match Environment.GetEnvironmentVariable "CALLBACK_RECORD_SIP_FIXTURES" with
    | null
    | "" -> ()
    | folder ->
        monitor.Logoff()
        File.WriteAllBytes(Path.Combine(folder, $"sip-{name}.txt"), monitor.Bytes)

/// The fields a failure test asserts, in the order Asterisk emitted them: Hangup causes per channel kind,
/// DialEnd statuses, OriginateResponse Response and Reason.
let outcome (events: Event list) =
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
            |> sip
            |> List.filter (isEvent "OriginateResponse")
            |> List.map (fun e -> field "Response" e, field "Reason" e)
    |}

/// Stops every phone of a test at its end.
let phones (list: Phone list) = {
    new IDisposable with
        member _.Dispose() =
            for phone in list do
                (phone :> IDisposable).Dispose()
}

/// The first INVITE of each call a phone received (retransmissions and re-INVITEs left out), by Call-ID.
let calls (phone: Phone) =
    received "INVITE" phone.Messages
    |> List.filter (fun m -> not ((header "To" m).Contains "tag="))
    |> List.distinctBy (header "Call-ID")

/// The calls a phone received, one line each (Request-URI and Call-ID), for a failure's message: a stray
/// INVITE meant for another test's call shows by its number.
let describeCalls (phone: Phone) =
    calls phone
    |> List.map (fun m -> $"""{firstLine m} (Call-ID {header "Call-ID" m})""")
    |> String.concat "; "

/// The events of Asterisk's channels whose name starts `PJSIP/<endpoint>-`.
let onEndpoint (endpoint: string) (events: Event list) =
    events
    |> List.filter (fun e -> (field "Channel" e).StartsWith $"PJSIP/{endpoint}-")

/// The Playback apps that ran on `endpoint`'s channels: (sound, channel language).
let playbacks endpoint events =
    onEndpoint endpoint events
    |> List.filter (fun e -> isEvent "Newexten" e && field "Application" e = "Playback")
    |> List.map (fun e -> field "AppData" e, field "Language" e)

/// Whether Asterisk's root has sounds/<language>/<sound>.gsm (the host sees the root's absolute symlinks
/// dangle, so look from inside).
let soundExists env (language: string) (sound: string) =
    let root = (setting env "ASTERISK_FULL_LOG").Replace("/var/log/asterisk/full", "")

    (run [] (TimeSpan.FromSeconds 5.0) "chroot" [
        root
        "test"
        "-f"
        $"/usr/share/asterisk/sounds/{language}/{sound}.gsm"
    ])
        .Code
        =
        0
