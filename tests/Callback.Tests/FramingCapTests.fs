/// FrameReader's cap on one message: generous enough for any real event, enforced inside the reader
/// whatever the pipe's segments, and a message over it skipped to its end without ending the session.
module Callback.Tests.FramingCapTests

open System
open System.Buffers
open Expecto
open FsCheck
open FsCheck.FSharp
open Callback.Ami
open Callback.Tests.Frames
open Callback.Tests.RandomWire

let private readAll (text: string) =
    readAllFrom (FrameReader()) (ReadOnlySequence<byte>(bytes text)) |> fst

let private loginResponse =
    wire [ "Response: Success"; "ActionID: login-1"; "Message: Authentication accepted" ]

let private fullyBooted =
    wire [ "Event: FullyBooted"; "Privilege: system,all"; "Status: Fully Booted" ]

let private config = {
    FsCheckConfig.defaultConfig with
        maxTest = 200
}

[<Tests>]
let tests =
    testList "Framing cap" [
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
                Expect.equal messages (readAll (loginResponse + fullyBooted)) $"segments of {size}"
                Expect.equal rest.Length 0L "nothing left"
                Expect.equal reader.Skipped 1L "one skipped"

                let reader = FrameReader 4096
                let messages, rest = readIncrementallyWith reader (segmentsOf size all)
                Expect.equal messages (readAll (loginResponse + fullyBooted)) $"reads of {size}"
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

            Expect.equal messages (readAll loginResponse) "the big one skipped, the next one read"
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

            Expect.equal messages (readAll loginResponse) "the next message"
            Expect.equal rest.Length 0L "nothing left"
            Expect.equal reader.Skipped 1L "one skipped"
        }

        test "a cap too small for any message is refused when the reader is made" {
            Expect.throwsT<ArgumentException> (fun () -> FrameReader 63 |> ignore) "63 bytes"
            Expect.equal (FrameReader 64).MaxMessageBytes 64 "64 bytes"
        }

        // Catches noise counted as a message over the cap, which would then swallow the next real one.
        test "more blank lines than the cap between messages are dropped, and the next message is read" {
            let all = bytes (String.replicate 5000 "\r\n" + loginResponse)

            for size in [ 1; 4096; all.Length ] do
                let reader = FrameReader 4096
                let messages, rest = readAllFrom reader (segmented (segmentsOf size all))
                Expect.equal messages (readAll loginResponse) $"segments of {size}"
                Expect.equal rest.Length 0L "nothing left"
                Expect.equal reader.Skipped 0L "nothing skipped"
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

    ]
