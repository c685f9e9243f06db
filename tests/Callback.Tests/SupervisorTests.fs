/// The supervisor against the fake server: connect → login → ready, the state changes it reports, actions
/// refused while not ready, and reconnection after the link drops.
module Callback.Tests.SupervisorTests

open System
open System.Diagnostics
open System.Threading
open System.Threading.Channels
open Expecto
open Callback.Ami
open Callback.Tests.FakeAmi
open Callback.Tests.SessionTests

[<Literal>]
let private SecretText = "s3cret-pass"

let private optionsFor port =
    SupervisorOptions(
        Host = "127.0.0.1",
        Port = port,
        UseTls = false,
        Username = "monitor",
        Secret = SecretText,
        Events = EventMask.Of("call", "system"),
        ConnectTimeout = TimeSpan.FromSeconds 1.0,
        ResponseTimeout = TimeSpan.FromSeconds 10.0,
        KeepAliveInterval = TimeSpan.Zero,
        InitialBackoff = TimeSpan.FromMilliseconds 50.0,
        MaxBackoff = TimeSpan.FromMilliseconds 200.0
    )

/// Asterisk with the MD5 login, except that an action named Hold is never answered.
let private md5AsteriskHolding (a: ReceivedAction) =
    if a.Name = "Hold" then Silent else md5Asterisk SecretText a

/// The states reported until `wanted` (included), all within ten seconds: a link that flaps forever
/// (Connecting, Disconnected, …) fails the test instead of hanging it.
let private until (wanted: LinkState) (states: ChannelReader<LinkStateChange>) =
    let deadline = Stopwatch.StartNew()

    let rec loop seen =
        if deadline.Elapsed > TimeSpan.FromSeconds 10.0 then
            failtestf "no %O within 10 s; seen: %s" wanted (seen |> List.rev |> List.map string |> String.concat ", ")

        let change = states.ReadAsync().AsTask() |> within 5.0

        if change.State = wanted then
            List.rev (change :: seen)
        else
            loop (change :: seen)

    loop []

let private names changes = changes |> List.map _.State

let private started (server: Server) =
    let supervisor = new Supervisor(optionsFor server.Port)
    let states = supervisor.WatchStates()
    supervisor.Start()
    supervisor, states

