/// The call monitor: its deadlines and reconciliation as pure rules, then the whole monitor against the
/// fake AMI server (a recorded call replayed into it, a reconnect reconciled), and the pipeline telling it
/// of each Originate.
module Callback.Tests.MonitorTests

open System
open System.Diagnostics
open System.IO
open System.Threading
open Expecto
open Microsoft.Extensions.Logging.Abstractions
open Callback.Ami
open Callback.Calls
open Callback.Domain
open Callback.Tests.FakeAmi
open Callback.Tests.SessionTests

[<Literal>]
let private SecretText = "monitor-s3cret"

let private t0 = DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero)

let timing = {
    SettleWindow = TimeSpan.FromSeconds 2.0
    ChannelDeadline = TimeSpan.FromSeconds 40.0
    SweepInterval = TimeSpan.FromSeconds 1.0
    SaveRetryDelay = TimeSpan.FromMilliseconds 50.0
}

let fixture (file: string) =
    let text =
        File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "fixtures", "ami", file))

    text.Substring(text.IndexOf '\n' + 1)

let channelIdIn (transcript: string) =
    let at = transcript.IndexOf "Uniqueid: "
    let line = transcript.Substring(at + 10)
    line.Substring(0, line.IndexOf '\r')

let private trackedFor (channelId: string) =
    let callId, attempt = (ChannelId.tryParse channelId).Value
    TrackedCall.queued callId attempt t0

let event (text: string) =
    let header (line: string) =
        let colon = line.IndexOf ':'

        {
            Key = line.Substring(0, colon)
            Value = line.Substring(colon + 2)
        }

    let message = text.Split '\n' |> Seq.map header |> Message.ofHeaders
    Ami (CallEvent.tryParse message).Value

let newchannel (channelId: string) =
    event $"Event: Newchannel\nChannel: PJSIP/trunk-1\nUniqueid: {channelId}\nLinkedid: {channelId}"

let private originateFailure (channelId: string) =
    event $"Event: OriginateResponse\nResponse: Failure\nReason: 0\nUniqueid: {channelId}"

let private ruleTests =
    testList "rules" [
        // Catches a monitor that finalises on OriginateResponse Failure at once, or never.
        test "a failed Originate without a channel is settled only once the settle window has passed" {
            let id = "0123456789abcdef0123456789abcdef-1"

            let failed =
                trackedFor id |> TrackedCall.apply (t0.AddSeconds 1.0) (originateFailure id)

            Expect.equal failed.OriginateFailedAt (Some(t0.AddSeconds 1.0)) "the window starts"
            let early = MonitorRules.sweep timing (t0.AddSeconds 2.5) failed
            Expect.isFalse (Call.isFinal early.Call) "still waiting for the Hangup"
            let settled = MonitorRules.sweep timing (t0.AddSeconds 3.0) failed
            Expect.isTrue (Call.isFinal settled.Call) "settled after the window"
        }

        // Catches a call that waits forever for a channel Asterisk never made, or one given up too early.
        test "a call whose channel never appears is lost at the channel deadline, not before" {
            let queued = trackedFor "0123456789abcdef0123456789abcdef-1"
            let before = MonitorRules.sweep timing (t0.AddSeconds 39.0) queued
            Expect.isFalse (Call.isFinal before.Call) "before the deadline"
            let after = MonitorRules.sweep timing (t0.AddSeconds 40.0) queued

            Expect.equal after.Call.Status (Failed(FailedOutcome.Lost, None)) "lost at the deadline"
            Expect.equal after.UpdatedAt (t0.AddSeconds 40.0) "updated then"
        }

        // Catches a reconcile that loses live calls, or keeps calls whose channels are gone.
        test "reconciling loses a call whose channels are gone and keeps one still listed or not yet made" {
            let gone = "0123456789abcdef0123456789abcdef-1"
            let listed = "fedcba9876543210fedcba9876543210-1"

            let withChannel id =
                trackedFor id |> TrackedCall.apply t0 (newchannel id)

            let present = Set.ofList [ listed; "other-channel" ]
            let at = t0.AddSeconds 5.0

            Expect.equal
                (MonitorRules.reconcile at at present (withChannel gone)).Call.Status
                (Failed(FailedOutcome.Lost, None))
                "gone"

            Expect.isFalse (Call.isFinal (MonitorRules.reconcile at at present (withChannel listed)).Call) "listed"
            Expect.isFalse (Call.isFinal (MonitorRules.reconcile at at present (trackedFor gone)).Call) "no channel yet"
        }

        // Catches a reconcile that loses a call whose channel was made after the listing was taken (the
        // listing and the events travel apart: the Newchannel may be folded before the listing arrives).
        test "reconciling leaves a call that moved after the listing was asked for to its events" {
            let id = "0123456789abcdef0123456789abcdef-1"
            let asked = t0.AddSeconds 5.0

            let madeAfter =
                trackedFor id |> TrackedCall.apply (asked.AddMilliseconds 1.0) (newchannel id)

            let reconciled =
                MonitorRules.reconcile asked (t0.AddSeconds 6.0) Set.empty madeAfter

            Expect.isFalse (Call.isFinal reconciled.Call) "not lost"
        }

        // Catches a call whose Newchannel was missed during an outage being lost later at the channel deadline.
        test "reconciling gives a call its first channel when it was made while the link was down" {
            let listed = "fedcba9876543210fedcba9876543210-1"
            let present = Set.ofList [ listed ]

            let found =
                MonitorRules.reconcile (t0.AddSeconds 5.0) (t0.AddSeconds 5.0) present (trackedFor listed)

            Expect.isTrue (found.Call.Legs.ContainsKey listed) "its channel is known"
            let later = MonitorRules.sweep timing (t0.AddSeconds 60.0) found
            Expect.isFalse (Call.isFinal later.Call) "not lost at the channel deadline"
        }
    ]

