/// The long-lived AMI session against the fake server: many actions in flight, lists, Command, events
/// beside answers, timeouts, a dropped link, an event storm, MD5 login and the keep-alive.
module Callback.Tests.SessionTests

open System
open System.Collections.Concurrent
open System.Diagnostics
open System.Threading
open System.Threading.Tasks
open Expecto
open Microsoft.Extensions.Logging
open Callback.Ami
open Callback.Tests.FakeAmi

let private endpoint = plainEndpoint

/// Keeps every warning the code under test logs, to count them.
type WarningLog() =
    let lines = ConcurrentQueue<string>()
    member _.Lines = List.ofSeq lines

    interface ILogger with
        member _.BeginScope _ = null

        member _.IsEnabled _ = true

        member _.Log(level, _, state, error, format) =
            if level >= LogLevel.Warning then
                lines.Enqueue(format.Invoke(state, error))

let options timeoutMs keepAliveMs =
    SessionOptions(
        ResponseTimeout = TimeSpan.FromMilliseconds(float timeoutMs),
        KeepAliveInterval = TimeSpan.FromMilliseconds(float keepAliveMs)
    )

let openWith (server: Server) (options: SessionOptions) (logger: ILogger) =
    match (Connection.Open(endpoint server.Port, CancellationToken.None)).Result with
    | Ok connection -> new Session(connection, options, null, logger)
    | Error e -> failtestf "open failed: %s" (ConnectError.describe e)

let openSession server =
    openWith server (options 2000 0) (WarningLog())

let action name headers = {
    Name = name
    ActionId = Actions.newActionId ()
    Headers = headers
}

/// The task's result, or a failed test when it takes longer than `seconds`: no test hangs.
let within (seconds: float) (task: Task<'T>) =
    if task.Wait(TimeSpan.FromSeconds seconds) then
        task.Result
    else
        failtestf "no result within %.1f s" seconds

let messageOf (result: Result<Message, ActionError>) =
    match result with
    | Ok m -> m.Get "Message"
    | Error e -> failtestf "expected a response, got: %s" (ActionError.describe e)

/// The next event a subscription holds, within two seconds.
let nextEvent (subscription: EventSubscription) =
    (subscription.Reader.ReadAsync().AsTask()) |> within 2.0

let private listAnswer (a: ReceivedAction) =
    let id = a.ActionId

    Send(
        $"Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n"
        + $"Event: CoreShowChannel\r\nActionID: {id}\r\nChannel: PJSIP/visitor-1\r\n\r\n"
        + "Event: Newexten\r\nChannel: PJSIP/other-9\r\n\r\n"
        + $"Event: CoreShowChannel\r\nActionID: {id}\r\nChannel: Local/owner@demo;2\r\n\r\n"
        + $"Event: CoreShowChannelsComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: 2\r\n\r\n"
    )

let private commandAnswer (a: ReceivedAction) =
    match a.Get "Command" with
    | "core show channels" ->
        Send(
            $"Response: Success\r\nActionID: {a.ActionId}\r\nMessage: Command output follows\r\n"
            + "Output: Channel              Location             State   Application(Data)\r\n"
            + "Output: \r\nOutput: 0 active channels\r\n\r\n"
        )
    | other ->
        Send(
            $"Response: Error\r\nActionID: {a.ActionId}\r\nMessage: Command output follows\r\n"
            + $"Output: No such command '{other}' (type 'core show help {other}' for other possible commands)\r\n\r\n"
        )

let private actionTests = [
    // Catches answering the oldest pending action with whatever Response comes next.
    test "three actions in flight at once are each completed by their own ActionID, answered in reverse" {
        let held = ConcurrentQueue<ReceivedAction>()

        let answer (a: ReceivedAction) =
            held.Enqueue a

            if held.Count < 3 then
                Silent
            else
                held
                |> Seq.rev
                |> Seq.map (fun h -> response "Success" h.ActionId (h.Get "Tag"))
                |> String.concat ""
                |> Send

        use server = new Server(script answer)
        use session = openSession server

        let answers =
            [ "a"; "b"; "c" ]
            |> List.map (fun tag -> session.Send(action "Probe" [ "Tag", tag ], CancellationToken.None))
            |> List.map (within 3.0 >> messageOf)

        Expect.equal answers [ "a"; "b"; "c" ] "each got its own answer"
        Expect.equal session.PendingCount 0 "nothing left pending"
    }

    // Catches cancelling the shared read on a timeout (the session would break) or matching the late answer
    // to the next action.
    test "a timed-out action is forgotten: its late answer is dropped and the next action gets its own" {
        let first = ref None

        let answer (a: ReceivedAction) =
            match a.Name with
            | "Forgotten" ->
                first.Value <- Some a
                Silent
            | _ ->
                Send(
                    response "Success" first.Value.Value.ActionId "late"
                    + response "Success" a.ActionId "next"
                )

        use server = new Server(script answer)
        use session = openWith server (options 300 0) (WarningLog())

        let timedOut =
            session.Send(action "Forgotten" [], CancellationToken.None) |> within 3.0

        Expect.equal timedOut (Error NoResponse) "the first timed out"
        let next = session.Send(action "Next" [], CancellationToken.None) |> within 3.0
        Expect.equal (messageOf next) "next" "the second got its own answer"
        Expect.isFalse session.IsClosed "the session goes on"
        Expect.equal session.PendingCount 0 "the forgotten action is not kept"
    }

    // Catches a caller's cancellation that escapes as an exception or breaks the shared session.
    test "a caller's cancellation fails only its own action; the session goes on" {
        let answer (a: ReceivedAction) =
            if a.Name = "Hold" then
                Silent
            else
                Send(response "Success" a.ActionId "fine")

        use server = new Server(script answer)
        use session = openWith server (options 5000 0) (WarningLog())
        use cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds 200.0)
        let cancelled = session.Send(action "Hold" [], cancel.Token) |> within 3.0
        Expect.equal cancelled (Error(LinkFailed Cancelled)) "cancelled"
        Expect.equal (messageOf (session.Send(action "Next" [], CancellationToken.None) |> within 3.0)) "fine" "next"
        Expect.equal session.PendingCount 0 "the cancelled action is not kept"
    }

    // Catches taking OriginateResponse (Event first, with our ActionID and a Response line) for the answer.
    test "an OriginateResponse carrying our ActionID is an event for subscribers, never the answer" {
        let answer (a: ReceivedAction) =
            Send(
                $"Event: OriginateResponse\r\nActionID: {a.ActionId}\r\nResponse: Failure\r\nReason: 0\r\n\r\n"
                + response "Success" a.ActionId "Originate successfully queued"
            )

        use server = new Server(script answer)
        use session = openSession server
        use events = session.Subscribe 16

        let answered =
            session.Send(action "Originate" [], CancellationToken.None) |> within 3.0

        Expect.equal (messageOf answered) "Originate successfully queued" "the Response is the answer"
        Expect.equal ((nextEvent events).Get "Event") "OriginateResponse" "the event went to the subscriber"
    }

    // Catches a reader that keeps events out while an action waits, or answers the action with an event.
    test "events that arrive while actions are pending reach subscribers and the actions still complete" {
        let answer (a: ReceivedAction) =
            Send(
                "Event: Newchannel\r\nUniqueid: 1.1\r\n\r\n"
                + "Event: OriginateResponse\r\nActionID: someone-elses\r\nResponse: Success\r\n\r\n"
                + response "Success" a.ActionId "done"
                + "Event: Hangup\r\nUniqueid: 1.1\r\n\r\n"
            )

        use server = new Server(script answer)
        use session = openSession server
        use events = session.Subscribe 16
        Expect.equal (messageOf (session.Send(action "Ping" [], CancellationToken.None) |> within 3.0)) "done" "answer"
        let names = [ for _ in 1..3 -> (nextEvent events).Get "Event" ]
        Expect.equal names [ "Newchannel"; "OriginateResponse"; "Hangup" ] "every event, in order"
    }
]

