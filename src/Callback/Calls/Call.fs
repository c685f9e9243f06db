namespace Callback.Calls

open System
open Callback.Domain

/// Where a live call is, in the order a call goes through them.
type Progress =
    /// Originate sent, the visitor's phone not yet ringing.
    | Queued
    /// The visitor's phone signals ringing (`Newstate` Ringing or `DialState RINGING`), never on DialBegin alone.
    | Ringing
    /// The visitor answered: the announcement plays.
    | Answered
    /// The owner's phone rings.
    | Connecting
    /// Visitor and owner are in one bridge: they talk.
    | Bridged

/// How a call the visitor answered ended.
type EndedOutcome =
    | Completed of talk: TimeSpan
    /// The visitor hung up before being connected (during the announcement or the owner's ringing).
    | VisitorHungUp
    /// The owner's line refused the call (busy, congested or unavailable).
    | OwnerBusy
    | OwnerNoAnswer

/// Why a call the visitor never answered failed, or why its end is unknown (`Lost`).
type FailedOutcome =
    | Busy
    | NoAnswer
    | Rejected
    | Unreachable
    | Congestion
    | Error
    /// Its channels disappeared without an end we saw (decided by the monitor after reconciliation).
    | Lost

/// A call's state: a live one has no outcome, a final one always has one, with the hangup cause of the leg
/// it is about (the visitor's, the owner's for `OwnerBusy`/`OwnerNoAnswer`), when Asterisk gave one.
type CallStatus =
    | Live of Progress
    | Ended of EndedOutcome * HangupCause option
    | Failed of FailedOutcome * HangupCause option

/// The names of the states, as the history lists them.
[<RequireQualifiedAccess>]
type State =
    | Queued
    | Ringing
    | Answered
    | Connecting
    | Bridged
    | Ended
    | Failed

type Transition = { State: State; At: DateTimeOffset }

/// What the fold has seen of one channel of the call.
type Leg = {
    Channel: string
    HungUpAt: DateTimeOffset option
    Cause: HangupCause option
    /// The last `DialStatus` of a `DialEnd` towards this channel.
    DialStatus: string option
    Bridge: string option
    /// The Uniqueid of the channel whose `DialBegin` dialled this one, if any.
    DialledBy: string option
}

/// One input of the fold: an AMI event, or what the caller decided from the clock or from Asterisk.
type CallInput =
    | Ami of CallEvent
    /// The short window after an `OriginateResponse Failure` elapsed: a failure whose channel never
    /// appeared (or is all gone) is final now, classified from what was seen.
    | Settle
    /// Reconciliation found none of the call's channels: the call is over and its end was not seen.
    | Lost

/// One attempt of a callback, as far as the AMI events tell.
type Call = {
    /// The Uniqueid of the call's first channel (Originate's `ChannelId`); every leg's Linkedid.
    ChannelId: string
    /// The `__CALLBACK_ID` every leg inherits.
    CallbackId: string option
    Status: CallStatus
    /// Every transition, oldest first, `queued` included.
    History: Transition list
    /// Every channel of the call seen so far, by Uniqueid.
    Legs: Map<string, Leg>
    BridgedAt: DateTimeOffset option
    OriginateFailed: bool
}

/// Reading a call: whether it is final, and which of its legs are the visitor's.
[<RequireQualifiedAccess>]
module Call =

    /// Whether the call has its outcome (`ended` or `failed`): then no input changes it.
    let isFinal (call: Call) =
        match call.Status with
        | Live _ -> false
        | Ended _
        | Failed _ -> true

    let internal stateOf progress =
        match progress with
        | Queued -> State.Queued
        | Ringing -> State.Ringing
        | Answered -> State.Answered
        | Connecting -> State.Connecting
        | Bridged -> State.Bridged

    let internal rank progress =
        match progress with
        | Queued -> 0
        | Ringing -> 1
        | Answered -> 2
        | Connecting -> 3
        | Bridged -> 4

    /// A Uniqueid without its Local half's `;2` suffix.
    let internal baseId (uniqueid: string) =
        match uniqueid.IndexOf ';' with
        | -1 -> uniqueid
        | i -> uniqueid.Substring(0, i)

    /// A Local channel's name without `;1`/`;2`: both halves share it.
    let internal localName (channel: string) =
        match channel.LastIndexOf ';' with
        | -1 -> None
        | i -> Some(channel.Substring(0, i))

    /// The visitor's legs are the first channel, its Local other half, and what that `;2` half dials (an
    /// Originate to `Local/<number>@outbound` reaches the visitor's phone through it); every other leg, the
    /// ones the callback dialplan (the `;1` half or a SIP channel) dials, is the owner's.
    let isVisitorLeg (call: Call) (uniqueid: string) (leg: Leg) =
        baseId uniqueid = call.ChannelId
        || (localName leg.Channel).IsSome
           && call.Legs
              |> Map.exists (fun id other ->
                  baseId id = call.ChannelId && localName other.Channel = localName leg.Channel)
        || leg.DialledBy
           |> Option.exists (fun caller ->
               baseId caller = call.ChannelId
               && (caller.EndsWith ";2"
                   || call.Legs.TryFind caller |> Option.exists (fun c -> c.Channel.EndsWith ";2")))

/// The names of states and outcomes: one spelling for the contract, the store, the metrics and the log.
[<RequireQualifiedAccess>]
module Names =

    /// The state's name: `queued`, `ringing`, …, `ended`, `failed`.
    let state (state: State) =
        match state with
        | State.Queued -> "queued"
        | State.Ringing -> "ringing"
        | State.Answered -> "answered"
        | State.Connecting -> "connecting"
        | State.Bridged -> "bridged"
        | State.Ended -> "ended"
        | State.Failed -> "failed"

    /// The outcome's name (`completed`, `busy`, …, `lost`), None while the call is live.
    let outcome (status: CallStatus) =
        match status with
        | Live _ -> None
        | Ended(Completed _, _) -> Some "completed"
        | Ended(VisitorHungUp, _) -> Some "visitor-hung-up"
        | Ended(OwnerBusy, _) -> Some "owner-busy"
        | Ended(OwnerNoAnswer, _) -> Some "owner-no-answer"
        | Failed(Busy, _) -> Some "busy"
        | Failed(NoAnswer, _) -> Some "no-answer"
        | Failed(Rejected, _) -> Some "rejected"
        | Failed(Unreachable, _) -> Some "unreachable"
        | Failed(Congestion, _) -> Some "congestion"
        | Failed(FailedOutcome.Error, _) -> Some "error"
        | Failed(FailedOutcome.Lost, _) -> Some "lost"

    /// Every outcome's name, those of answered calls first.
    let outcomes = [
        "completed"
        "visitor-hung-up"
        "owner-busy"
        "owner-no-answer"
        "busy"
        "no-answer"
        "rejected"
        "unreachable"
        "congestion"
        "error"
        "lost"
    ]
