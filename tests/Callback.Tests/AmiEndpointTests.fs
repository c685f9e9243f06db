/// What `POST /callback` makes of unusual AMI traffic, seen from the outside: the answer and the log.
module Callback.Tests.AmiEndpointTests

open Expecto
open Callback.Ami
open Callback.Tests.FakeAmi
open Callback.Tests.TestSidecar

let private secret = "s3cret-Value"

let private sidecarFor (extra: (string * string) list) (server: Server) =
    new Sidecar(fakeAmiConfig (("Ami:Secret", secret) :: ("Ami:ResponseTimeout", "400") :: extra) server.Port)

[<Tests>]
let tests =
    testList "AMI traffic at the endpoint" [
        // Catches "anything but Error is success" and a log line without Asterisk's own words.
        test "a Login answered Follows is a 502, logged with Asterisk's words and never the secret" {
            let follows (a: ReceivedAction) =
                response "Follows" a.ActionId "Command output follows"

            use server =
                new Server(script (asteriskExcept "Login" (follows >> Send)), Some pki.Value.Server)

            use sidecar = sidecarFor [] server

            let status, body =
                sidecar.Post(form [ "phoneNumber", TestNumbers.Allowed; "language", "en" ])

            Expect.equal (int status) 502 "502"
            Expect.equal (stages body) [ true; false; false; false; false ] "socket only"
            Expect.equal server.ActionNames [ "Login" ] "nothing after Login"

            Expect.exists
                sidecar.Log
                (fun l -> l.Contains "Login: Asterisk answered 'Follows' instead of Success: Command output follows")
                "Asterisk's words logged"

            Expect.all sidecar.Log (fun l -> not (l.Contains secret)) "secret never logged"
        }

        // Catches a skipped message that is counted but never reported, or reported once per read.
        test "an event over Ami__MaxMessageBytes is skipped, the callback placed, and one log line says so" {
            let hugeFirst (a: ReceivedAction) =
                $"Event: Huge\r\nData: {System.String('x', 100_000)}\r\n\r\n"
                + response "Success" a.ActionId "Authentication accepted"

            use server =
                new Server(script (asteriskExcept "Login" (hugeFirst >> Send)), Some pki.Value.Server)

            use sidecar = sidecarFor [ "Ami:MaxMessageBytes", "65536" ] server

            let status, body =
                sidecar.Post(form [ "phoneNumber", TestNumbers.Allowed; "language", "en" ])

            Expect.equal (int status) 200 "placed"
            Expect.equal (stages body) [ true; true; true; true; true ] "every stage"

            let lines =
                sidecar.Log |> List.filter (fun l -> l.Contains "skipped 1 AMI messages over")

            Expect.equal lines.Length 1 "one line"
            Expect.isFalse (lines.Head.Contains TestNumbers.AllowedDigits) "the number masked"
            Expect.isTrue (FrameReader.DefaultMaxMessageBytes > 65536) "a cap below the default was in force"
        }
    ]
