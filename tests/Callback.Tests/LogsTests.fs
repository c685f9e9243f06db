module Callback.Tests.LogsTests

open System
open System.Net.Http
open System.Text.Json
open Expecto
open Callback.Tests.FakeAmi
open Callback.Tests.Programs
open Callback.Tests.TestSidecar

let private secret = "s3cret-Value"
let private number = "5145550401"

/// The sidecar program with the console formatter `formatter`, given callbacks that log (spooled, a
/// refused Login, a rate-limited and an invalid one), stopped; everything it wrote.
let private outputWith (formatter: string) =
    use server =
        new Server(script (refusing "Login" "Authentication failed"), Some pki.Value.Server)

    use sidecar =
        SidecarProgram.start [
            "Ami__Host", "127.0.0.1"
            "Ami__Port", string server.Port
            "Ami__CaCertificate", pki.Value.WriteCaPem()
            "Ami__Username", "callback"
            "Ami__Secret", secret
            "Originate__Channel", "PJSIP/{number}@trunk"
            "Logging__Console__FormatterName", formatter
        ]

    Expect.isTrue (sidecar.AwaitHealthy()) $"the sidecar starts:\n{sidecar.Program.Output}"
    use client = new HttpClient()

    let post (phone: string) (language: string) =
        client
            .PostAsync(sidecar.Url + "callback", form [ "phoneNumber", phone; "language", language ])
            .Result.StatusCode
        |> int

    let statuses = [ post number "en"; post $"+1 {number}" "en"; post number "de" ]
    Expect.equal statuses [ 502; 429; 422 ] "a refused Login, the number again, an invalid language"
    stop sidecar.Program.Process
    sidecar.Program.Output

let private neverLeaks (output: string) =
    Expect.isFalse (output.Contains secret) "the secret is never written"
    // Mutation caught: logging the number unmasked (in any spelling the visitor sent it or we dial it).
    Expect.isFalse (output.Contains number) "the full number is never written"
    Expect.isFalse (output.Contains "15145550401") "nor the 11 digits we dial"
    Expect.stringContains output "1514*****01" "the masked number shows the callback was logged"

/// The sidecar program on a fake Asterisk that spools every call: one callback, then its status read
/// and streamed, then stopped; the callId it answered and everything the program wrote.
let private spooledOutput () =
    use server = new Server(script asterisk, Some pki.Value.Server)

    use sidecar =
        SidecarProgram.start [
            "Ami__Host", "127.0.0.1"
            "Ami__Port", string server.Port
            "Ami__CaCertificate", pki.Value.WriteCaPem()
            "Ami__Username", "callback"
            "Ami__Secret", secret
            "Originate__Channel", "PJSIP/{number}@trunk"
        ]

    Expect.isTrue (sidecar.AwaitHealthy()) $"the sidecar starts:\n{sidecar.Program.Output}"
    use client = new HttpClient()

    let answer =
        client.PostAsync(sidecar.Url + "callback", form [ "phoneNumber", number; "language", "en" ]).Result

    Expect.equal (int answer.StatusCode) 200 "spooled"
    let body = answer.Content.ReadAsStringAsync().Result
    let callId = JsonDocument.Parse(body).RootElement.GetProperty("callId").GetString()
    client.GetAsync(sidecar.Url + $"calls/{callId}").Result.Dispose()
    client.GetAsync(sidecar.Url + $"calls/{callId}/events").Result.Dispose()
    stop sidecar.Program.Process
    callId, sidecar.Program.Output

[<Tests>]
let tests =
    testSequenced
    <| testList "Logs" [
        test "the simple console format never writes the secret or a full number" {
            let output = outputWith "simple"
            neverLeaks output
            Expect.stringContains output "warn: Callback" "simple format"
        }

        test "JSON console logs are one JSON object a line and never write the secret or a full number" {
            let output = outputWith "json"
            neverLeaks output

            let objects =
                output.Split('\n')
                |> Array.filter (fun line -> line.TrimStart().StartsWith "{")
                |> Array.map (fun line -> JsonDocument.Parse line)

            Expect.isNonEmpty objects "JSON lines"

            Expect.exists
                objects
                (fun doc -> doc.RootElement.GetProperty("Message").GetString().Contains "1514*****01")
                "the callback's line, as JSON"
        }

        // Catches logging the whole callId (the capability that reads the call's status) anywhere.
        test "a spooled callback is logged with its id's first 8 hex digits, and the whole id is never written" {
            let callId, output = spooledOutput ()
            Expect.stringContains output $"Callback {callId.Substring(0, 8)} to 1514*****01" "the short id"
            Expect.isFalse (output.Contains callId) "never the whole id"
        }
    ]
