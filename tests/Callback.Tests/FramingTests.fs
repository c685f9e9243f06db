module Callback.Tests.FramingTests

open System
open System.Buffers
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Callback.Ami
open Callback.Tests.Frames
open Callback.Tests.RandomWire

let private readAll (text: string) =
    readAllFrom (FrameReader()) (ReadOnlySequence<byte>(bytes text))

let private readLine (text: string) =
    let mutable buffer = ReadOnlySequence<byte>(bytes text)
    let mutable line = null
    let ok = FrameReader().TryReadLine(&buffer, &line)
    ok, line, Encoding.UTF8.GetString(buffer.ToArray())

let private loginResponse =
    wire [ "Response: Success"; "ActionID: login-1"; "Message: Authentication accepted" ]

let private fullyBooted =
    wire [
        "Event: FullyBooted"
        "Privilege: system,all"
        "Uptime: 12"
        "LastReload: 12"
        "Status: Fully Booted"
    ]

let private successfulAuth =
    wire [
        "Event: SuccessfulAuth"
        "Privilege: security,all"
        "EventTV: 2025-01-01T00:00:00.000+0000"
        "Severity: Informational"
        "Service: AMI"
        "AccountID: callback"
    ]

let private command =
    wire [
        "Response: Success"
        "ActionID: cmd-1"
        "Message: Command output follows"
        "Output: Name/username   Host"
        "Output: "
        "Output: 1 sip peers"
        "Output: "
    ]

let private config = {
    FsCheckConfig.defaultConfig with
        maxTest = 300
}

