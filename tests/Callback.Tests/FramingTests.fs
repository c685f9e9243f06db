module Callback.Tests.FramingTests

open System
open System.Buffers
open System.IO
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Callback.Ami

/// One piece of a multi-segment sequence, as a socket read would leave it in a pipe.
type private Chunk(memory: ReadOnlyMemory<byte>, runningIndex: int64) as this =
    inherit ReadOnlySequenceSegment<byte>()

    do
        this.Memory <- memory
        this.RunningIndex <- runningIndex

    member this.Append(bytes: byte[]) =
        let next = Chunk(ReadOnlyMemory bytes, this.RunningIndex + int64 this.Memory.Length)
        this.Next <- next
        next

/// The chunks as one sequence with a segment per chunk.
let private segmented (chunks: byte[] list) =
    match chunks with
    | [] -> ReadOnlySequence<byte>.Empty
    | first :: rest ->
        let start = Chunk(ReadOnlyMemory first, 0L)
        let last = rest |> List.fold (fun (c: Chunk) bytes -> c.Append bytes) start
        ReadOnlySequence<byte>(start, 0, last, last.Memory.Length)

let private bytes (text: string) = Encoding.UTF8.GetBytes text

/// The lines as Asterisk writes a message: each ended by CRLF, then the blank line.
let private wire (lines: string list) =
    String.concat "" (lines |> List.map (fun l -> l + "\r\n")) + "\r\n"

let private message (lines: (string * string) list) = {
    Headers = lines |> List.map (fun (k, v) -> { Key = k; Value = v }) |> Array.ofList
}

/// Every whole message at the front of `buffer`, and what is left after them.
let private readAllFrom (reader: FrameReader) (buffer: ReadOnlySequence<byte>) =
    let mutable buffer = buffer
    let mutable read = Unchecked.defaultof<Message>
    let messages = ResizeArray()

    while reader.TryReadMessage(&buffer, &read) do
        messages.Add read

    List.ofSeq messages, buffer

let private readAll (text: string) =
    readAllFrom (FrameReader()) (ReadOnlySequence<byte>(bytes text))

/// Feeds the chunks one at a time, as reads from a socket: append, take every whole message, keep the rest.
let private readIncrementally (chunks: byte[] list) =
    let reader = FrameReader()

    let messages, rest =
        ((([], [||]): Message list * byte[]), chunks)
        ||> List.fold (fun (messages, pending) chunk ->
            let found, rest =
                readAllFrom reader (ReadOnlySequence<byte>(Array.append pending chunk))

            messages @ found, rest.ToArray())

    messages, rest

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

// Generated messages: keys without CR, LF or ':' (some repeated, as Output and Variable are), values of any
// text but CR and LF, each line ended by CRLF or a bare LF.
let private stringOf (chars: Gen<char>) (minLength: int) (maxLength: int) =
    Gen.choose (minLength, maxLength)
    |> Gen.bind (fun n -> Gen.sequenceToList (List.replicate n chars))
    |> Gen.map (Array.ofList >> String)

let private key =
    Gen.frequency [
        3,
        Gen.elements [
            "Event"
            "Response"
            "ActionID"
            "Output"
            "Variable"
            "ChanVariable"
            "Message"
        ]
        2, stringOf (Gen.elements ([ 'A' .. 'Z' ] @ [ 'a' .. 'z' ] @ [ '0' .. '9' ] @ [ '-'; '_'; 'é' ])) 1 24
    ]

let private value =
    let c =
        Gen.frequency [
            6, Gen.choose (0x20, 0x7E) |> Gen.map char
            1, Gen.elements [ ':'; ' '; '\t'; 'é'; '€'; '\000' ]
            1, Gen.choose (0x80, 0xD7FF) |> Gen.map char
        ]

    Gen.frequency [
        1, Gen.constant ""
        1, Gen.elements [ "\U0001F4DE"; "a: b"; " leading space"; "trailing space " ]
        6, stringOf c 0 30
    ]

let private generatedMessage =
    Gen.nonEmptyListOf (Gen.zip key value)
    |> Gen.map (List.truncate 12)
    |> Gen.map message

let private lineEnd = Gen.frequency [ 4, Gen.constant "\r\n"; 1, Gen.constant "\n" ]

/// The wire text of a message, each line (the blank one included) ended by CRLF or LF.
let private wireText (m: Message) =
    gen {
        let! ends = Gen.sequenceToList (List.replicate (m.Headers.Length + 1) lineEnd)

        let lines =
            Array.toList m.Headers
            |> List.map (fun h -> $"{h.Key}: {h.Value}")
            |> fun ls -> ls @ [ "" ]

        return String.Concat(List.map2 (+) lines ends)
    }

/// The bytes cut at random places into chunks, empty chunks included.
let private chunksOf (all: byte[]) =
    gen {
        let! cuts =
            Gen.listOf (Gen.choose (0, all.Length)) |> Gen.map (List.sort >> List.distinct)

        let! empties = Gen.elements [ true; false ]
        let bounds = 0 :: cuts @ [ all.Length ] |> List.pairwise
        let chunks = bounds |> List.map (fun (a, b) -> all[a .. b - 1])

        return
            if empties then
                chunks |> List.collect (fun c -> [ c; [||] ])
            else
                chunks
    }

let private stream =
    gen {
        let! messages = Gen.listOf generatedMessage |> Gen.map (List.truncate 20)
        let! texts = Gen.sequenceToList (List.map wireText messages)
        let all = bytes (String.Concat texts)
        let! chunks = chunksOf all
        return messages, chunks
    }

// Recorded Asterisk 22 AMI connections (see tests/fixtures/ami/README.md), copied next to the test assembly.
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

            test "a reader keeps working across many keys (its key cache never mixes them up)" {
                let reader = FrameReader()

                let text =
                    String.Concat [ for i in 0..999 -> $"Key{i}: {i}\r\nX-{i % 7}: y\r\n\r\n" ]

                let messages, _ = readAllFrom reader (ReadOnlySequence<byte>(bytes text))

                Expect.equal
                    messages
                    [ for i in 0..999 -> message [ $"Key{i}", string i; $"X-{i % 7}", "y" ] ]
                    "every key"
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
                { config with maxTest = 50 }
                "a recording cut into random reads gives the same messages"
            <| Prop.forAll (Arb.fromGen recordedReads) (fun (file, chunks) ->
                if Directory.Exists fixtureDir then
                    let _, whole, _ = readTranscript (fixture file)
                    let read, rest = readIncrementally chunks
                    Expect.equal read whole file
                    Expect.isEmpty rest "nothing left")
        ]
    ]
