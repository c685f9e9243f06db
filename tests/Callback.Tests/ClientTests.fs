/// Client.send over a real connection to the fake server: which Response counts as an answer, and which
/// answer counts as success.
module Callback.Tests.ClientTests

open System
open System.Threading
open Expecto
open Callback.Ami
open Callback.Tests.FakeAmi

let private endpoint = plainEndpoint

let private action name = {
    Name = name
    ActionId = Actions.newActionId ()
    Headers = []
}

/// Sends `name` to a fake server that answers it with `answer` and returns what Client.send made of it.
let private sendTo (answer: ReceivedAction -> string) (name: string) =
    use server = new Server(script (answer >> Send))

    match (Connection.Open(endpoint server.Port, CancellationToken.None)).Result with
    | Error e -> failtestf "open failed: %A" e
    | Ok connection ->
        use connection = connection

        (Client.send connection (TimeSpan.FromMilliseconds 400.0) (action name) CancellationToken.None).Result

let private answeredWith kind message (a: ReceivedAction) = response kind a.ActionId message

/// The `Message:` of the response Client.send returned, to tell which response it took.
let private messageOf result =
    match result with
    | Ok response -> Message.tryFind "Message" response
    | Error e -> failtestf "expected a response, got %A" e

[<Tests>]
let tests =
    testList "Client" [
        testList "success" [
            test "Login and Originate succeed on Response: Success, in any letter case" {
                for name in [ "Login"; "Originate" ] do
                    for kind in [ "Success"; "success" ] do
                        Expect.equal (messageOf (sendTo (answeredWith kind "fine") name)) (Some "fine") name
            }

            test "Logoff succeeds on Goodbye or Success" {
                for kind in [ "Goodbye"; "Success" ] do
                    Expect.isOk (sendTo (answeredWith kind "Thanks for all the fish.") "Logoff") kind
            }

            test "Response: Error is Rejected, with Asterisk's message" {
                Expect.equal
                    (sendTo (answeredWith "Error" "Authentication failed") "Login"
                     |> Result.map ignore)
                    (Error(Rejected "Authentication failed"))
                    "rejected"
            }

            // Catches the old rule "anything but Error is success".
            test "Failure, Follows, Goodbye or garbage fail Login and Originate, with Asterisk's words" {
                for name in [ "Login"; "Originate" ] do
                    for kind in [ "Failure"; "Follows"; "Goodbye"; "Successful"; "Yes"; "" ] do
                        Expect.equal
                            (sendTo (answeredWith kind "Asterisk says so") name |> Result.map ignore)
                            (Error(Unexpected(kind, "Asterisk says so")))
                            $"{name} answered %A{kind}"
            }

            test "Logoff answered Failure or Follows fails too" {
                for kind in [ "Failure"; "Follows" ] do
                    Expect.isError (sendTo (answeredWith kind "hm") "Logoff") kind
            }

            test "an unexpected answer is described with Asterisk's words, a missing Response line as such" {
                Expect.equal
                    (ActionError.describe (Unexpected("Follows", "Command output follows")))
                    "Asterisk answered 'Follows' instead of Success: Command output follows"
                    "named"

                Expect.stringContains (ActionError.describe (Unexpected("", "x"))) "no Response line" "missing"
            }

            test "an answer without a Response line is not taken for the response: no response in time" {
                let noResponseLine (a: ReceivedAction) =
                    $"ActionID: {a.ActionId}\r\nMessage: Authentication accepted\r\n\r\n"

                Expect.equal (sendTo noResponseLine "Login" |> Result.map ignore) (Error NoResponse) "waited"
            }
        ]

        testList "correlation" [
            // Catches dropping the ActionID check in Client: the first response would be taken, and fail.
            test "a response to another ActionID is skipped, and the one with ours is taken" {
                let decoysFirst (a: ReceivedAction) =
                    response "Error" "someone-else" "Not yours"
                    + response "Success" "" "No ActionID at all"
                    + response "Success" a.ActionId "Originate successfully queued"

                Expect.equal
                    (messageOf (sendTo decoysFirst "Originate"))
                    (Some "Originate successfully queued")
                    "our response"
            }

            // Catches dropping the `kind = Response` check: the event carries our ActionID and would be taken.
            test "an event carrying our ActionID is skipped, and the response is taken" {
                let eventFirst (a: ReceivedAction) =
                    $"Event: OriginateResponse\r\nActionID: {a.ActionId}\r\nResponse: Failure\r\nMessage: An event\r\n\r\n"
                    + response "Success" a.ActionId "Originate successfully queued"

                Expect.equal
                    (messageOf (sendTo eventFirst "Originate"))
                    (Some "Originate successfully queued")
                    "the response, not the event"
            }
        ]
    ]
