/// What `POST /callback` makes of unusual AMI traffic, seen from the outside: the answer and the log.
module Callback.Tests.AmiEndpointTests

open Expecto
open Callback.Ami
open Callback.Tests.FakeAmi
open Callback.Tests.TestSidecar

[<Tests>]
let tests =
    testList "AMI traffic at the endpoint" [
        // Catches a skipped message that is counted but never reported, or reported once per read.
        test "an event over Ami__MaxMessageBytes is skipped, the callback placed, and one log line says so" {
            let hugeFirst (a: ReceivedAction) =
                $"Event: Huge\r\nData: {System.String('x', 100_000)}\r\n\r\n"
                + response "Success" a.ActionId "Authentication accepted"

            use server =
                new Server(script (asteriskExcept "Login" (hugeFirst >> Send)), Some pki.Value.Server)

            use sidecar =
                new Sidecar(
                    [
                        "Ami:Host", "127.0.0.1"
                        "Ami:Port", string server.Port
                        "Ami:CaCertificate", pki.Value.WriteCaPem()
                        "Ami:Username", "callback"
                        "Ami:Secret", "s3cret-Value"
                        "Ami:MaxMessageBytes", "65536"
                        "Originate:Channel", "PJSIP/{number}@trunk"
                    ]
                )

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
