module Callback.Tests.ConnectionTests

open System
open System.Threading
open Expecto
open Callback.Ami
open Callback.Tests.FakeAmi

let private endpoint = plainEndpoint

/// A connection to the fake server, opened; the test fails if it cannot be.
let private opened (server: Server) =
    match (Connection.Open(endpoint server.Port, CancellationToken.None)).Result with
    | Ok connection -> connection
    | Error e -> failtestf "open failed: %A" e

/// Sends the action `name` (no headers) with ActionID `actionId`.
let private send (connection: Connection) name actionId =
    let action =
        Action.encode {
            Name = name
            ActionId = actionId
            Headers = []
        }
        |> Result.defaultWith (failwithf "%A")

    connection.Send(action, CancellationToken.None).Result |> ignore

let private receiveAll (connection: Connection) count = [
    for _ in 1..count -> connection.Receive(CancellationToken.None).Result
]

[<Tests>]
let tests =
    testList "Connection" [
        test "the greeting's version number is not checked, only its prefix" {
            for banner in
                [
                    "Asterisk Call Manager/11.0.0"
                    "Asterisk Call Manager/2.10.6"
                    "Asterisk Call Manager/99.1"
                ] do
                use server =
                    new Server(
                        {
                            Greeting = Some(banner + "\r\n")
                            Answer = asterisk
                        }
                    )

                match (Connection.Open(endpoint server.Port, CancellationToken.None)).Result with
                | Ok connection ->
                    use connection = connection
                    Expect.equal connection.Greeting banner "greeting kept"
                | Error e -> failtestf "%s refused: %A" banner e
        }

        test "events arriving in the same read as the Login response are all received" {
            // One popular npm AMI client drops what follows the Login response in the same read.
            let burst (a: ReceivedAction) =
                Send(
                    response "Success" a.ActionId "Authentication accepted"
                    + "Event: FullyBooted\r\nStatus: Fully Booted\r\n\r\n"
                    + "Event: Newchannel\r\nChannel: Local/1@x-0001;1\r\nUniqueid: 1.1\r\n\r\n"
                )

            use server = new Server(script burst)
            use connection = opened server
            send connection "Login" "l1"

            let messages =
                receiveAll connection 3 |> List.map (Result.defaultWith (failwithf "%A"))

            Expect.equal (messages |> List.map Message.kind) [ Response; Event; Event ] "all three"
            Expect.equal (Message.tryFind "Channel" messages[2]) (Some "Local/1@x-0001;1") "last event whole"
        }

        test "messages that came in the same read as the end of the stream are all received before it" {
            let lastWords (a: ReceivedAction) =
                SendThenClose(
                    response "Goodbye" a.ActionId "Thanks for all the fish."
                    + "Event: Shutdown\r\nShutdown: Cleanly\r\n\r\n"
                )

            use server = new Server(script lastWords)
            use connection = opened server
            send connection "Logoff" "o1"

            match receiveAll connection 3 with
            | [ Ok goodbye; Ok shutdown; Error Closed ] ->
                Expect.equal (Message.tryFind "Response" goodbye) (Some "Goodbye") "the Logoff response"
                Expect.equal (Message.tryFind "Event" shutdown) (Some "Shutdown") "the event after it"
            | other -> failtestf "%A" other
        }

        test "a peer that closes mid-message is reported as closed, not as a message" {
            use server =
                new Server(script (fun _ -> SendThenClose "Response: Success\r\nActionID: l1\r\n"))

            use connection = opened server
            send connection "Login" "l1"
            Expect.equal (connection.Receive(CancellationToken.None).Result) (Error Closed) "closed"
        }

        // Catches a session ended (or a pipe buffer grown without bound) by one message over the cap.
        test "an event over the cap is skipped and counted, and the session goes on" {
            let floodThenAnswer (a: ReceivedAction) =
                Send(
                    "Event: Flood\r\nData: "
                    + String('x', FrameReader.DefaultMaxMessageBytes + 500_000)
                    + "\r\n\r\n"
                    + response "Success" a.ActionId "Pong"
                )

            use server = new Server(script floodThenAnswer)
            use connection = opened server
            send connection "Ping" "p1"

            match connection.Receive(CancellationToken.None).Result with
            | Ok m -> Expect.equal (Message.tryFind "Message" m) (Some "Pong") "the response after it"
            | Error e -> failtestf "%A" e

            Expect.equal connection.SkippedMessages 1L "one skipped"
        }

        test "Ami__MaxMessageBytes reaches the connection: a message under it is read, one over it skipped" {
            let events (a: ReceivedAction) =
                Send(
                    $"Event: A\r\nData: {String('a', 50_000)}\r\n\r\n"
                    + $"Event: B\r\nData: {String('b', 70_000)}\r\n\r\n"
                    + response "Success" a.ActionId "Pong"
                )

            use server = new Server(script events)

            use connection =
                match (Connection.Open(endpoint server.Port, CancellationToken.None, 65536)).Result with
                | Ok c -> c
                | Error e -> failtestf "%A" e

            send connection "Ping" "p1"

            let names =
                receiveAll connection 2
                |> List.map (Result.map (fun m -> Message.tryFind "Event" m, Message.tryFind "Message" m))

            Expect.equal names [ Ok(Some "A", None); Ok(None, Some "Pong") ] "A read, B skipped"
            Expect.equal connection.SkippedMessages 1L "one skipped"
        }

        test "a greeting of more than 4 KiB without a line end is not waited for" {
            use server =
                new Server(
                    {
                        Greeting = Some(String('x', 100_000))
                        Answer = asterisk
                    }
                )

            Expect.equal
                (Connection.Open(endpoint server.Port, CancellationToken.None).Result
                 |> Result.map ignore)
                (Error ClosedBeforeGreeting)
                "refused at once, not at the connect timeout"
        }
    ]
