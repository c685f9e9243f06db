module Callback.Tests.MessageTests

open System
open System.Buffers
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Callback.Ami

let private message (lines: (string * string) list) =
    lines |> List.map (fun (k, v) -> { Key = k; Value = v }) |> Message.ofHeaders

let private action name actionId headers = {
    Name = name
    ActionId = actionId
    Headers = headers
}

/// The encoded action as text, or the reason it was refused.
let private encodeText (a: Action) =
    Action.encode a
    |> Result.map (fun encoded -> Encoding.UTF8.GetString encoded.Bytes.Span)

let private login =
    action "Login" "x" [ "Username", "u"; "Secret", "s"; "Events", "off" ]

let private stringOf (chars: Gen<char>) (minLength: int) (maxLength: int) =
    Gen.choose (minLength, maxLength)
    |> Gen.bind (fun n -> Gen.sequenceToList (List.replicate n chars))
    |> Gen.map (Array.ofList >> String)

let private keyChar =
    Gen.elements ([ 'A' .. 'Z' ] @ [ 'a' .. 'z' ] @ [ '0' .. '9' ] @ [ '-'; '_' ])

/// Text that may go on the wire: anything but CR, LF, NUL and lone surrogates.
let private safeChar =
    Gen.frequency [
        5, Gen.choose (0x20, 0x7E) |> Gen.map char
        1, Gen.choose (0x01, 0xD7FF) |> Gen.map char
    ]
    |> Gen.filter (fun c -> c <> '\r' && c <> '\n')

let private key = stringOf keyChar 1 20
let private value = stringOf safeChar 0 40
let private forbidden = Gen.elements [ "\r"; "\n"; "\000"; "\r\n" ]

/// Stands for a secret: long enough that finding it in an error's text would not be a coincidence.
let private secret = stringOf (Gen.elements ([ 'a' .. 'z' ] @ [ '0' .. '9' ])) 8 16

let private config = {
    FsCheckConfig.defaultConfig with
        maxTest = 300
}

