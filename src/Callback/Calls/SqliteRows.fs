namespace Callback.Calls

open System
open Callback.Domain

/// How the domain's values are written in SQLite's columns and read back: pure, so a row that cannot be
/// read back says which column is wrong instead of inventing a status.
[<RequireQualifiedAccess>]
module internal SqliteRows =

    /// Times are whole milliseconds since the Unix epoch, UTC: sortable, and compared as numbers.
    let time (at: DateTimeOffset) = at.ToUnixTimeMilliseconds()

    let readTime (ms: int64) =
        DateTimeOffset.FromUnixTimeMilliseconds ms

    let readState name =
        match name with
        | "queued" -> State.Queued
        | "ringing" -> State.Ringing
        | "answered" -> State.Answered
        | "connecting" -> State.Connecting
        | "bridged" -> State.Bridged
        | "ended" -> State.Ended
        | "failed" -> State.Failed
        | other -> raise (FormatException $"unknown state '{other}' in the store")

    let languageName language =
        match language with
        | French -> "fr"
        | English -> "en"

    let readLanguage name =
        match name with
        | "fr" -> French
        | "en" -> English
        | other -> raise (FormatException $"unknown language '{other}' in the store")

    /// The outcome column (the contract's names), and talk time for `completed`.
    let outcome status =
        let talk =
            match status with
            | Ended(Completed talk, _) -> Some(int64 talk.TotalMilliseconds)
            | _ -> None

        Names.outcome status, talk

    let cause status =
        match status with
        | Live _ -> None
        | Ended(_, cause)
        | Failed(_, cause) -> cause

    let private progress state =
        match state with
        | State.Queued -> Queued
        | State.Ringing -> Ringing
        | State.Answered -> Answered
        | State.Connecting -> Connecting
        | _ -> Bridged

    let private ended name (talkMs: int64 option) =
        match name, talkMs with
        | "completed", Some ms -> Completed(TimeSpan.FromMilliseconds(float ms))
        | "visitor-hung-up", _ -> VisitorHungUp
        | "owner-busy", _ -> OwnerBusy
        | "owner-no-answer", _ -> OwnerNoAnswer
        | other, _ -> raise (FormatException $"outcome '{other}' cannot end an answered call")

    let private failed name =
        match name with
        | "busy" -> Busy
        | "no-answer" -> NoAnswer
        | "rejected" -> Rejected
        | "unreachable" -> Unreachable
        | "congestion" -> Congestion
        | "error" -> FailedOutcome.Error
        | "lost" -> FailedOutcome.Lost
        | other -> raise (FormatException $"outcome '{other}' cannot fail a call")

    /// The status a row holds, from its state, outcome, talk time and hangup cause columns.
    let readStatus state (outcome: string option) talkMs (cause: HangupCause option) =
        match state, outcome with
        | State.Ended, Some name -> Ended(ended name talkMs, cause)
        | State.Failed, Some name -> Failed(failed name, cause)
        | (State.Ended | State.Failed), None -> raise (FormatException "a final call without an outcome")
        | live, _ -> Live(progress live)

    let readAttempt (n: int64) =
        match Attempt.tryCreate (int n) with
        | Some attempt -> attempt
        | None -> raise (FormatException $"attempt {n} in the store")

    let readCallId (text: string) =
        match CallId.tryParse text with
        | Some id -> id
        | None -> raise (FormatException "a call id in the store is not one of ours")
