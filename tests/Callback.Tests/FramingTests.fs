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

/// The lines as Asterisk writes a message: each ended by CRLF, then the blank line.
let private wire (lines: string list) =
    String.concat "" (lines |> List.map (fun l -> l + "\r\n")) + "\r\n"

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

            // The old cap was 64 KiB and ended the session: a legal event with many variables, arriving
            // before the Login response, failed the callback with 502.
            test "an event of 120 ChanVariable lines, over 64 KiB, is read whole with the default cap" {
                let variables = [ for i in 1..120 -> "ChanVariable", $"VAR_{i}=" + String('v', 600) ]

                let all =
                    bytes (wire [ for k, v in ("Event", "VarSet") :: variables -> $"{k}: {v}" ])

                Expect.isGreaterThan all.Length (64 * 1024) "over the old cap"

                for size in [ 1; 4096; 16384 ] do
                    let messages, rest = readAllFrom (FrameReader()) (segmented (segmentsOf size all))
                    Expect.equal messages [ message (("Event", "VarSet") :: variables) ] $"one message ({size})"
                    Expect.equal rest.Length 0L "nothing left"
            }

            test "the default cap is at least 1 MiB" {
                Expect.isGreaterThanOrEqual FrameReader.DefaultMaxMessageBytes (1024 * 1024) "1 MiB"
                Expect.equal (FrameReader()).MaxMessageBytes FrameReader.DefaultMaxMessageBytes "the default"
            }

            // Catches a cap left to the caller (the pipe's buffer length) instead of enforced here.
            test "a message over the cap is skipped to its end and the next one is read, whatever the segments" {
                let huge = wire [ "Event: Huge"; "Data: " + String('x', 10_000) ]
                let all = bytes (loginResponse + huge + fullyBooted)

                for size in [ 1; 2; 3; 7; 64; 1000; 4095; 4096; 4097; all.Length ] do
                    let reader = FrameReader 4096
                    let messages, rest = readAllFrom reader (segmented (segmentsOf size all))
                    Expect.equal messages (readAll (loginResponse + fullyBooted) |> fst) $"segments of {size}"
                    Expect.equal rest.Length 0L "nothing left"
                    Expect.equal reader.Skipped 1L "one skipped"

                    let reader = FrameReader 4096
                    let messages, rest = readIncrementallyWith reader (segmentsOf size all)
                    Expect.equal messages (readAll (loginResponse + fullyBooted) |> fst) $"reads of {size}"
                    Expect.isEmpty rest "nothing left"
                    Expect.equal reader.Skipped 1L "one skipped"
            }

            // Catches an off-by-one at the cap, and a message cut at the cap instead of skipped.
            test "a message of exactly the cap is read; one byte more is skipped, never cut short" {
                let ofLength n =
                    let overhead = (wire [ "Event: E"; "Data: " ]).Length
                    wire [ "Event: E"; "Data: " + String('x', n - overhead) ]

                let exact = ofLength 4096
                Expect.equal (bytes exact).Length 4096 "exactly the cap"

                let messages, _ =
                    readAllFrom (FrameReader 4096) (ReadOnlySequence<byte>(bytes exact))

                Expect.equal messages.Length 1 "read"

                let reader = FrameReader 4096

                let messages, rest =
                    readAllFrom reader (ReadOnlySequence<byte>(bytes (ofLength 4097 + loginResponse)))

                Expect.equal messages (readAll loginResponse |> fst) "the big one skipped, the next one read"
                Expect.equal rest.Length 0L "nothing left"
                Expect.equal reader.Skipped 1L "counted"
            }

            test "while the end of a skipped message has not come, the reader waits and keeps nothing of it" {
                let reader = FrameReader 4096
                let start = bytes ("Event: Huge\r\nData: " + String('x', 9000))
                let messages, rest = readAllFrom reader (ReadOnlySequence<byte>(start))
                Expect.isEmpty messages "nothing yet"
                Expect.equal rest.Length 0L "what came of it is dropped"
                // Its blank line split across reads: LF, then CR LF.
                let messages, _ = readAllFrom reader (ReadOnlySequence<byte>(bytes "xxx\n"))
                Expect.isEmpty messages "still inside it"

                let messages, rest =
                    readAllFrom reader (ReadOnlySequence<byte>(bytes ("\r\n" + loginResponse)))

                Expect.equal messages (readAll loginResponse |> fst) "the next message"
                Expect.equal rest.Length 0L "nothing left"
                Expect.equal reader.Skipped 1L "one skipped"
            }

            testPropertyWithConfig config "messages over the cap are skipped and counted, the others come out in order"
            <| Prop.forAll (Arb.fromGen streamWithOversized) (fun (kept, skipped, chunks) ->
                let reader = FrameReader smallCap
                let read, rest = readAllFrom reader (segmented chunks)
                Expect.equal read kept "the messages under the cap"
                Expect.equal rest.Length 0L "nothing left"
                Expect.equal reader.Skipped (int64 skipped) "every one over it counted"

                let reader = FrameReader smallCap
                let read, rest = readIncrementallyWith reader chunks
                Expect.equal read kept "fed in reads"
                Expect.isEmpty rest "nothing left"
                Expect.equal reader.Skipped (int64 skipped) "counted")

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
