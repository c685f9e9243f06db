/// The session's link and events against the fake server: a dropped link, an event storm against a slow
/// subscriber, and the keep-alive.
module Callback.Tests.SessionLinkTests

open System
open System.Diagnostics
open System.Threading
open Expecto
open Callback.Ami
open Callback.Tests.FakeAmi
open Callback.Tests.SessionTests

/// `count` events `Event: Newexten` numbered 1.. in `Seq:`, then the Response to `a`.
let private storm count (a: ReceivedAction) =
    let events =
        Seq.init count (fun i -> $"Event: Newexten\r\nSeq: {i + 1}\r\n\r\n")
        |> String.concat ""

    Send(events + response "Success" a.ActionId "after the storm")

let private linkTests = [
    // Catches waiters left blocked until their own timeout when the link is gone.
    test "pending actions fail at once when the link drops, and later ones fail without being sent" {
        use server = new Server(script (fun _ -> Silent))
        use session = openWith server (options 10000 0) (WarningLog())
        let pending = session.Send(action "Hold" [], CancellationToken.None)
        Thread.Sleep 200
        let clock = Stopwatch.StartNew()
        server.Kick()

        match pending |> within 3.0 with
        | Error(LinkFailed _) -> ()
        | other -> failtestf "expected LinkFailed, got %A" (Result.map string other)

        Expect.isLessThan clock.Elapsed (TimeSpan.FromSeconds 2.0) "at once, not after the 10 s timeout"
        (session.Closed |> within 2.0) |> ignore
        let sent = server.Actions.Length
        let later = session.Send(action "Later" [], CancellationToken.None) |> within 1.0
        Expect.equal later (Error(LinkFailed Closed)) "fails at once"
        Thread.Sleep 100
        Expect.equal server.Actions.Length sent "nothing more reached the server"
    }

    // Catches a blocking channel (Wait mode stalls the reader: the response times out), DropNewest/DropWrite
    // (the newest events would be lost) and an uncounted or unlogged drop.
    test "an event storm drops a slow subscriber's oldest events, counted and logged once, and the answer arrives" {
        use server = new Server(script (storm 5000))
        let log = WarningLog()
        // Time enough for 5 000 events on a loaded machine: the test is about what is dropped, not how fast.
        use session = openWith server (options 15000 0) log
        use slow = session.Subscribe 100
        let answer = session.Send(action "Storm" [], CancellationToken.None) |> within 20.0
        Expect.equal (messageOf answer) "after the storm" "the response still arrived"
        Expect.equal slow.Dropped 4900L "every event past the capacity is counted"
        Expect.equal session.Events.Received 5000L "every event was received"
        let kept = [ for _ in 1..100 -> (nextEvent slow).Get "Seq" ]
        Expect.equal kept.Head "4901" "the oldest were dropped"
        Expect.equal (List.last kept) "5000" "the newest kept"
        let burst = log.Lines |> List.filter (fun l -> l.Contains "dropping the oldest")
        Expect.equal burst.Length 1 "one warning for the burst, not one per event"
        server.Push "Event: Newexten\r\nSeq: 5001\r\n\r\n" |> _.Wait()
        Expect.equal ((nextEvent slow).Get "Seq") "5001" "delivered again once caught up"
        Expect.exists log.Lines (fun l -> l.Contains "caught up after 4900") "the burst's end is logged"
    }

    test "a subscription that keeps up drops nothing" {
        use server = new Server(script (storm 50))
        use session = openSession server
        use fast = session.Subscribe 100
        session.Send(action "Storm" [], CancellationToken.None) |> within 5.0 |> ignore
        Expect.equal fast.Dropped 0L "no drop"
        Expect.equal fast.Reader.Count 50 "all fifty held"
    }

    test "a closed session completes its subscriptions" {
        use server = new Server(script asterisk)
        let session = openSession server
        use events = session.Subscribe 4
        session.Close "test" |> within 2.0 |> ignore
        Expect.isTrue (events.Reader.Completion.Wait(TimeSpan.FromSeconds 2.0)) "completed"
    }
]

let private keepAliveTests = [
    // Catches a keep-alive that never runs or never judges the peer (the session would stay open forever).
    test "the keep-alive closes a session whose peer stops answering Ping, failing what was pending" {
        use server = new Server(script (asteriskExcept "Ping" (fun _ -> Silent)))
        use session = openWith server (options 300 100) (WarningLog())

        Expect.isOk
            (session.Login("monitor", Secret "pw", EventMask.On, false, CancellationToken.None)
             |> within 2.0)
            "login"

        let reason = session.Closed |> within 3.0
        Expect.stringContains reason "Ping" "why it closed"
        Expect.contains server.ActionNames "Ping" "a Ping was sent"
    }

    test "a peer that answers Ping keeps the session open, with a Ping every interval" {
        let pong (a: ReceivedAction) =
            Send $"Response: Success\r\nActionID: {a.ActionId}\r\nPing: Pong\r\n\r\n"

        use server = new Server(script (asteriskExcept "Ping" pong))
        use session = openWith server (options 300 100) (WarningLog())

        Expect.isOk
            (session.Login("monitor", Secret "pw", EventMask.On, false, CancellationToken.None)
             |> within 2.0)
            "login"

        Thread.Sleep 800
        Expect.isFalse session.IsClosed "still open"
        Expect.isGreaterThanOrEqual (server.ActionNames |> List.filter ((=) "Ping") |> List.length) 3 "Pings sent"
    }

    test "no Ping is sent before Login succeeded" {
        use server = new Server(script asterisk)
        use _session = openWith server (options 300 50) (WarningLog())
        Thread.Sleep 300
        Expect.isEmpty server.ActionNames "nothing sent before Login"
    }
]

[<Tests>]
let tests =
    testSequenced
    <| testList "Session link" [ testList "link and events" linkTests; testList "keep-alive" keepAliveTests ]
