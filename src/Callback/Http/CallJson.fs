namespace Callback.Http

open System
open System.Globalization
open Callback.Calls
open Callback.Domain

/// The status API's body (`GET /calls/{callId}` and each SSE frame): a stored call spelled out field by
/// field, in the contract's names, never inferred from the domain types.
[<RequireQualifiedAccess>]
module CallJson =

    /// ISO 8601 in UTC to the millisecond (what the store keeps), e.g. `2026-12-01T12:00:00.250Z`.
    let instant (at: DateTimeOffset) : JsonValue =
        Encode.string (at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture))

    let private cause (status: CallStatus) =
        match status with
        | Live _ -> None
        | Ended(_, cause)
        | Failed(_, cause) -> cause

    let private talkSeconds (status: CallStatus) =
        match status with
        | Ended(Completed talk, _) -> Some(Math.Round(talk.TotalSeconds, 3))
        | _ -> None

    let private hangupCause (c: HangupCause) : JsonValue =
        Encode.object [ "code", (fun w -> w.WriteNumberValue c.Code); "text", Encode.string c.Text ]

    let private transition (t: SavedTransition) : JsonValue =
        Encode.object [
            "state", Encode.string (Names.state t.Transition.State)
            "at", instant t.Transition.At
        ]

    let private attemptJson (a: AttemptRecord) : JsonValue =
        Encode.object [
            "n", (fun w -> w.WriteNumberValue(Attempt.number a.Attempt))
            "startedAt", instant a.StartedAt
            "outcome", Encode.option Encode.string a.Outcome
            "hangupCause", Encode.option hangupCause a.Cause
        ]

    /// The attempts as of attempt `attempt`: the earlier ones as they ended, this one without its end
    /// (when the frame is not the call's last, that end was not known yet).
    let private attemptsAsOf (isCurrent: bool) (attempt: Attempt) (attempts: AttemptRecord list) =
        attempts
        |> List.filter (fun a -> Attempt.number a.Attempt <= Attempt.number attempt)
        |> List.map (fun a ->
            if isCurrent || a.Attempt <> attempt then
                a
            else
                { a with Outcome = None; Cause = None })

    /// The call as it was once its first `count` transitions were saved: its state, that history and the
    /// time of the last of them. The outcome, cause and talk time belong to the call's current status, so
    /// they are given only with its last transition (an earlier final state, an attempt that a retry
    /// followed, says `failed` without them).
    let private asOfCount (tracking: bool) (call: StoredCall) (count: int) : JsonValue =
        let history = List.truncate count call.History
        let isCurrent = List.length history = List.length call.History
        let status = if isCurrent then Some call.Status else None
        let cause = status |> Option.bind cause

        let state, attempt, updatedAt =
            match List.tryLast history with
            | Some last when not isCurrent -> last.Transition.State, last.Attempt, last.Transition.At
            | _ -> Store.stateOf call.Status, call.Attempt, call.UpdatedAt

        Encode.object [
            "callId", Encode.string (CallId.value call.CallId)
            "attempt", (fun w -> w.WriteNumberValue(Attempt.number attempt))
            "state", Encode.string (Names.state state)
            "outcome", Encode.option Encode.string (status |> Option.bind Names.outcome)
            "language", Encode.string (Language.code call.Language)
            "number", Encode.string call.MaskedNumber
            "createdAt", instant call.CreatedAt
            "updatedAt", instant updatedAt
            "history", Encode.list (List.map transition history)
            "hangupCause", Encode.option hangupCause cause
            "sipCode", Encode.option (fun (code: int) w -> w.WriteNumberValue code) (cause |> Option.bind _.SipCode)
            "talkSeconds", Encode.option (fun (s: float) w -> w.WriteNumberValue s) (status |> Option.bind talkSeconds)
            "tracking", Encode.bool tracking
            "attempts", Encode.list (List.map attemptJson (attemptsAsOf isCurrent attempt call.Attempts))
            "scheduledFor", Encode.option instant (if isCurrent then call.ScheduledFor else None)
        ]

    /// `GET /calls/{callId}`: the call as stored now. `tracking` says whether a monitor follows calls at
    /// all (without one a call stays `queued` for ever).
    let call (tracking: bool) (call: StoredCall) : JsonValue =
        asOfCount tracking call call.History.Length

    /// One SSE frame's data: the call as of its transition numbered `sequence` (the same shape as `call`).
    let asOf (tracking: bool) (call: StoredCall) (sequence: int64) : JsonValue =
        let count =
            call.History |> List.takeWhile (fun t -> t.Sequence <= sequence) |> List.length

        asOfCount tracking call count