[<Tests>]
let tests =
    testList "Framing" [
        testList "TryReadLine" [
            test "the greeting is read without its line end" {
                Expect.equal
                    (readLine "Asterisk Call Manager/11.0.0\r\nResponse: ")
                    (true, "Asterisk Call Manager/11.0.0", "Response: ")
                    "greeting"
            }

            test "a greeting ended by a bare LF is read too" {
                Expect.equal
                    (readLine "Asterisk Call Manager/10.0.0\n")
                    (true, "Asterisk Call Manager/10.0.0", "")
                    "greeting"
            }

            test "a greeting without its line end stays in the buffer" {
                Expect.equal
                    (readLine "Asterisk Call Manager/11.0")
                    (false, null, "Asterisk Call Manager/11.0")
                    "incomplete"
            }
        ]

        testList "TryReadMessage" [
            test "a message ends at the blank line and keeps its keys in order" {
                let messages, rest = readAll loginResponse

                Expect.equal
                    messages
                    [
                        message [
                            "Response", "Success"
                            "ActionID", "login-1"
                            "Message", "Authentication accepted"
                        ]
                    ]
                    "one message"

                Expect.equal rest.Length 0L "nothing left"
            }

            test "repeated keys are all kept, in order, empty Output included" {
                match readAll command with
                | [ m ], _ ->
                    Expect.equal
                        (Message.findAll "Output" m)
                        [| "Name/username   Host"; ""; "1 sip peers"; "" |]
                        "every Output"
                | other -> failtest $"%A{other}"
            }

            test "an empty value is the empty string" {
                Expect.equal
                    (fst (readAll "Output: \r\nOther:\r\n\r\n"))
                    [ message [ "Output", ""; "Other", "" ] ]
                    "empty values"
            }

            test "a value keeps its colons and all but the first space" {
                Expect.equal
                    (fst (readAll "Message: a: b\r\nEventTV: 2025-01-01T10:20:30\r\nPadded:  two\r\n\r\n"))
                    [
                        message [ "Message", "a: b"; "EventTV", "2025-01-01T10:20:30"; "Padded", " two" ]
                    ]
                    "values"
            }

            test "bare LF line ends are accepted, mixed with CRLF" {
                Expect.equal
                    (fst (readAll "Response: Error\nMessage: Missing action in request\r\n\n"))
                    [ message [ "Response", "Error"; "Message", "Missing action in request" ] ]
                    "LF"
            }

            test "values are decoded as UTF-8" {
                Expect.equal
                    (fst (readAll "CallerIDName: Hélène \U0001F4DE\r\n\r\n"))
                    [ message [ "CallerIDName", "Hélène \U0001F4DE" ] ]
                    "UTF-8"
            }

            test "an incomplete message is left in the buffer, untouched" {
                for text in
                    [
                        "Response: Success\r\nActionID: 1\r\n"
                        "Response: Success\r\nActionID: 1\r\n\r"
                        "Response: Suc"
                        ""
                    ] do
                    let original = ReadOnlySequence<byte>(bytes text)
                    let mutable buffer = original
                    let mutable read = Unchecked.defaultof<Message>
                    Expect.isFalse (FrameReader().TryReadMessage(&buffer, &read)) $"%A{text}"
                    Expect.equal buffer.Start original.Start "same start"
                    Expect.equal (buffer.ToArray()) (bytes text) "same bytes"
                    Expect.isTrue (obj.ReferenceEquals(read, null)) "no message"
            }

            test "the rest of an incomplete message completes it" {
                let messages, rest =
                    readIncrementally [ bytes "Response: Success\r\nAction"; bytes "ID: 1\r\n"; bytes "\r\n" ]

                Expect.equal messages [ message [ "Response", "Success"; "ActionID", "1" ] ] "one message"
                Expect.isEmpty rest "nothing left"
            }

            test "blank lines before a message are skipped" {
                Expect.equal
                    (fst (readAll "\r\n\r\nEvent: Shutdown\r\n\r\n"))
                    [ message [ "Event", "Shutdown" ] ]
                    "one message"
            }

            test "many messages in one buffer come out in order, and a partial one stays behind" {
                let messages, rest =
                    readAll (fullyBooted + command + loginResponse + "Event: Hangup\r\nChan")

                Expect.equal
                    (messages
                     |> List.map (Message.tryFind "Event" >> Option.orElse (Some "response")))
                    [ Some "FullyBooted"; Some "response"; Some "response" ]
                    "kinds"

                Expect.equal (Encoding.UTF8.GetString(rest.ToArray())) "Event: Hangup\r\nChan" "the partial message"
            }

            // One popular npm AMI client drops the events that arrive in the same read as its Login
            // response; here a single read holds all three.
            test "events arriving in the same read as the Login response are not lost" {
                let messages, rest = readAll (loginResponse + fullyBooted + successfulAuth)
                Expect.equal (messages |> List.map Message.kind) [ Response; Event; Event ] "all three"

                Expect.equal
                    (messages |> List.map (Message.tryFind "Event"))
                    [ None; Some "FullyBooted"; Some "SuccessfulAuth" ]
                    "the events"

                Expect.equal rest.Length 0L "nothing left"
            }

            test "an OriginateResponse event is read as an Event, with our ActionID" {
                match
                    readAll (
                        wire [
                            "Event: OriginateResponse"
                            "Privilege: call,all"
                            "ActionID: cb-7"
                            "Response: Failure"
                            "Channel: PJSIP/15145550123@trunk"
                            "Reason: 0"
                            "Uniqueid: <unknown>"
                        ]
                    )
                with
                | [ m ], _ ->
                    Expect.equal (Message.kind m) Event "kind"
                    Expect.equal (Message.actionId m) (Some "cb-7") "ActionID"
                    Expect.equal (Message.tryFind "Uniqueid" m) (Some "<unknown>") "Uniqueid"
                | other -> failtest $"%A{other}"
            }

            test "a message split across segments, inside a key, a value and a line end, is read whole" {
                let chunks =
                    [
                        "Respo"
                        "nse: Succ"
                        "ess\r"
                        "\nActionID: 4"
                        "2\r\n\r"
                        "\nEvent: Hangup\r\n\r\n"
                    ]
                    |> List.map bytes

                let messages, rest = readAllFrom (FrameReader()) (segmented chunks)

                Expect.equal
                    messages
                    [
                        message [ "Response", "Success"; "ActionID", "42" ]
                        message [ "Event", "Hangup" ]
                    ]
                    "two messages"

                Expect.equal rest.Length 0L "nothing left"
            }

            test "a UTF-8 character split across segments is decoded whole" {
                let all = bytes "CallerIDName: Hélène\r\n\r\n"
                let at = Array.IndexOf(all, 0xC3uy) + 1

                let messages, _ =
                    readAllFrom (FrameReader()) (segmented [ all[.. at - 1]; all[at..] ])

                Expect.equal messages [ message [ "CallerIDName", "Hélène" ] ] "decoded"
            }

            test "a reader keeps working across many messages (no line of one leaks into the next)" {
                let reader = FrameReader()

                let text =
                    String.Concat [
                        for i in 0..999 -> $"Key{i}: {i}\r\n" + String.replicate (i % 5) "X: y\r\n" + "\r\n"
                    ]

                let messages, _ = readAllFrom reader (ReadOnlySequence<byte>(bytes text))

                Expect.equal
                    messages
                    [
                        for i in 0..999 -> message (($"Key{i}", string i) :: List.replicate (i % 5) ("X", "y"))
                    ]
                    "every message"
            }

            test "a message keeps its own copy of its bytes: the pipe may reuse the buffer" {
                let buffer = bytes (loginResponse + fullyBooted)
                let messages, _ = readAllFrom (FrameReader()) (ReadOnlySequence<byte>(buffer))
                let before = messages |> List.map _.Headers
                Array.Fill(buffer, byte 'z')
                Expect.equal (messages |> List.map _.Headers) before "unchanged"
            }

            test "a long message, hundreds of lines across many segments, is read whole" {
                let lines = [ for i in 0..599 -> "Output", $"line {i} of a long command output" ]

                let all =
                    bytes (wire [ for k, v in ("Response", "Success") :: lines -> $"{k}: {v}" ])

                let chunks = all |> Array.chunkBySize 1000 |> List.ofArray

                let messages, rest = readAllFrom (FrameReader()) (segmented chunks)

                Expect.equal messages [ message (("Response", "Success") :: lines) ] "one message"
                Expect.equal rest.Length 0L "nothing left"
                Expect.isGreaterThan all.Length 16384 "longer than the first copy window"
            }

            testPropertyWithConfig config "random messages cut into random segments come out whole and in order"
            <| Prop.forAll (Arb.fromGen stream) (fun (messages, chunks) ->
                let read, rest = readAllFrom (FrameReader()) (segmented chunks)
                Expect.equal read messages "the messages"
                Expect.equal rest.Length 0L "nothing left")

            testPropertyWithConfig config "random messages fed in random reads come out whole and in order"
            <| Prop.forAll (Arb.fromGen stream) (fun (messages, chunks) ->
                let read, rest = readIncrementally chunks
                Expect.equal read messages "the messages"
                Expect.isEmpty rest "nothing left")
        ]
    ]
