namespace Callback.Calls

open System
open System.Collections.Generic
open Callback.Domain

/// One live attempt the monitor follows: the fold's state of the call (with its legs, which the store does
/// not keep) and the monitor's own clocks. The store holds everything a reader is told.
type TrackedCall = {
    CallId: CallId
    Attempt: Attempt
    CreatedAt: DateTimeOffset
    UpdatedAt: DateTimeOffset
    Call: Call
    /// When an `OriginateResponse Failure` arrived: the settle window starts there.
    OriginateFailedAt: DateTimeOffset option
    /// Loaded from the store at start-up and not yet reconciled: its channels may still be up in Asterisk,
    /// so the first reconcile decides (listed → followed again, gone → lost), never the channel deadline.
    Recovered: bool
}

[<RequireQualifiedAccess>]
module TrackedCall =

    /// Attempt `attempt` of `callId`, queued at `at`, before Asterisk said anything about it.
    let queued callId attempt (at: DateTimeOffset) = {
        CallId = callId
        Attempt = attempt
        CreatedAt = at
        UpdatedAt = at
        Call = CallState.queued callId attempt at
        OriginateFailedAt = None
        Recovered = false
    }

    /// A live call the store kept across a restart: its status and this attempt's history; no leg is
    /// known until reconciliation lists its channels (or an event names one).
    let recovered (stored: StoredCall) =
        let call = CallState.queued stored.CallId stored.Attempt stored.CreatedAt

        let history =
            stored.History
            |> List.filter (fun saved -> saved.Attempt = stored.Attempt)
            |> List.map _.Transition

        {
            queued stored.CallId stored.Attempt stored.CreatedAt with
                UpdatedAt = stored.UpdatedAt
                Call = {
                    call with
                        Status = stored.Status
                        History = if history.IsEmpty then call.History else history
                }
                Recovered = true
        }

    /// The call after `input` at `at`; `UpdatedAt` moves only when the fold changed something.
    let apply (at: DateTimeOffset) (input: CallInput) (tracked: TrackedCall) =
        let call = CallState.apply at input tracked.Call

        if call = tracked.Call then
            tracked
        else
            let failedAt =
                match tracked.OriginateFailedAt with
                | None when call.OriginateFailed -> Some at
                | other -> other

            {
                tracked with
                    Call = call
                    UpdatedAt = at
                    OriginateFailedAt = failedAt
            }

/// Which calls an AMI event may be about, from the names it carries: every Uniqueid and Linkedid (a
/// ChannelId, `<callId>-<attempt>`, or a leg already seen), every `CALLBACK_ID`, an OriginateResponse's
/// Uniqueid and ActionID. A superset of what the fold accepts (`CallState.apply` still decides), so
/// routing changes no call's result; it only spares the fold every unrelated call.
[<RequireQualifiedAccess>]
module CallRoute =

    /// The names in `event` that can lead to a call.
    let keys (event: CallEvent) =
        let ofChannel (ref: ChannelRef) = [ ref.Uniqueid; ref.Linkedid; yield! Option.toList ref.CallbackId ]

        match event with
        | OriginateResponse r -> r.Uniqueid :: Option.toList r.ActionId
        | CallbackIdSet(ref, value) -> value :: ofChannel ref
        | _ -> CallEvent.channels event |> List.collect ofChannel

/// The monitor's live calls, indexed by call id and by the Uniqueid of every leg seen, so an event reaches
/// its own calls in O(1) whatever the number of live calls. Not thread-safe: the monitor uses it under
/// its lock.
[<Sealed>]
type WorkingSet() =
    let calls = Dictionary<CallId, TrackedCall>()
    let legs = Dictionary<string, CallId>()

    let index (tracked: TrackedCall) =
        for KeyValue(uniqueid, _) in tracked.Call.Legs do
            legs[uniqueid] <- tracked.CallId

    /// Every call `key` may name: as a ChannelId, as a `CALLBACK_ID`, as a leg already seen.
    let callsOf (key: string) = [
        match ChannelId.tryParse key with
        | Some(callId, _) -> yield callId
        | None -> ()
        match CallId.tryParse key with
        | Some callId -> yield callId
        | None -> ()
        match legs.TryGetValue key with
        | true, callId -> yield callId
        | _ -> ()
    ]

    /// Adds a call unless one with its id is already followed; true when added.
    member _.Add(tracked: TrackedCall) =
        if calls.ContainsKey tracked.CallId then
            false
        else
            calls[tracked.CallId] <- tracked
            index tracked
            true

    /// Replaces a call by a newer state of it, indexing the legs it has seen since.
    member _.Update(tracked: TrackedCall) =
        if calls.ContainsKey tracked.CallId then
            calls[tracked.CallId] <- tracked
            index tracked

    member _.Remove(callId: CallId) =
        match calls.TryGetValue callId with
        | true, tracked ->
            calls.Remove callId |> ignore

            for KeyValue(uniqueid, _) in tracked.Call.Legs do
                legs.Remove uniqueid |> ignore
        | _ -> ()

    member _.TryFind(callId: CallId) =
        match calls.TryGetValue callId with
        | true, tracked -> Some tracked
        | _ -> None

    /// Every call followed now, final ones included until their final state is saved.
    member _.Calls = List.ofSeq calls.Values

    member _.Count = calls.Count

    /// The followed calls `event` may be about (see `CallRoute`), each once.
    member _.Route(event: CallEvent) =
        CallRoute.keys event
        |> List.collect callsOf
        |> List.distinct
        |> List.choose (fun callId ->
            match calls.TryGetValue callId with
            | true, tracked -> Some tracked
            | _ -> None)

    /// Applies `event`, received at `at`, to the calls it is routed to; answers each call the fold
    /// changed, before and after.
    member this.Apply(at: DateTimeOffset, event: CallEvent) = [
        for before in this.Route event do
            let after = TrackedCall.apply at (Ami event) before

            if not (obj.ReferenceEquals(after, before)) then
                this.Update after
                yield before, after
    ]
