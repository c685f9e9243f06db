module Callback.Tests.CallIdTests

open Expecto
open Callback.Domain

let private many = List.init 1000 (fun _ -> CallId.create ())

[<Tests>]
let tests =
    testList "CallId" [
        test "a call id is 32 lower-case hex digits that parse back to itself" {
            for id in many do
                let text = CallId.value id
                Expect.equal text.Length 32 "128 bits as hex"
                Expect.equal (CallId.tryParse text) (Some id) text
        }

        // Catches a time-ordered id: version-7 GUIDs made in the same millisecond share their first 12 digits.
        test "a thousand ids made at once are all different, and no two share their first 12 digits" {
            let prefixes = many |> List.map (fun id -> (CallId.value id).Substring(0, 12))
            Expect.equal (List.distinct prefixes).Length many.Length "random from the first digit"
        }

        // Catches a short id long enough to be the capability, or taken from elsewhere than its start.
        test "the short form for the log is the id's first 8 hex digits" {
            let text = CallId.value many.Head
            Expect.equal (CallId.short many.Head) (text.Substring(0, 8)) "the first 8 digits"
        }

        test "upper case, other lengths, dashes and non-hex are not call ids" {
            let text = CallId.value many.Head

            for bad in
                [
                    text.ToUpperInvariant() + "x"
                    text.Substring 1
                    text + "0"
                    "g" + text.Substring 1
                    ""
                    null
                ] do
                Expect.isNone (CallId.tryParse bad) $"{bad}"

            Expect.isNone (CallId.tryParse (System.Guid.NewGuid().ToString())) "a dashed GUID"
        }

        test "the ChannelId is <callId>-<attempt>, within Asterisk's 149 characters of [A-Za-z0-9._-]" {
            let channelId = ChannelId.format many.Head (Attempt.next Attempt.first)
            Expect.equal channelId $"{CallId.value many.Head}-2" "the second attempt"
            Expect.isLessThanOrEqual channelId.Length 149 "AST_MAX_PUBLIC_UNIQUEID"

            Expect.isTrue
                (channelId
                 |> String.forall (fun c -> System.Char.IsAsciiLetterOrDigit c || c = '-'))
                "chars"
        }

        test "a Uniqueid or Linkedid names our call and attempt, a Local channel's ;2 half too" {
            let id = many.Head
            let channelId = ChannelId.format id Attempt.first
            Expect.equal (ChannelId.tryParse channelId) (Some(id, Attempt.first)) "the ;1 half or a SIP leg"
            Expect.equal (ChannelId.tryParse (channelId + ";2")) (Some(id, Attempt.first)) "the ;2 half"
        }

        test "Asterisk's own Uniqueids and malformed attempts are not ours" {
            let text = CallId.value many.Head

            for other in
                [
                    "1764628133.42"
                    "pbx-1764628133.42"
                    text
                    $"{text}-0"
                    $"{text}-01"
                    $"{text}-x"
                    $"{text}-"
                    null
                ] do
                Expect.isNone (ChannelId.tryParse other) $"{other}"
        }
    ]
