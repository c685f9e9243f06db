namespace Callback.Calls

open System
open System.Collections.Concurrent
open Callback.Domain

/// One call the sidecar placed, as the monitor tracks it: what the visitor asked for (number masked) and
/// the fold's state of the call so far.
type TrackedCall = {
    CallId: CallId
    Attempt: Attempt
    Language: string
    /// Masked as in the log: the status of a call never holds the full number.
    MaskedNumber: string
    CreatedAt: DateTimeOffset
    UpdatedAt: DateTimeOffset
    Call: Call
    /// When an `OriginateResponse Failure` arrived: the settle window starts there.
    OriginateFailedAt: DateTimeOffset option
}

[<RequireQualifiedAccess>]
module TrackedCall =

    /// Attempt `attempt` of `callId`, queued at `at`, before Asterisk said anything about it.
    let queued callId attempt language maskedNumber (at: DateTimeOffset) = {
        CallId = callId
        Attempt = attempt
        Language = language
        MaskedNumber = maskedNumber
        CreatedAt = at
        UpdatedAt = at
        Call = CallState.queued callId attempt at
        OriginateFailedAt = None
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

/// Where the monitor keeps the calls. Small on purpose: a durable store (SQLite) replaces the in-memory
/// one behind the same four members. The monitor is the only writer of a call once it is added.
type ICallRegistry =
    /// Adds a call just spooled (a second Add of the same id is ignored).
    abstract Add: TrackedCall -> unit
    /// Replaces a call's state with a newer one.
    abstract Save: TrackedCall -> unit
    /// Forgets a call whose Originate was refused: Asterisk never made it.
    abstract Remove: CallId -> unit
    abstract TryFind: CallId -> TrackedCall option
    /// Every call not yet `ended` or `failed`.
    abstract Live: unit -> TrackedCall list

/// The calls of this process, in memory (lost at restart, unbounded: the SQLite store brings retention).
[<Sealed>]
type InMemoryCallRegistry() =
    let calls = ConcurrentDictionary<string, TrackedCall>()

    interface ICallRegistry with
        member _.Add call =
            calls.TryAdd(CallId.value call.CallId, call) |> ignore

        member _.Save call = calls[CallId.value call.CallId] <- call

        member _.Remove callId =
            calls.TryRemove(CallId.value callId) |> ignore

        member _.TryFind callId =
            match calls.TryGetValue(CallId.value callId) with
            | true, call -> Some call
            | _ -> None

        member _.Live() = [
            for KeyValue(_, call) in calls do
                if not (Call.isFinal call.Call) then
                    yield call
        ]
