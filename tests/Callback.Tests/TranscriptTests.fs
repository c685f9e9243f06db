/// The frame reader on recorded Asterisk 22 AMI connections (see tests/fixtures/ami/README.md), copied next
/// to the test assembly: what a real Asterisk writes is read whole, message by message, however it is cut.
module Callback.Tests.TranscriptTests

open System
open System.Buffers
open System.IO
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Callback.Ami
open Callback.Tests.Frames

let private fixtureDir = Path.Combine(AppContext.BaseDirectory, "fixtures", "ami")

let private fixture (name: string) =
    File.ReadAllBytes(Path.Combine(fixtureDir, name))

/// A recording read as the connection reads it: the banner line if the file starts with one, then
/// every message, then the number of bytes left over.
let private readTranscript (all: byte[]) =
    let reader = FrameReader()
    let mutable buffer = ReadOnlySequence<byte>(all)
    let mutable banner = null

    let greeting =
        if
            Encoding.ASCII.GetString(all).StartsWith "Asterisk Call Manager/"
            && reader.TryReadLine(&buffer, &banner)
        then
            Some banner
        else
            None

    let messages, rest = readAllFrom reader buffer
    greeting, messages, rest.Length

/// A test over one recorded transcript; skipped, saying why, in a checkout without the recordings.
let private transcriptTest (name: string) (file: string) (check: string option -> Message list -> unit) =
    testCase name (fun () ->
        if not (Directory.Exists fixtureDir) then
            failtest "tests/fixtures/ami is missing from the test program's folder"

        let greeting, messages, left = readTranscript (fixture file)
        Expect.equal left 0L $"{file}: bytes left over"
        check greeting messages)

/// A recording after its banner line, cut into random reads.
let private recordedReads =
    Gen.elements [ "events-callback.txt"; "originate-with-events.txt" ]
    |> Gen.bind (fun file ->
        if Directory.Exists fixtureDir then
            let all = fixture file

            chunksOf all[Array.IndexOf(all, byte '\n') + 1 ..]
            |> Gen.map (fun chunks -> file, chunks)
        else
            Gen.constant (file, []))

let private single (m: Message list) =
    match m with
    | [ only ] -> only
    | other -> failtest $"expected one message, got {other.Length}"

let private events (messages: Message list) =
    messages |> List.filter (fun m -> Message.kind m = Event)

let private named (event: string) (messages: Message list) =
    messages |> List.filter (fun m -> Message.tryFind "Event" m = Some event)

// In the Framing list, beside the reader's other tests: `--filter-test-list Framing` runs them all.
[<Tests>]
let tests =
    testList "Framing" [
        testList "recorded transcripts" [
            transcriptTest "the greeting is the banner line alone" "greeting.txt" (fun greeting messages ->
                Expect.equal greeting (Some "Asterisk Call Manager/11.0.0") "banner"
                Expect.isEmpty messages "no message")

            for file, response, actionId, text in
                [
                    "login-success.txt", "Success", "login-1", "Authentication accepted"
                    "login-failure.txt", "Error", "login-3", "Authentication failed"
                    "originate-queued.txt", "Success", "originate-1", "Originate successfully queued"
                    "permission-denied.txt", "Error", "command-1", "Permission denied"
                    "logoff.txt", "Goodbye", "logoff-1", "Thanks for all the fish."
                ] do
                transcriptTest $"{file} is one {response} response to {actionId}" file (fun greeting messages ->
                    let m = single messages
                    Expect.isNone greeting "no banner"
                    Expect.equal (Message.kind m) Response "kind"

                    Expect.equal
                        m
                        (message [ "Response", response; "ActionID", actionId; "Message", text ])
                        "the message")

            transcriptTest
                "a whole monitoring connection is 95 messages: 93 events between the Login and Logoff responses"
                "events-callback.txt"
                (fun greeting messages ->
                    Expect.equal greeting (Some "Asterisk Call Manager/11.0.0") "banner"
                    Expect.equal messages.Length 95 "messages"
                    Expect.equal (events messages).Length 93 "events"
                    Expect.equal (Message.actionId messages.Head) (Some "monitor-login") "first, the Login response"

                    Expect.equal
                        (Message.tryFind "Response" (List.last messages))
                        (Some "Goodbye")
                        "last, the Logoff response")

            transcriptTest
                "every recorded event has Privilege as its second line"
                "events-callback.txt"
                (fun _ messages ->
                    for e in events messages do
                        let name = Message.tryFind "Event" e
                        Expect.equal e.Headers[1].Key "Privilege" $"%A{name}")

            transcriptTest "a TestEvent's repeated State line is kept twice" "events-callback.txt" (fun _ messages ->
                let callIdChanges =
                    named "TestEvent" messages
                    |> List.filter (fun e -> Message.tryFind "State" e = Some "CallIDChange")

                Expect.hasLength callIdChanges 5 "CallIDChange TestEvents"

                for e in callIdChanges do
                    Expect.equal (Message.findAll "State" e) [| "CallIDChange"; "CallIDChange" |] "both State lines")

            transcriptTest
                "an empty recorded value (AccountCode: ) is the empty string"
                "events-callback.txt"
                (fun _ messages ->
                    let newchannel = named "Newchannel" messages |> List.head
                    Expect.equal (Message.tryFind "AccountCode" newchannel) (Some "") "AccountCode")

            transcriptTest
                "a recorded value with a colon (RequestType: Action: Command) is kept whole"
                "events-callback.txt"
                (fun _ messages ->
                    let refused = named "RequestNotAllowed" messages |> List.exactlyOne
                    Expect.equal (Message.tryFind "RequestType" refused) (Some "Action: Command") "RequestType")

            transcriptTest
                "another connection's OriginateResponse is an Event carrying that connection's ActionID"
                "events-callback.txt"
                (fun _ messages ->
                    let originate = named "OriginateResponse" messages |> List.exactlyOne
                    Expect.equal (Message.kind originate) Event "kind"
                    Expect.equal (Message.actionId originate) (Some "originate-1") "ActionID"
                    Expect.equal (Message.tryFind "Response" originate) (Some "Success") "its Response header")

            transcriptTest
                "on one stream, only the queued answer is a Response to the Originate; its outcome is an Event"
                "originate-with-events.txt"
                (fun greeting messages ->
                    Expect.equal greeting (Some "Asterisk Call Manager/11.0.0") "banner"
                    Expect.equal messages.Length 41 "messages"

                    let mine =
                        messages |> List.filter (fun m -> Message.actionId m = Some "originate-2")

                    Expect.equal
                        (mine |> List.map (fun m -> Message.kind m, Message.tryFind "Response" m))
                        [ Response, Some "Success"; Event, Some "Success" ]
                        "the answer, then the OriginateResponse event"

                    Expect.equal (Message.tryFind "Message" mine.Head) (Some "Originate successfully queued") "queued")

            testPropertyWithConfig
                {
                    FsCheckConfig.defaultConfig with
                        maxTest = 50
                }
                "a recording cut into random reads gives the same messages"
            <| Prop.forAll (Arb.fromGen recordedReads) (fun (file, chunks) ->
                if Directory.Exists fixtureDir then
                    let _, whole, _ = readTranscript (fixture file)
                    let read, rest = readIncrementally chunks
                    Expect.equal read whole file
                    Expect.isEmpty rest "nothing left")
        ]
    ]
