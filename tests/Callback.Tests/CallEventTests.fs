module Callback.Tests.CallEventTests

open Expecto
open Callback.Calls
open Callback.Tests.Frames

let private snapshot (prefix: string) (channel: string) (uniqueid: string) = [
    prefix + "Channel", channel
    prefix + "ChannelState", "5"
    prefix + "Uniqueid", uniqueid
    prefix + "Linkedid", "abc-1"
]

[<Tests>]
let tests =
    testList "CallEvent" [
        test "a Hangup gives its cause, text and SIP code, and no SIP code when TechCause is absent" {
            let hangup extra =
                message (
                    [ "Event", "Hangup"; "Privilege", "call,all" ]
                    @ snapshot "" "PJSIP/trunk-1" "abc-1"
                    @ [ "Cause", "17"; "Cause-txt", "User busy" ]
                    @ extra
                )

            let ref = {
                Channel = "PJSIP/trunk-1"
                Uniqueid = "abc-1"
                Linkedid = "abc-1"
                CallbackId = None
            }

            Expect.equal
                (CallEvent.tryParse (hangup [ "TechCause", "486" ]))
                (Some(
                    Hangup(
                        ref,
                        {
                            Code = 17
                            Text = "User busy"
                            SipCode = Some 486
                        }
                    )
                ))
                "with TechCause"

            Expect.equal
                (CallEvent.tryParse (hangup []))
                (Some(
                    Hangup(
                        ref,
                        {
                            Code = 17
                            Text = "User busy"
                            SipCode = None
                        }
                    )
                ))
                "Asterisk before 22.7"
        }

        // Catches reading the caller's snapshot for the Dest one (or the other way round) in two-channel events.
        test "a DialEnd names its caller and its destination apart, and an Originate's DialEnd has no caller" {
            let dialEnd caller =
                message (
                    [ "Event", "DialEnd" ]
                    @ caller
                    @ snapshot "Dest" "PJSIP/owner-2" "1796.2"
                    @ [ "DialStatus", "BUSY" ]
                )

            match CallEvent.tryParse (dialEnd (snapshot "" "PJSIP/trunk-1" "abc-1")) with
            | Some(DialEnd(Some caller, dest, "BUSY")) ->
                Expect.equal caller.Uniqueid "abc-1" "caller"
                Expect.equal dest.Uniqueid "1796.2" "destination"
                Expect.equal dest.Channel "PJSIP/owner-2" "destination's channel"
            | other -> failtest $"{other}"

            match CallEvent.tryParse (dialEnd []) with
            | Some(DialEnd(None, dest, "BUSY")) -> Expect.equal dest.Uniqueid "1796.2" "destination"
            | other -> failtest $"{other}"
        }

        test "VarSet is read only for CALLBACK_ID, with or without its inheritance underscores" {
            let varSet name =
                message (
                    [ "Event", "VarSet" ]
                    @ snapshot "" "PJSIP/owner-2" "1796.2"
                    @ [ "Variable", name; "Value", "0123456789abcdef0123456789abcdef" ]
                )

            for name in [ "__CALLBACK_ID"; "_CALLBACK_ID"; "CALLBACK_ID" ] do
                match CallEvent.tryParse (varSet name) with
                | Some(CallbackIdSet(_, "0123456789abcdef0123456789abcdef")) -> ()
                | other -> failtest $"{name}: {other}"

            for name in [ "CALLBACK_LANGUAGE"; "DIALSTATUS"; "__CALLBACK_IDX" ] do
                Expect.isNone (CallEvent.tryParse (varSet name)) name
        }

        test "a snapshot's ChanVariable CALLBACK_ID is read, an empty one is none" {
            let newchannel value =
                message (
                    [ "Event", "Newchannel" ]
                    @ snapshot "" "PJSIP/owner-2" "1796.2"
                    @ [
                        "ChanVariable", "CALLBACK_LANGUAGE=fr"
                        "ChanVariable", $"CALLBACK_ID={value}"
                    ]
                )

            match CallEvent.tryParse (newchannel "abc"), CallEvent.tryParse (newchannel "") with
            | Some(Newchannel withId), Some(Newchannel withoutId) ->
                Expect.equal withId.CallbackId (Some "abc") "set"
                Expect.equal withoutId.CallbackId None "unset: Asterisk writes an empty value"
            | other -> failtest $"{other}"
        }

        test "responses, events the fold does not read and events without a channel are none" {
            let none = [
                message [
                    "Response", "Success"
                    "ActionID", "abc-1"
                    "Message", "Originate successfully queued"
                ]
                message ([ "Event", "Newexten" ] @ snapshot "" "PJSIP/trunk-1" "abc-1")
                message [ "Event", "Newstate"; "Channel", "PJSIP/trunk-1" ]
                message [ "Event", "BridgeEnter"; "BridgeUniqueid", "b-1" ]
            ]

            for m in none do
                Expect.isNone (CallEvent.tryParse m) (string m)
        }

        test "an OriginateResponse gives its ActionID, success, Reason and Uniqueid" {
            let response =
                message [
                    "Event", "OriginateResponse"
                    "ActionID", "abc-1"
                    "Response", "Failure"
                    "Channel", "PJSIP/14385552368@trunk"
                    "Reason", "0"
                    "Uniqueid", "abc-1"
                ]

            Expect.equal
                (CallEvent.tryParse response)
                (Some(
                    OriginateResponse {
                        ActionId = Some "abc-1"
                        Succeeded = false
                        Reason = 0
                        Uniqueid = "abc-1"
                    }
                ))
                "failure"
        }
    ]