/// The fake Asterisk of a monitor: MD5 login, and `CoreShowChannels` listing `channels ()` at that moment.
let monitorAsterisk (channels: unit -> string list) (a: ReceivedAction) =
    if a.Name = "CoreShowChannels" then
        let id = a.ActionId
        let items = channels ()

        Send(
            $"Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n"
            + String.concat "" [
                for c in items -> $"Event: CoreShowChannel\r\nActionID: {id}\r\nUniqueid: {c}\r\nLinkedid: {c}\r\n\r\n"
            ]
            + $"Event: CoreShowChannelsComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: {items.Length}\r\n\r\n"
        )
    else
        md5Asterisk SecretText a

let supervisorFor port =
    new Supervisor(
        SupervisorOptions(
            Host = "127.0.0.1",
            Port = port,
            UseTls = false,
            Username = "callback-monitor",
            Secret = SecretText,
            Events = MonitorSession.events,
            KeepAliveInterval = TimeSpan.Zero,
            InitialBackoff = TimeSpan.FromMilliseconds 50.0,
            MaxBackoff = TimeSpan.FromMilliseconds 200.0
        )
    )

/// Waits (10 s at most) until `ready ()`.
let eventually (what: string) (ready: unit -> bool) =
    let clock = Stopwatch.StartNew()

    while not (ready ()) && clock.Elapsed < TimeSpan.FromSeconds 10.0 do
        Thread.Sleep 20

    Expect.isTrue (ready ()) what

let countOf name (server: Server) =
    server.ActionNames |> List.filter ((=) name) |> List.length

/// A monitor on the fake AMI server at `port`, writing to `store` and publishing on `feed`.
let monitorOn port (store: ICallStore) (feed: CallFeed) =
    new CallMonitor(supervisorFor port, store, feed, OutcomeCounts(), timing, TimeProvider.System, NullLogger.Instance)

/// Records `channelId`'s call in the store, as the pipeline does, then has `monitor` follow it.
let track (temp: TestStore.TempStore) (monitor: CallMonitor) (channelId: string) =
    let callId, attempt = (ChannelId.tryParse channelId).Value
    let at = DateTimeOffset.UtcNow

    Expect.isTrue (temp.Store.Create(TestStore.newCall callId attempt at, CancellationToken.None).Result) "recorded"

    monitor.Track(callId, attempt, at)
    callId

let private isFinal (temp: TestStore.TempStore) callId =
    match (temp.Find callId).Status with
    | Live _ -> false
    | _ -> true

