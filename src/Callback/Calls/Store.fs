namespace Callback.Calls

open System
open System.Threading
open System.Threading.Tasks
open Callback.Domain

/// A callback as the store first records it, before its first Originate.
type NewCall = {
    CallId: CallId
    Attempt: Attempt
    Language: Language
    /// The number as the log shows it: the store never holds a full phone number.
    MaskedNumber: string
    CreatedAt: DateTimeOffset
}

/// One transition of the history, numbered from 1 in the order it was saved (the SSE stream's `id:`).
type SavedTransition = {
    Sequence: int64
    Attempt: Attempt
    Transition: Transition
}

/// One dial of a call as the store records it: when its Originate was about to be sent, and how it ended
/// (None while it is the live attempt).
type AttemptRecord = {
    Attempt: Attempt
    StartedAt: DateTimeOffset
    Outcome: string option
    Cause: HangupCause option
}

/// A callback as the store holds it: who asked, its current attempt and status, and every transition.
type StoredCall = {
    CallId: CallId
    Attempt: Attempt
    Language: Language
    MaskedNumber: string
    CreatedAt: DateTimeOffset
    UpdatedAt: DateTimeOffset
    Status: CallStatus
    /// Oldest first, `queued` included.
    History: SavedTransition list
    /// The attempts dialled so far (or given up before their Originate), the first first.
    Attempts: AttemptRecord list
    /// When the current attempt is due, while it waits for its time (a scheduled call, a retry).
    ScheduledFor: DateTimeOffset option
}

/// What a writer believes the call is in: the compare-and-set's guard. The state alone is enough, since a
/// live call only moves forward and a final one never moves again, within one attempt.
type Expected = { Attempt: Attempt; State: State }

/// A move the fold decided: the new attempt and status, and the transitions that led there, oldest first.
type Change = {
    Attempt: Attempt
    Status: CallStatus
    Transitions: Transition list
    At: DateTimeOffset
}

/// The answer to a compare-and-set.
type SaveResult =
    | Saved
    /// Another writer moved the call first: nothing was written; read it again before deciding.
    | Stale
    | UnknownCall

/// Where calls are kept, whatever the database: the monitor records and moves calls, the HTTP layer reads
/// them, reconciliation lists the live ones, a timer prunes the old ones. Every move is a compare-and-set
/// on the expected attempt and state, so two writers (two monitors, a restart, a retry worker) can never
/// move the same call twice.
type ICallStore =
    /// Records a new call in state `queued`; false when that id is already recorded.
    abstract Create: call: NewCall * cancel: CancellationToken -> Task<bool>
    /// Moves the call to `change` only if it is still as `expected`.
    abstract Save: callId: CallId * expected: Expected * change: Change * cancel: CancellationToken -> Task<SaveResult>
    /// One call with its history, or None for an id never recorded (or pruned).
    abstract Find: callId: CallId * cancel: CancellationToken -> Task<StoredCall option>
    /// Every call not yet `ended` or `failed`: what reconciliation checks after a reconnect.
    abstract ListLive: cancel: CancellationToken -> Task<StoredCall list>
    /// Deletes the final calls last moved before `cutoff`, with their history; live calls are kept whatever
    /// their age. Answers how many calls were deleted.
    abstract Prune: cutoff: DateTimeOffset * cancel: CancellationToken -> Task<int>

[<RequireQualifiedAccess>]
module Store =
    /// The state name of a status, as the history and the compare-and-set guard use it.
    let stateOf status =
        match status with
        | Live progress -> Call.stateOf progress
        | Ended _ -> State.Ended
        | Failed _ -> State.Failed
