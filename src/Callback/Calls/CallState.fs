namespace Callback.Calls

open System
open Callback.Domain

/// The call state as a pure fold over AMI events: `apply at input call`, each input with the instant it was
/// received, no clock and no IO.
[<RequireQualifiedAccess>]
module CallState =

    /// A call whose first channel is (or will be) `channelId`, queued at `at`.
    let ofChannel (channelId: string) (callbackId: string option) (at: DateTimeOffset) = {
        ChannelId = channelId
        CallbackId = callbackId
        Status = Live Queued
        History = [ { State = State.Queued; At = at } ]
        Legs = Map.empty
        BridgedAt = None
        OriginateFailed = false
    }

    /// Attempt `attempt` of call `callId`, just originated at `at`.
    let queued (callId: CallId) (attempt: Attempt) (at: DateTimeOffset) =
        ofChannel (ChannelId.format callId attempt) (Some(CallId.value callId)) at

    /// Whether `ref` is a channel of this call: by its Uniqueid or Linkedid, an inherited `CALLBACK_ID`, or
    /// because an earlier event made it one of ours. Another attempt's channels are not.
    let private isOurs (call: Call) (ref: ChannelRef) =
        let id = Call.baseId ref.Uniqueid

        if
            id = call.ChannelId
            || ref.Linkedid = call.ChannelId
            || call.Legs.ContainsKey ref.Uniqueid
        then
            true
        elif (ChannelId.tryParse id).IsSome then
            false
        else
            call.CallbackId.IsSome && ref.CallbackId = call.CallbackId

    let private concerns (call: Call) (event: CallEvent) =
        match event with
        | OriginateResponse r -> Call.baseId r.Uniqueid = call.ChannelId || r.ActionId = Some call.ChannelId
        | CallbackIdSet(ref, value) ->
            isOurs call ref
            || Some value = call.CallbackId
               && (ChannelId.tryParse (Call.baseId ref.Uniqueid)).IsNone
        | _ -> CallEvent.channels event |> List.exists (isOurs call)

    let private seen (call: Call) (ref: ChannelRef) =
        if call.Legs.ContainsKey ref.Uniqueid then
            call
        else
            let leg = {
                Channel = ref.Channel
                HungUpAt = None
                Cause = None
                DialStatus = None
                Bridge = None
                DialledBy = None
            }

            {
                call with
                    Legs = call.Legs.Add(ref.Uniqueid, leg)
            }

    let private updateLeg (uniqueid: string) (change: Leg -> Leg) (call: Call) = {
        call with
            Legs = call.Legs.Change(uniqueid, Option.map change)
    }

    /// Moves a live call forward to `target` (never back). Owner ringing or a bridge imply the visitor
    /// answered: if that event was missed, `answered` is recorded at the same instant.
    let private advance (target: Progress) (at: DateTimeOffset) (call: Call) =
        match call.Status with
        | Live current when Call.rank target > Call.rank current ->
            let skipped =
                if Call.rank target > Call.rank Answered && Call.rank current < Call.rank Answered then
                    [ { State = State.Answered; At = at } ]
                else
                    []

            {
                call with
                    Status = Live target
                    History = call.History @ skipped @ [ { State = Call.stateOf target; At = at } ]
            }
        | _ -> call

    let private visitorOrOwner call (ref: ChannelRef) visitor owner =
        match call.Legs.TryFind ref.Uniqueid with
        | Some leg when Call.isVisitorLeg call ref.Uniqueid leg -> visitor
        | _ -> owner

    let private bridged (call: Call) =
        let bridges visitor =
            call.Legs
            |> Map.toSeq
            |> Seq.filter (fun (id, leg) -> Call.isVisitorLeg call id leg = visitor && leg.HungUpAt.IsNone)
            |> Seq.choose (fun (_, leg) -> leg.Bridge)
            |> Set.ofSeq

        not (Set.isEmpty (Set.intersect (bridges true) (bridges false)))

    /// What one event tells about the call, once its channels are among the call's legs.
    let private observe (at: DateTimeOffset) (event: CallEvent) (call: Call) =
        match event with
        | Newstate(ref, 5) -> advance (visitorOrOwner call ref Ringing Connecting) at call
        | Newstate(ref, 6) -> visitorOrOwner call ref (advance Answered at call) call
        | DialState(_, dest, "RINGING") -> advance (visitorOrOwner call dest Ringing Connecting) at call
        | DialEnd(_, dest, status) ->
            let call =
                updateLeg dest.Uniqueid (fun leg -> { leg with DialStatus = Some status }) call

            if status = "ANSWER" then
                visitorOrOwner call dest (advance Answered at call) call
            else
                call
        | BridgeEnter(ref, bridge) ->
            let call =
                updateLeg ref.Uniqueid (fun leg -> { leg with Bridge = Some bridge }) call

            if call.BridgedAt.IsNone && bridged call then
                {
                    advance Bridged at call with
                        BridgedAt = Some at
                }
            else
                call
        | Hangup(ref, cause) ->
            updateLeg
                ref.Uniqueid
                (fun leg ->
                    match leg.HungUpAt with
                    | None -> {
                        leg with
                            HungUpAt = Some at
                            Cause = Some cause
                      }
                    | Some _ -> leg)
                call
        | DialBegin(Some caller, dest) ->
            updateLeg
                dest.Uniqueid
                (fun leg -> {
                    leg with
                        DialledBy = Some caller.Uniqueid
                })
                call
        | OriginateResponse r when r.Succeeded -> advance Answered at call
        | OriginateResponse _ -> { call with OriginateFailed = true }
        | Newchannel _
        | Newstate _
        | CallbackIdSet _
        | DialBegin _
        | DialState _ -> call

    let private finish (at: DateTimeOffset) (call: Call) =
        let status = Outcome.classify call at

        let state =
            match status with
            | Ended _ -> State.Ended
            | _ -> State.Failed

        {
            call with
                Status = status
                History = call.History @ [ { State = state; At = at } ]
        }

    let private alive (call: Call) =
        call.Legs |> Map.exists (fun _ leg -> leg.HungUpAt.IsNone)

    /// Over when a visitor leg hung up and no leg is left; an `OriginateResponse Failure` alone never ends
    /// a call (under load it comes before the channel's Hangup, whose cause would be lost).
    let private isOver (call: Call) =
        not (alive call)
        && call.Legs
           |> Map.exists (fun id leg -> leg.HungUpAt.IsSome && Call.isVisitorLeg call id leg)

    let private onEvent (at: DateTimeOffset) (event: CallEvent) (call: Call) =
        if concerns call event then
            let call = CallEvent.channels event |> List.fold seen call |> observe at event

            if isOver call then finish at call else call
        else
            call

    /// The call after `input`, received at `at`. A final call never changes; events of other calls, and
    /// events the fold does not read, leave the call as it was.
    let apply (at: DateTimeOffset) (input: CallInput) (call: Call) : Call =
        if Call.isFinal call then
            call
        else
            match input with
            | Ami event -> onEvent at event call
            | Settle when call.OriginateFailed && not (alive call) -> finish at call
            | Settle -> call
            | Lost -> {
                call with
                    Status = Failed(FailedOutcome.Lost, None)
                    History = call.History @ [ { State = State.Failed; At = at } ]
              }

    /// The call after every message of `messages` (each with the instant it was received), in order.
    let foldMessages (call: Call) (messages: (DateTimeOffset * Callback.Ami.Message) seq) =
        messages
        |> Seq.fold
            (fun call (at, message) ->
                match CallEvent.tryParse message with
                | Some event -> apply at (Ami event) call
                | None -> call)
            call