[<Tests>]
let tests =
    testList "Message" [
        testList "Action.encode" [
            test "a Login is written byte for byte: Action, ActionID, the headers, CRLF each, a blank line" {
                match Action.encode login with
                | Ok encoded ->
                    let expected =
                        "Action: Login\r\nActionID: x\r\nUsername: u\r\nSecret: s\r\nEvents: off\r\n\r\n"

                    Expect.equal (encoded.Bytes.ToArray()) (Encoding.ASCII.GetBytes expected) "the bytes"
                | Error e -> failtest $"%A{e}"
            }

            test "values are written as UTF-8" {
                Expect.equal
                    (encodeText (action "Originate" "1" [ "CallerID", "Hélène <100>" ]))
                    (Ok "Action: Originate\r\nActionID: 1\r\nCallerID: Hélène <100>\r\n\r\n")
                    "the text"
            }

            test "an empty value is written as an empty value" {
                Expect.equal
                    (encodeText (action "Ping" "1" [ "Variable", "" ]))
                    (Ok "Action: Ping\r\nActionID: 1\r\nVariable: \r\n\r\n")
                    "the text"
            }

            testPropertyWithConfig config "headers are written in the order given, repeated keys included"
            <| Prop.forAll
                (Arb.fromGen (Gen.listOf (Gen.zip (Gen.oneof [ key; Gen.constant "Variable" ]) value)))
                (fun headers ->
                    let expected =
                        "Action: Originate\r\nActionID: 7\r\n"
                        + String.concat "" (headers |> List.map (fun (k, v) -> $"{k}: {v}\r\n"))
                        + "\r\n"

                    Expect.equal (encodeText (action "Originate" "7" headers)) (Ok expected) "the text")

            test "CR, LF or NUL in a value is refused, naming the key" {
                for bad in [ "a\rb"; "a\nb"; "a\000b"; "\r\nAction: Hangup"; "trailing\n" ] do
                    Expect.equal
                        (encodeText (action "Login" "1" [ "Username", "u"; "Secret", bad ]))
                        (Error(ForbiddenCharacter "Secret"))
                        $"%A{bad}"
            }

            test "CR, LF or NUL in the action name or ActionID is refused" {
                Expect.equal
                    (encodeText (action "Login\r\nAction: Hangup" "1" []))
                    (Error(ForbiddenCharacter "Action"))
                    "name"

                Expect.equal (encodeText (action "Login" "1\n" [])) (Error(ForbiddenCharacter "ActionID")) "ActionID"
                Expect.equal (encodeText (action "Login" "1\000" [])) (Error(ForbiddenCharacter "ActionID")) "NUL"
            }

            test "CR, LF or NUL in a key is refused" {
                for bad in [ "Sec\rret"; "Secret\n"; "\000Secret" ] do
                    Expect.equal
                        (encodeText (action "Login" "1" [ bad, "s" ]))
                        (Error(ForbiddenCharacter bad))
                        $"%A{bad}"
            }

            test "a null value is refused, not written as an empty one" {
                Expect.equal
                    (encodeText (action "Login" "1" [ "Secret", null ]))
                    (Error(ForbiddenCharacter "Secret"))
                    "null value"

                Expect.equal
                    (encodeText (action "Login" null []))
                    (Error(ForbiddenCharacter "ActionID"))
                    "null ActionID"
            }

            test "an empty key, a key with a colon or with surrounding spaces is an InvalidKey" {
                for bad in [ ""; "Caller:ID"; "Secret:"; " Secret"; "Secret "; "Sec ret " ] do
                    Expect.equal (encodeText (action "Login" "1" [ bad, "s" ])) (Error(InvalidKey bad)) $"%A{bad}"
            }

            testPropertyWithConfig
                config
                "a value holding CR, LF or NUL is refused, and the error never holds the value"
            <| Prop.forAll
                (Arb.fromGen (
                    gen {
                        let! before = secret
                        let! bad = forbidden
                        let! after = secret
                        let! k = Gen.elements [ "Secret"; "Username"; "Variable"; "Key" ]

                        let! others =
                            Gen.listOf (Gen.zip (Gen.elements [ "Channel"; "Exten" ]) (stringOf keyChar 0 10))

                        let! at = Gen.choose (0, others.Length)
                        return k, before + bad + after, List.insertAt at (k, before + bad + after) others
                    }
                ))
                (fun (k, badValue, headers) ->
                    let result = encodeText (action "Login" "1" headers)
                    Expect.equal result (Error(ForbiddenCharacter k)) "refused, naming the key only"

                    let shown = $"%A{result} {result}"

                    for part in badValue.Split([| '\r'; '\n'; '\000' |], StringSplitOptions.RemoveEmptyEntries) do
                        Expect.isFalse (shown.Contains part) $"the error shows part of the value: {shown}")

            testPropertyWithConfig config "a line too long is refused naming the key, not the value"
            <| Prop.forAll
                (Arb.fromGen (Gen.choose (1020, 1100) |> Gen.map (fun n -> String('s', n))))
                (fun longValue ->
                    match encodeText (action "Login" "1" [ "Secret", longValue ]) with
                    | Error(LineTooLong "Secret") -> ()
                    | other -> failtest $"%A{other}")

            test "a line of 1023 bytes with its CRLF is accepted" {
                // "Variable: " is 10 bytes, CRLF 2: 1011 bytes of value make 1023.
                let text = encodeText (action "Set" "1" [ "Variable", String('v', 1011) ])
                Expect.isOk text "accepted"

                let line =
                    (Result.defaultValue "" text).Split "\r\n"
                    |> Array.find _.StartsWith("Variable")

                Expect.equal (line.Length + 2) 1023 "the line with its CRLF"
            }

            test "a line of 1024 bytes with its CRLF is refused" {
                Expect.equal
                    (encodeText (action "Set" "1" [ "Variable", String('v', 1012) ]))
                    (Error(LineTooLong "Variable"))
                    "refused"
            }

            test "line length is counted in UTF-8 bytes, not characters" {
                // 'é' is two bytes: 506 of them are 1012 bytes in 506 characters.
                Expect.equal
                    (encodeText (action "Set" "1" [ "Variable", String('é', 506) ]))
                    (Error(LineTooLong "Variable"))
                    "1024 bytes"

                Expect.isOk (encodeText (action "Set" "1" [ "Variable", String('é', 505) + "v" ])) "1023 bytes"
            }

            test "the Action and ActionID lines are held to the same limit" {
                Expect.equal (encodeText (action (String('A', 1016)) "1" [])) (Error(LineTooLong "Action")) "Action"

                Expect.equal
                    (encodeText (action "Ping" (String('1', 1012)) []))
                    (Error(LineTooLong "ActionID"))
                    "ActionID"
            }

            test "128 lines, Action and ActionID included, are accepted" {
                let headers = List.init 126 (fun i -> "Variable", $"v{i}=1")
                Expect.isOk (encodeText (action "Originate" "1" headers)) "128 lines"
            }

            test "129 lines are refused with the count" {
                let headers = List.init 127 (fun i -> "Variable", $"v{i}=1")
                Expect.equal (encodeText (action "Originate" "1" headers)) (Error(TooManyLines 129)) "129 lines"
            }
        ]

        testList "reading" [
            test "a message whose first key is Response is a Response" {
                Expect.equal
                    (Message.kind (
                        message [ "Response", "Success"; "ActionID", "1"; "Message", "Authentication accepted" ]
                    ))
                    Response
                    "kind"
            }

            test "a message whose first key is Event is an Event" {
                Expect.equal (Message.kind (message [ "Event", "FullyBooted"; "Privilege", "system,all" ])) Event "kind"
            }

            test "OriginateResponse is an Event even though it carries Response and our ActionID" {
                let originateResponse =
                    message [
                        "Event", "OriginateResponse"
                        "ActionID", "cb-42"
                        "Response", "Success"
                        "Channel", "PJSIP/trunk-00000001"
                        "Reason", "4"
                    ]

                Expect.equal (Message.kind originateResponse) Event "kind"
                Expect.equal (Message.actionId originateResponse) (Some "cb-42") "it still has our ActionID"
            }

            test "a Response that mentions Event later is still a Response" {
                Expect.equal (Message.kind (message [ "Response", "Success"; "Event", "x" ])) Response "kind"
            }

            test "the first key is compared without case" {
                Expect.equal (Message.kind (message [ "event", "Hangup" ])) Event "event"
                Expect.equal (Message.kind (message [ "RESPONSE", "Error" ])) Response "RESPONSE"
            }

            test "a message starting with another key, or with none, is Unknown" {
                Expect.equal
                    (Message.kind (message [ "ActionID", "1"; "Response", "Success" ]))
                    Unknown
                    "other first key"

                Expect.equal (Message.kind (message [])) Unknown "no headers"
            }

            test "tryFind ignores the case of the key and returns the first match" {
                let m = message [ "Response", "Success"; "ActionID", "abc"; "actionid", "second" ]
                Expect.equal (Message.tryFind "actionid" m) (Some "abc") "lower case"
                Expect.equal (Message.tryFind "ACTIONID" m) (Some "abc") "upper case"
                Expect.equal (Message.actionId m) (Some "abc") "actionId"
                Expect.equal (Message.tryFind "Channel" m) None "absent"
            }

            test "findAll keeps repeated keys in order" {
                let command =
                    message [
                        "Response", "Success"
                        "Message", "Command output follows"
                        "Output", "Name/username"
                        "Output", ""
                        "output", "2 sip peers"
                        "Output", ""
                    ]

                Expect.equal
                    (Message.findAll "Output" command)
                    [| "Name/username"; ""; "2 sip peers"; "" |]
                    "every Output"

                Expect.equal (Message.findAll "ChanVariable" command) [||] "none"
            }
        ]

        testList "round trip" [
            testPropertyWithConfig config "what the encoder writes, the frame reader reads back line for line"
            <| Prop.forAll (Arb.fromGen (Gen.listOf (Gen.zip key value))) (fun headers ->
                match Action.encode (action "Originate" "rt-1" headers) with
                | Error e -> failtest $"%A{e}"
                | Ok encoded ->
                    let mutable buffer = ReadOnlySequence<byte>(encoded.Bytes)
                    let mutable read = Unchecked.defaultof<Message>
                    Expect.isTrue (FrameReader().TryReadMessage(&buffer, &read)) "one whole message"
                    Expect.equal read (message ([ "Action", "Originate"; "ActionID", "rt-1" ] @ headers)) "the lines"
                    Expect.equal buffer.Length 0L "nothing left")
        ]
    ]
