/// The destination step of `POST /callback` (Handlers.checkDestination): a valid number the policy refuses
/// is answered 422 on `phoneNumber` before any AMI traffic, and the policy is the one configured.
module Callback.Tests.DestinationEndpointTests

open Expecto
open Callback.Tests.FakeAmi
open Callback.Tests.TestSidecar

let private sidecarFor (extra: (string * string) list) (port: int) =
    new Sidecar(fakeAmiConfig (("Ami:ResponseTimeout", "400") :: extra) port)

/// Posts `number` and checks the refusal: 422, the five false booleans, one error on phoneNumber with
/// `expected` in its message, and not one byte to the AMI server.
let private refused (extra: (string * string) list) (number: string) (expected: string) =
    use server = new Server(script asterisk, Some pki.Value.Server)
    use sidecar = sidecarFor extra server.Port
    let status, body = sidecar.Post(form [ "phoneNumber", number; "language", "en" ])
    Expect.equal (int status) 422 $"{number}: 422"
    Expect.equal (stages body) [ false; false; false; false; false ] "five false booleans"
    Expect.equal (errorFields body) [ "phoneNumber" ] "the number is at fault"
    Expect.stringContains body expected "the message says why"
    Expect.equal server.ReceivedByteCount 0L "zero AMI bytes"
    Expect.equal server.Sessions 0 "no AMI connection"

[<Tests>]
let tests =
    testSequenced
    <| testList "Destination policy at the endpoint" [
        // Catches a chain that skips checkDestination (bind → validate → place).
        test "a fictional 555-01XX number answers 422 and reaches no AMI server" {
            refused [] "(514) 555-0123" "reserved for fiction"
        }

        test "directory assistance, a 5XX personal number and a toll-free number answer 422 by default" {
            refused [] "514 555 1212" "Directory assistance"
            refused [] "500 234 5678" "personal"
            refused [] "1 800 234 5678" "toll-free"
        }

        // Catches a policy read from configuration but not handed to the handler (defaults used instead).
        test "Callback__DeniedAreaCodes refuses the allowed test number's area code" {
            refused [ "Callback:DeniedAreaCodes", "438,514" ] TestNumbers.Allowed "area code 514"
        }

        test "Callback__AllowedNumberTypes with TOLL_FREE places a toll-free callback" {
            use server = new Server(script asterisk, Some pki.Value.Server)

            use sidecar =
                sidecarFor [ "Callback:AllowedNumberTypes", "FIXED_LINE_OR_MOBILE,TOLL_FREE" ] server.Port

            let status, body =
                sidecar.Post(form [ "phoneNumber", "1 800 234 5678"; "language", "en" ])

            Expect.equal (int status) 200 "200"
            Expect.equal (stages body) [ true; true; true; true; true ] "placed"
            Expect.stringContains server.Received "Channel: PJSIP/18002345678@trunk\r\n" "the toll-free number"
        }
    ]
