namespace Callback.Calls

open System
open Callback.Ami

/// One channel as an AMI event names it: its own snapshot, or the `Dest…` one of a two-channel event.
type ChannelRef = {
    Channel: string
    Uniqueid: string
    Linkedid: string
    /// `ChanVariable: CALLBACK_ID=…`, when manager.conf's `channelvars` adds it to every snapshot.
    CallbackId: string option
}

/// Why a channel hung up: Asterisk's cause (Q.850) and, for off-nominal SIP ends, the SIP code
/// (`TechCause`, Asterisk 22.7 and later).
type HangupCause = {
    Code: int
    Text: string
    SipCode: int option
}

/// Asterisk's `OriginateResponse`: sent once the dial is over (answered or failed), to every `call` reader.
type OriginateResponse = {
    ActionId: string option
    Succeeded: bool
    /// An `AST_CONTROL_*` value: 4 answered, 5 busy, 8 congestion, 3 no answer, 0 anything else (PJSIP busy
    /// and rejected calls included), which is why a call is never classified from it alone.
    Reason: int
    /// The ChannelId, or `<unknown>` when none was given and no channel was made.
    Uniqueid: string
}

/// The few AMI events the call fold reads; every other event is not one of these.
type CallEvent =
    | Newchannel of ChannelRef
    | Newstate of ChannelRef * state: int
    /// `VarSet` of `__CALLBACK_ID` (or `_CALLBACK_ID`, `CALLBACK_ID`): the variable every leg inherits.
    | CallbackIdSet of ChannelRef * callbackId: string
    | DialBegin of caller: ChannelRef option * dest: ChannelRef
    | DialState of caller: ChannelRef option * dest: ChannelRef * status: string
    | DialEnd of caller: ChannelRef option * dest: ChannelRef * status: string
    | BridgeEnter of ChannelRef * bridge: string
    | Hangup of ChannelRef * HangupCause
    | OriginateResponse of OriginateResponse

[<RequireQualifiedAccess>]
module CallEvent =

    [<Literal>]
    let private CallbackIdVariable = "CALLBACK_ID"

    let private field key message =
        Message.tryFind key message |> Option.defaultValue ""

    let private number key message =
        match Int32.TryParse(field key message) with
        | true, n -> Some n
        | _ -> None

    let private chanVariable prefix message =
        Message.findAll (prefix + "ChanVariable") message
        |> Array.tryPick (fun (v: string) ->
            if v.StartsWith(CallbackIdVariable + "=", StringComparison.Ordinal) then
                Some(v.Substring(CallbackIdVariable.Length + 1))
            else
                None)
        |> Option.filter (fun v -> v <> "")

    /// The channel of prefix `prefix` ("" or "Dest"), if the event names one.
    let private channel prefix message =
        Message.tryFind (prefix + "Uniqueid") message
        |> Option.map (fun uniqueid -> {
            Channel = field (prefix + "Channel") message
            Uniqueid = uniqueid
            Linkedid = field (prefix + "Linkedid") message
            CallbackId = chanVariable prefix message
        })

    let private isCallbackId (name: string) =
        name.TrimStart('_').Equals(CallbackIdVariable, StringComparison.OrdinalIgnoreCase)

    let private dialEvent make message =
        channel "Dest" message
        |> Option.map (fun dest -> make (channel "" message) dest (field "DialStatus" message))

    let private hangup message =
        channel "" message
        |> Option.map (fun ref ->
            Hangup(
                ref,
                {
                    Code = number "Cause" message |> Option.defaultValue 0
                    Text = field "Cause-txt" message
                    SipCode = number "TechCause" message
                }
            ))

    let private originateResponse message =
        OriginateResponse {
            ActionId = Message.actionId message
            Succeeded = field "Response" message = "Success"
            Reason = number "Reason" message |> Option.defaultValue 0
            Uniqueid = field "Uniqueid" message
        }

    /// The event the fold reads in `message`, or None for any other message (most of what Asterisk sends).
    let tryParse (message: Message) : CallEvent option =
        match Message.tryFind "Event" message with
        | Some "Newchannel" -> channel "" message |> Option.map Newchannel
        | Some "Newstate" ->
            channel "" message
            |> Option.map (fun ref -> Newstate(ref, number "ChannelState" message |> Option.defaultValue -1))
        | Some "VarSet" when isCallbackId (field "Variable" message) ->
            channel "" message
            |> Option.map (fun ref -> CallbackIdSet(ref, field "Value" message))
        | Some "DialBegin" -> dialEvent (fun caller dest _ -> DialBegin(caller, dest)) message
        | Some "DialState" -> dialEvent (fun caller dest status -> DialState(caller, dest, status)) message
        | Some "DialEnd" -> dialEvent (fun caller dest status -> DialEnd(caller, dest, status)) message
        | Some "BridgeEnter" ->
            channel "" message
            |> Option.map (fun ref -> BridgeEnter(ref, field "BridgeUniqueid" message))
        | Some "Hangup" -> hangup message
        | Some "OriginateResponse" -> Some(originateResponse message)
        | _ -> None

    /// Every channel the event names.
    let channels (event: CallEvent) =
        match event with
        | Newchannel ref
        | Newstate(ref, _)
        | CallbackIdSet(ref, _)
        | BridgeEnter(ref, _)
        | Hangup(ref, _) -> [ ref ]
        | DialBegin(caller, dest)
        | DialState(caller, dest, _)
        | DialEnd(caller, dest, _) -> dest :: Option.toList caller
        | OriginateResponse _ -> []