let private liveTests =
    testSequenced
    <| testList "against the fake AMI" [
        // Catches a monitor that does not read events, or applies them to no call (or the wrong one).
        test "a recorded busy call replayed into the session ends busy in the store" {
            use server = new Server(script (monitorAsterisk (fun () -> [])))
            use temp = new TestStore.TempStore()
            let monitor = monitorOn server.Port temp.Store (CallFeed())
            let transcript = fixture "sip-visitor-busy.txt"
            let callId = track temp monitor (channelIdIn transcript)
            monitor.Start()
            eventually "reconciled once" (fun () -> countOf "CoreShowChannels" server = 1)
            server.Push transcript |> within 5.0
            eventually "final" (fun () -> isFinal temp callId)

            match (temp.Find callId).Status with
            | Failed(Busy, Some cause) -> Expect.equal cause.Code 17 "user busy"
            | _ -> failtest "expected busy with its cause"

            Expect.equal server.Sessions 1 "one long-lived session"
            eventually "the final call left the working set" (fun () -> monitor.Live.IsEmpty)
            Expect.isTrue (monitor.StopAsync().Wait(TimeSpan.FromSeconds 5.0)) "stopped"
        }

        // Catches a monitor that does not reconcile after a reconnect, so a call stays ringing forever.
        test "after a reconnect, a call whose channel is gone is lost and one still listed stays live" {
            let gone = "0123456789abcdef0123456789abcdef-1"
            let listed = "fedcba9876543210fedcba9876543210-1"
            use server = new Server(script (monitorAsterisk (fun () -> [ listed ])))
            use temp = new TestStore.TempStore()
            let monitor = monitorOn server.Port temp.Store (CallFeed())
            let goneId, listedId = track temp monitor gone, track temp monitor listed
            monitor.Start()
            eventually "reconciled once" (fun () -> countOf "CoreShowChannels" server = 1)

            server.Push(
                $"Event: Newchannel\r\nChannel: PJSIP/trunk-1\r\nUniqueid: {gone}\r\nLinkedid: {gone}\r\n\r\n"
                + $"Event: Newchannel\r\nChannel: PJSIP/trunk-2\r\nUniqueid: {listed}\r\nLinkedid: {listed}\r\n\r\n"
            )
            |> within 5.0

            eventually "both channels seen" (fun () ->
                monitor.Live |> List.forall (fun tracked -> not tracked.Call.Legs.IsEmpty))

            Expect.isFalse (isFinal temp goneId) "live before the reconnect"
            server.Kick()
            eventually "reconciled again" (fun () -> countOf "CoreShowChannels" server = 2)
            eventually "gone is lost" (fun () -> isFinal temp goneId)
            Expect.equal (temp.Find goneId).Status (Failed(FailedOutcome.Lost, None)) "lost"
            Expect.isFalse (isFinal temp listedId) "still live"
            Expect.isTrue (monitor.StopAsync().Wait(TimeSpan.FromSeconds 5.0)) "stopped"
        }
    ]

/// Asterisk over TLS with a `CoreShowChannels` that lists nothing.
let tlsAsterisk () =
    new Server(script (asteriskExcept "CoreShowChannels" (monitorAsterisk (fun () -> []))), Some pki.Value.Server)

let private monitorLogins (server: Server) =
    server.Actions
    |> List.filter (fun a -> a.Name = "Login" && a.Get "Username" = "callback-monitor")

let private wiringTests =
    testSequenced
    <| testList "in the app" [
        // Catches a monitor that is never started, or a pipeline that does not record its calls.
        test "with Monitor__Username the app keeps one monitor session and records each spooled call" {
            use server = tlsAsterisk ()

            use sidecar =
                new TestSidecar.Sidecar(
                    TestSidecar.fakeAmiConfig
                        [ "Monitor:Username", "callback-monitor"; "Monitor:Secret", SecretText ]
                        server.Port
                )

            eventually "the monitor logged in" (fun () -> monitorLogins server |> List.length = 1)
            Expect.equal ((monitorLogins server).Head.Get "Events") "call,dialplan,system" "its events"

            let status, body =
                sidecar.Post(TestSidecar.form [ "phoneNumber", TestNumbers.Allowed; "language", "fr" ])

            Expect.equal (int status) 200 "placed"

            let callId =
                Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("callId").GetString()
                |> CallId.tryParse
                |> Option.get

            let store = sidecar.App.Services.GetService(typeof<ICallStore>) :?> ICallStore

            let stored =
                Expect.wantSome (store.Find(callId, CancellationToken.None).Result) "recorded"

            Expect.equal stored.Language French "its language"
            Expect.equal stored.MaskedNumber "1514*****34" "masked, as in the log"
            Expect.equal stored.Status (Live Queued) "queued"
            Expect.equal (monitorLogins server |> List.length) 1 "still one monitor session"
        }

        // Catches a monitor started without its user (it would log in as nobody, or as the callback user).
        test "without Monitor__Username no monitor session is opened, and start-up says so" {
            use server = tlsAsterisk ()
            use sidecar = new TestSidecar.Sidecar(TestSidecar.fakeAmiConfig [] server.Port)
            Thread.Sleep 300
            Expect.isEmpty server.Actions "no AMI traffic at all"

            Expect.exists sidecar.Log (fun line -> line.Contains "No Monitor__Username") "said once at start-up"
        }
    ]

[<Tests>]
let tests = testList "Call monitor" [ ruleTests; liveTests; wiringTests ]
