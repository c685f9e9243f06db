/// The call monitor end to end under load and through Asterisk restarts: 100 concurrent callbacks over real
/// SIP, and Asterisk stopped or killed while a call is bridged, each call read through the HTTP API.
module Callback.Tests.RealCallLoadTests

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


/// How many callbacks the load test places at once, and the rates and AMI bounds raised for them.
let private concurrent = 100

let private loadSettings = [ "Ami:MaxQueued", string concurrent; "Ami:ConnectTimeout", "15000" ]

/// The visitor's end a number dictates in `answer-or-busy.xml`: an odd last digit is busy.
let private dictated (number: string) =
    if int (number[number.Length - 1]) % 2 = 1 then
        "busy"
    else
        "completed"

/// What Asterisk said of call `callId` (its events, a few fields each), for a failure's message.
let private asteriskSaid (recorder: AmiMonitor.Monitor) (callId: string) =
    recorder.Events
    |> List.filter (fun e ->
        [ "Uniqueid"; "Linkedid"; "DestUniqueid" ]
        |> List.exists (fun k -> (AmiMonitor.field k e).StartsWith callId))
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

/// Every call ended as its number dictates; otherwise the test fails with the wrong ones and what Asterisk
/// said of the first.
let private expectDictated recorder (statusUrls: (string * string) list) (ends: (string * Seen) list) =
    let wrong =
        ends
        |> List.filter (fun (number, call) -> call.Outcome <> Some(dictated number))

    match wrong with
    | [] -> ()
    | (number, _) :: _ ->
        let url = statusUrls |> List.find (fst >> (=) number) |> snd

        failtestf
            "%d calls did not end as their number dictates (odd last digit busy, the others completed): %A\nAsterisk said of the first: %A"
            wrong.Length
            wrong
            (asteriskSaid recorder (url.Replace("/calls/", "")))

/// Posts a callback to each of `numbers` at once: (number, statusUrl) each.
let private placeAll sidecar (numbers: string list) =
    numbers
    |> List.map (callbackAsync sidecar)
    |> Threading.Tasks.Task.WhenAll
    |> _.Result
    |> List.ofArray
    |> List.zip numbers

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

    let statusUrls = placeAll sidecar numbers

    let posted = clock.Elapsed

    let streams =
        statusUrls
        |> List.map (fun (_, url) -> stateFrames sidecar.Client (TimeSpan.FromSeconds 90.0) url)

    // A call left live says what Asterisk and both SIPp saw of it: under load, a phone may give up a call.
    let final (number, url: string) =
        try
            number, awaitFinal sidecar.Client 90.0 url
        with e ->
            failtestf
                "%s\nAsterisk said of it: %A\nthe visitors' SIPp: %s\nthe owners' SIPp: %s"
                e.Message
                (asteriskSaid recorder (url.Replace("/calls/", "")))
                (tail 15 visitors.Output)
                (tail 15 owners.Output)

    let ends = statusUrls |> List.map final

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

    expectDictated recorder statusUrls ends

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

/// Stops the local Asterisk as `asterisk.sh stop` does (`core stop now`: it hangs up every channel and
/// says so before it closes the sessions), then starts it again.
let private stopAndStart _ =
    for command in [ "stop"; "start" ] do
        let ran, _ = asteriskScript command
        Expect.isTrue ran $"asterisk.sh {command}"

/// Asterisk goes away while the visitor and the owner talk (`restart`) and comes back: the monitor
/// reconnects (its log and its metric say so), reconciles, and the call ends as `expected` (state,
/// outcome, last state of the history): never left `bridged`.
let private restartedMidCall restart (expected: string * string) (env, _) =
    use sidecar = sidecarFor env []
    use visitor = visitorPhone env "answer" 1 ring
    use owner = ownerPhone env "answer" 1 ring
    let statusUrl = callback sidecar (numberFor 2)
    let stream = stateFrames sidecar.Client (TimeSpan.FromSeconds 90.0) statusUrl

    awaitCall sidecar.Client 20.0 "bridged" (fun c -> c.State = "bridged") statusUrl
    |> ignore

    restart env
    let call = awaitFinal sidecar.Client 60.0 statusUrl
    eprintfn "Real call status: after the restart the call ended %A" call
    expectStreamMatches call stream.Result
    Expect.equal (call.State, call.Outcome.Value) expected "how the call ended"
    Expect.equal call.History (answered @ [ "connecting"; "bridged"; fst expected ]) "history"

    // The call may end on Asterisk's Hangups before the link drops: wait for the reconnect itself.
    let reconnected () =
        let metrics = sidecar.Client.GetStringAsync("/metrics").Result

        let reconnects =
            Regex.Match(metrics, @"^callback_monitor_reconnects_total (\d+)", RegexOptions.Multiline)

        reconnects.Success
        && int reconnects.Groups[1].Value >= 1
        && metrics.Contains "\ncallback_monitor_connected 1"

    Expect.isTrue (eventually (TimeSpan.FromSeconds 30.0) reconnected) "the metrics count a reconnect, connected again"

    let logged (text: string) =
        sidecar.Log |> List.filter (fun line -> line.Contains text) |> List.length

    Expect.isGreaterThanOrEqual (logged "lost: ") 1 "the monitor's link loss is logged"

    Expect.isTrue
        (eventually (TimeSpan.FromSeconds 5.0) (fun () -> logged "Call monitor: reconciled" >= 2))
        "reconciled at the first Ready and again after the reconnect"

[<Tests>]
let tests =
    // Not while another list uses the local Asterisk: these stop it.
    testSequencedGroup "the local Asterisk"
    <| testList "Real call status, load and restarts" [
        withBed $"{concurrent} concurrent callbacks, half busy, half answered: each ends as its SIPp scenario dictates"
        <| concurrentCallbacks

        withBed
            "Asterisk stopped and started mid-call: the monitor reconnects, and the bridged call, hung up by Asterisk, ends completed"
        <| restartedMidCall stopAndStart ("ended", "completed")

        // A crash: no Hangup is ever sent, so only reconciliation can end the call.
        withBed "Asterisk killed and restarted mid-call: the monitor reconnects and the bridged call ends lost"
        <| restartedMidCall crashAndRestart ("failed", "lost")
    ]
