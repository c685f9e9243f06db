module Callback.Tests.ConnectionTests

open System
open System.Threading
open Expecto
open Callback.Ami
open Callback.Tests.FakeAmi

let private endpoint port = {
    Host = "127.0.0.1"
    Port = port
    Transport = PlainTcp
    ConnectTimeout = TimeSpan.FromSeconds 2.0
}

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

            match (Connection.Open(endpoint server.Port, CancellationToken.None)).Result with
            | Error e -> failtestf "open failed: %A" e
            | Ok connection ->
                use connection = connection

                let login =
                    Action.encode {
                        Name = "Login"
                        ActionId = "l1"
                        Headers = []
                    }
                    |> Result.defaultWith (failwithf "%A")

                connection.Send(login, CancellationToken.None).Result |> ignore

                let messages =
                    receiveAll connection 3 |> List.map (Result.defaultWith (failwithf "%A"))

                Expect.equal (messages |> List.map Message.kind) [ Response; Event; Event ] "all three"
                Expect.equal (Message.tryFind "Channel" messages[2]) (Some "Local/1@x-0001;1") "last event whole"
        }

        test "a peer that closes mid-message is reported as closed, not as a message" {
            use server =
                new Server(script (fun _ -> SendThenClose "Response: Success\r\nActionID: l1\r\n"))

            match (Connection.Open(endpoint server.Port, CancellationToken.None)).Result with
            | Error e -> failtestf "open failed: %A" e
            | Ok connection ->
                use connection = connection

                let login =
                    Action.encode {
                        Name = "Login"
                        ActionId = "l1"
                        Headers = []
                    }
                    |> Result.defaultWith (failwithf "%A")

                connection.Send(login, CancellationToken.None).Result |> ignore
                Expect.equal (connection.Receive(CancellationToken.None).Result) (Error Closed) "closed"
        }

        test "a message larger than the frame limit is refused instead of buffered forever" {
            let flood (_: ReceivedAction) =
                Send("Event: Flood\r\nData: " + String('x', 70_000) + "\r\n")

            use server = new Server(script flood)

            match (Connection.Open(endpoint server.Port, CancellationToken.None)).Result with
            | Error e -> failtestf "open failed: %A" e
            | Ok connection ->
                use connection = connection

                let ping =
                    Action.encode {
                        Name = "Ping"
                        ActionId = "p1"
                        Headers = []
                    }
                    |> Result.defaultWith (failwithf "%A")

                connection.Send(ping, CancellationToken.None).Result |> ignore
                Expect.equal (connection.Receive(CancellationToken.None).Result) (Error Oversized) "oversized"
        }
    ]