let private listTests = [
    // Catches ending the list on the first event, or keeping unrelated events as items.
    test "a list action returns its items and its Complete event; an unrelated event in between is an event" {
        use server = new Server(script listAnswer)
        use session = openSession server
        use events = session.Subscribe 16

        match
            session.SendList(action "CoreShowChannels" [], CancellationToken.None)
            |> within 3.0
        with
        | Ok list ->
            Expect.equal [ for i in list.Items -> i.Get "Channel" ] [ "PJSIP/visitor-1"; "Local/owner@demo;2" ] "items"
            Expect.equal (list.Completion.Get "ListItems") "2" "completion"
            Expect.equal ((nextEvent events).Get "Event") "Newexten" "the unrelated event"
        | Error e -> failtestf "list failed: %s" (ActionError.describe e)
    }

    // Catches a list action that waits for items Asterisk said (by omitting EventList) will not come.
    test "a list action answered Success without EventList: start is an empty list, at once" {
        use server =
            new Server(script (fun a -> Send(response "Success" a.ActionId "no list")))

        use session = openSession server

        match session.SendList(action "Status" [], CancellationToken.None) |> within 1.5 with
        | Ok list -> Expect.isEmpty list.Items "no items"
        | Error e -> failtestf "list failed: %s" (ActionError.describe e)
    }

    test "a list action answered Error is Rejected with Asterisk's message" {
        use server =
            new Server(script (fun a -> Send(response "Error" a.ActionId "Permission denied")))

        use session = openSession server

        let answer =
            session.SendList(action "Status" [], CancellationToken.None) |> within 3.0

        Expect.equal (answer |> Result.map ignore) (Error(Rejected "Permission denied")) "rejected"
    }

    // Catches keeping only one Output line (a dictionary) or dropping the empty one.
    test "Command returns every Output line in order, the empty one included" {
        use server = new Server(script commandAnswer)
        use session = openSession server

        match session.Command("core show channels", CancellationToken.None) |> within 3.0 with
        | Ok lines ->
            Expect.equal lines.Count 3 "three lines"
            Expect.equal lines[1] "" "the empty line"
            Expect.equal lines[2] "0 active channels" "the last line"
        | Error e -> failtestf "command failed: %s" (ActionError.describe e)
    }

    test "a Command answered Error is Rejected with the CLI's own words" {
        use server = new Server(script commandAnswer)
        use session = openSession server

        match session.Command("bogus", CancellationToken.None) |> within 3.0 with
        | Error(Rejected text) -> Expect.stringStarts text "No such command 'bogus'" "the CLI's words"
        | other -> failtestf "expected Rejected, got %A" (Result.map List.ofSeq other)
    }
]

[<Tests>]
let tests =
    testSequenced
    <| testList "Session" [ testList "actions" actionTests; testList "lists and Command" listTests ]
