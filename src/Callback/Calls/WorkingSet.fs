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

        // The fold answers the same object when an event tells it nothing; a structural comparison (legs
        // and history) only when it built a new one.
        if LanguagePrimitives.PhysicalEquality call tracked.Call || call = tracked.Call then
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

/// The monitor's live calls, indexed so an AMI event reaches the calls it may be about in O(1), whatever
/// the number of live calls: by the names it carries, each looked up as a ChannelId (`<callId>-<attempt>`,
/// also with a Local half's `;2`), as a `CALLBACK_ID`, and as the Uniqueid of a leg already seen; an
/// OriginateResponse by its Uniqueid and ActionID. A superset of what the fold accepts (`CallState.apply`
/// still decides), so routing changes no call's result: it only spares the fold every unrelated call, and
/// an unrelated event costs a few dictionary lookups and no allocation. Not thread-safe: the monitor uses
/// it under its lock.
[<Sealed>]
type WorkingSet() =
    let calls = Dictionary<CallId, TrackedCall>()
    /// Each call's ChannelId and call id (its `CALLBACK_ID`).
    let names = Dictionary<string, CallId>()
    let legs = Dictionary<string, CallId>()
    /// The calls found for the event being routed.
    let found = List<TrackedCall>(4)

    let index (tracked: TrackedCall) =
        for KeyValue(uniqueid, _) in tracked.Call.Legs do
            legs[uniqueid] <- tracked.CallId

    let add (callId: CallId) =
        match calls.TryGetValue callId with
        | true, tracked when not (found.Exists(fun t -> t.CallId = callId)) -> found.Add tracked
        | _ -> ()

    let lookIn (names: Dictionary<string, CallId>) (key: string) =
        match names.TryGetValue key with
        | true, callId -> add callId
        | _ -> ()

    /// Every call `key` may name.
    let consider (key: string) =
        if not (String.IsNullOrEmpty key) then
            lookIn names key
            lookIn legs key

            match key.IndexOf ';' with
            | -1 -> ()
            | semicolon -> lookIn names (key.Substring(0, semicolon))

    let considerChannel (ref: ChannelRef) =
        consider ref.Uniqueid
        consider ref.Linkedid

        match ref.CallbackId with
        | Some callbackId -> consider callbackId
        | None -> ()

    let route (event: CallEvent) =
        found.Clear()

        match event with
        | OriginateResponse r ->
            consider r.Uniqueid
            r.ActionId |> Option.iter consider
        | CallbackIdSet(ref, value) ->
            consider value
            considerChannel ref
        | Newchannel ref
        | Newstate(ref, _)
        | BridgeEnter(ref, _)
        | Hangup(ref, _) -> considerChannel ref
        | DialBegin(caller, dest)
        | DialState(caller, dest, _)
        | DialEnd(caller, dest, _) ->
            considerChannel dest
            caller |> Option.iter considerChannel

    /// Adds a call unless one with its id is already followed; true when added.
    member _.Add(tracked: TrackedCall) =
        if calls.ContainsKey tracked.CallId then
            false
        else
            calls[tracked.CallId] <- tracked
            names[tracked.Call.ChannelId] <- tracked.CallId
            names[CallId.value tracked.CallId] <- tracked.CallId
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
            names.Remove tracked.Call.ChannelId |> ignore
            names.Remove(CallId.value callId) |> ignore

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

    /// The followed calls `event` may be about, each once.
    member _.Route(event: CallEvent) =
        route event
        List.ofSeq found

    /// Applies `event`, received at `at`, to the calls it is routed to; answers each call the fold
    /// changed, before and after.
    member this.Apply(at: DateTimeOffset, event: CallEvent) =
        route event

        if found.Count = 0 then
            []
        else
            [
                for before in List.ofSeq found do
                    let after = TrackedCall.apply at (Ami event) before

                    if not (obj.ReferenceEquals(after, before)) then
                        this.Update after
                        yield before, after
            ]
