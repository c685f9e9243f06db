/// The session layer against the real Asterisk 22 on its plain manager port, as the dev-only
/// `callback-recorder` user: MD5 challenge login, Ping, and an Originate whose OriginateResponse comes back as
/// an event carrying our ActionID while the Response is the answer.
module Callback.Tests.RealSessionTests

open System
open System.Threading
open Expecto
open Callback.Ami
open Callback.Tests.OnThisMachine
open Callback.Tests.LocalAsterisk
open Callback.Tests.Programs
open Callback.Tests.SessionTests

/// The local Asterisk, started if needed (never restarted when it answers), and the monitor user.
let private monitor =
    lazy
        (rootOnLinux "a real Asterisk (debootstrap, chroot and mount)"
         |> Result.bind (start >> Result.mapError Broken)
         |> Result.map (fun _ -> keyValues (snd (asteriskScript "monitor-env"))))

let private withMonitor = onThisMachine "real-Asterisk" monitor

/// A supervisor for the plain port 5038 (TLS off, so Login goes through the MD5 challenge), ready.
let private readySupervisor (env: (string * string) list) =
    let options =
        SupervisorOptions(
            Host = "127.0.0.1",
            Port = 5038,
            UseTls = false,
            Username = setting env "AMI_MONITOR_USERNAME",
            Secret = setting env "AMI_MONITOR_SECRET",
            Events = EventMask.Of "call",
            ResponseTimeout = TimeSpan.FromSeconds 5.0,
            KeepAliveInterval = TimeSpan.Zero
        )

    let supervisor = new Supervisor(options)
    let states = supervisor.WatchStates()
    supervisor.Start()

    let rec ready () =
        let change = states.ReadAsync().AsTask() |> within 10.0

        match change.State with
        | LinkState.Ready -> ()
        | LinkState.Disconnected -> failtestf "not logged in: %s" change.Reason
        | _ -> ready ()

    ready ()
    supervisor

/// The first event whose `Event:` is `name` and whose ActionID is `actionId`, within `seconds`.
let rec private awaitEvent (events: EventSubscription) name actionId (deadline: DateTime) =
    if DateTime.UtcNow > deadline then
        failtestf "no %s with our ActionID" name

    let next = events.Reader.ReadAsync().AsTask()

    if
        next.Wait(deadline - DateTime.UtcNow)
        && next.Result.Get "Event" = name
        && next.Result.Get "ActionID" = actionId
    then
        next.Result
    else
        awaitEvent events name actionId deadline

[<Tests>]
let tests =
    testSequencedGroup "the local Asterisk"
    <| testList "Real AMI session" [
        withMonitor "the supervisor logs in with the MD5 challenge on the plain port and Ping is answered"
        <| fun env ->
            use supervisor = readySupervisor env
            Expect.isOk (supervisor.Send(SessionActions.ping (), CancellationToken.None) |> within 5.0) "Pong"

        withMonitor
            "an Originate is answered by its Response; its OriginateResponse arrives as an event with our ActionID"
        <| fun env ->
            use supervisor = readySupervisor env
            use events = supervisor.Subscribe 1000

            let originate =
                action "Originate" [
                    "Channel", $"Local/{(TestNumbers.distinct 90).Digits}@demo-visitor"
                    "Context", "demo-owner"
                    "Exten", "owner"
                    "Priority", "1"
                    "Async", "true"
                ]

            match supervisor.Send(originate, CancellationToken.None) |> within 5.0 with
            | Ok answer -> Expect.equal (answer.Get "Message") "Originate successfully queued" "the Response"
            | Error e -> failtestf "Originate failed: %s" (ActionError.describe e)

            let outcome =
                awaitEvent events "OriginateResponse" originate.ActionId (DateTime.UtcNow.AddSeconds 15.0)

            Expect.equal (outcome.Get "Response") "Success" "the call was placed"
    ]