[<Tests>]
let tests =
    testSequenced
    <| testList "Supervisor" [
        // Catches a plain Secret login on a link without TLS, or a Ready reported before Login succeeded.
        test "it connects, logs in with the MD5 challenge since TLS is off, and reports Connecting then Ready" {
            use server = new Server(script (md5Asterisk SecretText))
            let supervisor, states = started server
            use _ = supervisor
            Expect.equal (names (until LinkState.Ready states)) [ LinkState.Connecting; LinkState.Ready ] "states"
            Expect.equal server.ActionNames [ "Challenge"; "Login" ] "challenge, then login"
            Expect.isFalse (server.Received.Contains SecretText) "the secret never crossed"
            Expect.equal (server.Actions[1].Get "Events") "call,system" "the Events mask"
        }

        test "a supervisor without Username or Secret is refused when it is made, not at its first Login" {
            Expect.throwsT<ArgumentException>
                (fun () -> new Supervisor(SupervisorOptions(Username = "monitor")) |> ignore)
                "no secret"

            Expect.throwsT<ArgumentException>
                (fun () -> new Supervisor(SupervisorOptions(Secret = "x")) |> ignore)
                "no user"
        }

        // Catches actions queued (or sent blindly) while the link is down.
        test "an action while not ready fails at once with NotReady and is never sent" {
            use server = new Server(script (md5Asterisk SecretText))
            use supervisor = new Supervisor(optionsFor server.Port)
            let answer = supervisor.Send(action "Ping" [], CancellationToken.None) |> within 0.5
            Expect.equal answer (Error(NotReady "stopped")) "not started"
            Expect.equal server.Sessions 0 "nothing was sent"
        }

        test "while Asterisk refuses connections the link is Disconnected with the reason, and actions fail at once" {
            let port =
                use server = new Server(script asterisk)
                server.Port

            use supervisor = new Supervisor(optionsFor port)
            let states = supervisor.WatchStates()
            supervisor.Start()
            let lost = until LinkState.Disconnected states |> List.last
            Expect.stringContains lost.Reason "refused" "why"
            let clock = Stopwatch.StartNew()

            match supervisor.Send(action "Ping" [], CancellationToken.None) |> within 1.0 with
            | Error(NotReady _) -> ()
            | other -> failtestf "expected NotReady, got %A" (Result.map string other)

            Expect.isLessThan clock.Elapsed (TimeSpan.FromSeconds 0.5) "at once"
            until LinkState.Disconnected states |> ignore
            Expect.isGreaterThanOrEqual supervisor.Reconnects 2L "it keeps trying"
        }

        // Catches a supervisor that leaves waiters blocked, does not reconnect, or reconnects without Login.
        test "after the link drops, pending actions fail at once, then it reconnects and logs in again" {
            use server = new Server(script md5AsteriskHolding)
            let supervisor, states = started server
            use _ = supervisor
            until LinkState.Ready states |> ignore
            let pending = supervisor.Send(action "Hold" [], CancellationToken.None)
            Thread.Sleep 100
            let clock = Stopwatch.StartNew()
            server.Kick()

            match pending |> within 3.0 with
            | Error(LinkFailed _) -> ()
            | other -> failtestf "expected LinkFailed, got %A" (Result.map string other)

            Expect.isLessThan clock.Elapsed (TimeSpan.FromSeconds 2.0) "at once, not after the 10 s timeout"
            let changes = until LinkState.Ready states
            Expect.equal (names changes) [ LinkState.Disconnected; LinkState.Connecting; LinkState.Ready ] "states"
            Expect.isNotNull changes.Head.Reason "the loss says why"
            Expect.isLessThan (DateTimeOffset.UtcNow - changes.Head.At) (TimeSpan.FromSeconds 5.0) "when"
            Expect.equal server.Sessions 2 "a second connection"
            Expect.equal (server.ActionNames |> List.filter ((=) "Login") |> List.length) 2 "logged in again"
            Expect.isOk (supervisor.Send(action "Ping" [], CancellationToken.None) |> within 3.0) "ready again"
        }

        // Catches subscriptions tied to one session (events lost for good after the first reconnection).
        test "event subscriptions live across reconnections" {
            use server = new Server(script (md5Asterisk SecretText))
            let supervisor, states = started server
            use _ = supervisor
            use events = supervisor.Subscribe 16
            until LinkState.Ready states |> ignore
            server.Push "Event: Newchannel\r\nUniqueid: 1.1\r\n\r\n" |> _.Wait()
            Expect.equal ((nextEvent events).Get "Uniqueid") "1.1" "before"
            server.Kick()
            until LinkState.Ready states |> ignore
            server.Push "Event: Newchannel\r\nUniqueid: 2.2\r\n\r\n" |> _.Wait()
            Expect.equal ((nextEvent events).Get "Uniqueid") "2.2" "after"
        }

        test "a refused Login is Disconnected with Asterisk's words, without the secret, and retried" {
            use server = new Server(script (md5Asterisk "another-secret"))
            let supervisor, states = started server
            use _ = supervisor
            let lost = until LinkState.Disconnected states |> List.last
            Expect.stringContains lost.Reason "Authentication failed" "Asterisk's words"
            Expect.isFalse (lost.Reason.Contains SecretText) "no secret in the reason"
            until LinkState.Disconnected states |> ignore
            Expect.isGreaterThanOrEqual server.Sessions 2 "retried"
        }

        test "StopAsync closes the session, fails what was pending and ends Stopped" {
            use server = new Server(script md5AsteriskHolding)
            let supervisor, states = started server
            until LinkState.Ready states |> ignore
            let pending = supervisor.Send(action "Hold" [], CancellationToken.None)
            Thread.Sleep 100
            supervisor.StopAsync() |> _.Wait(TimeSpan.FromSeconds 3.0) |> ignore
            Expect.isError (pending |> within 2.0) "pending failed"
            Expect.equal (List.last (until LinkState.Stopped states)).State LinkState.Stopped "stopped"
            Expect.equal supervisor.State LinkState.Stopped "state"
        }
    ]
