namespace Callback.Calls

open System
open System.Threading
open System.Threading.Tasks
open Callback.Domain

/// A number's rate limit as the store keeps it (`Callback__PerNumber*`): one call per `Interval`, `PerDay`
/// calls in any 24 hours, counted from the calls the store holds, so a restart does not reset it.
type NumberLimit = { Interval: TimeSpan; PerDay: int }

module NumberLimit =
    /// The calls a number's limit counts look back this far.
    let day = TimeSpan.FromDays 1.0

    /// How long until the number's calls of the last day (`created`, newest first) leave room for one more
    /// under `limit` at `now`; None when there is room. Both stores answer with it.
    let retryAfter (limit: NumberLimit) (now: DateTimeOffset) (created: DateTimeOffset list) =
        let waits = [
            match created with
            | newest :: _ when newest > now - limit.Interval -> newest + limit.Interval - now
            | _ -> ()
            if created.Length >= limit.PerDay then
                created[limit.PerDay - 1] + day - now
        ]

        if List.isEmpty waits then None else Some(List.max waits)

/// A valid callback request as the store accepts it, before any AMI traffic.
type Request = {
    CallId: CallId
    Language: Language
    Number: PhoneNumber
    /// The number's HMAC under the install's key (`NumberKey`): how duplicates are found once the digits
    /// are gone.
    NumberKey: string
    AcceptedAt: DateTimeOffset
    /// None: the request places its first attempt now (`claimed` by it); Some T: it is due at T.
    DueAt: DateTimeOffset option
    /// A call of the same number created at or after this instant that reached Asterisk makes this
    /// request a duplicate (`AcceptedAt` minus `Callback__DuplicateWindow`).
    DuplicateSince: DateTimeOffset
    /// Whether a monitor follows calls, so that a live call of the number is a duplicate whatever its age.
    /// Without one nothing ever ends a call: then only pending calls and the window count.
    Tracked: bool
    /// Checked after the duplicate, in the same transaction; None: not checked (the limit is elsewhere).
    PerNumber: NumberLimit option
}

/// What the store made of a request.
type Acceptance =
    /// Recorded: claimed by this request, or due at its time.
    | Accepted
    /// The number already has a call that is live, pending, or reached Asterisk within the window: that
    /// call, with the five booleans its own request was answered with. Nothing was recorded.
    | Duplicate of StoredCall * StageResults
    /// The number's calls in the store use up its limit (`PerNumber`): ask again after this long.
    /// Nothing was recorded.
    | NumberLimited of retryAfter: TimeSpan

/// An attempt a dispatcher took from the store (`claimed`): what it needs to place it.
type ClaimedAttempt = {
    CallId: CallId
    Attempt: Attempt
    Request: CallbackRequest
}

[<RequireQualifiedAccess>]
module ClaimedAttempt =
    /// The claimed rows (call, attempt, language, the digits if still held) this version can dial, and the
    /// attempts it cannot (a number this version no longer takes): those are to fail rather than stay due
    /// for ever.
    let split (claimed: (CallId * Attempt * Language * PhoneNumber option) seq) =
        let claimed = List.ofSeq claimed

        let placeable =
            claimed
            |> List.choose (fun (callId, attempt, language, number) ->
                number
                |> Option.map (fun number -> {
                    CallId = callId
                    Attempt = attempt
                    Request = {
                        PhoneNumber = number
                        Language = language
                    }
                }))

        let undialable =
            claimed
            |> List.filter (fun (_, _, _, number) -> number.IsNone)
            |> List.map (fun (callId, attempt, _, _) -> callId, attempt)

        placeable, undialable

/// The durable side of a callback, around each attempt: `due` (waiting for its time) → `claimed` (a
/// worker of this process took it, nothing sent) → `sent` (marked just before the Originate is written: it
/// may have reached Asterisk from here on) → the live states → final. Every move is a compare-and-set on
/// the phase and attempt, so no two workers and no restart can place one attempt twice.
type IRequestStore =
    /// The call that makes a request for `numberKey` now a duplicate, with its request's five booleans:
    /// one pending (due or claimed), one not final (when `tracked`), or one created at or after `since`
    /// that reached Asterisk. A read only: `Accept`
    /// checks again in its write transaction.
    abstract FindDuplicate:
        numberKey: string * since: DateTimeOffset * tracked: bool * cancel: CancellationToken ->
            Task<(StoredCall * StageResults) option>

    /// In one write transaction: the duplicate check, then the number's limit, then the new call (state
    /// `queued`) if neither refuses it.
    abstract Accept: request: Request * cancel: CancellationToken -> Task<Acceptance>
    /// `claimed` → `sent` for this attempt, its start recorded; false when it is not claimed (any more).
    abstract MarkSent: callId: CallId * attempt: Attempt * at: DateTimeOffset * cancel: CancellationToken -> Task<bool>
    /// Records the five booleans of a request's answer (`original`: the answer its visitor got), and
    /// whether an Originate of the call was accepted.
    abstract RecordStages: callId: CallId * stages: StageResults * original: bool * cancel: CancellationToken -> Task
    /// A claimed attempt nothing of which reached Asterisk (no socket, no Login): the call fails with
    /// `error` and its number is dropped. False when it was not claimed.
    abstract Abandon: callId: CallId * attempt: Attempt * at: DateTimeOffset * cancel: CancellationToken -> Task<bool>

    /// A claimed attempt nothing of which was sent goes back to `due` at `dueAt` (the dispatcher's backoff).
    abstract Postpone:
        callId: CallId * attempt: Attempt * dueAt: DateTimeOffset * cancel: CancellationToken -> Task<bool>

    /// Claims up to `limit` attempts due at `now` (`due` → `claimed`), the earliest first.
    abstract ClaimDue: now: DateTimeOffset * limit: int * cancel: CancellationToken -> Task<ClaimedAttempt list>
    /// How many attempts are due from `from` until before `until` (the calls already waiting for an opening).
    abstract CountDue: from: DateTimeOffset * until: DateTimeOffset * cancel: CancellationToken -> Task<int>
    /// When the next `due` attempt is due, if any.
    abstract NextDue: cancel: CancellationToken -> Task<DateTimeOffset option>

    /// Ends attempt `expected.Attempt` as `ended` says (its final status) and, in the same transaction,
    /// queues the next attempt due at `dueAt`: the call goes back to `queued`, never through `failed`.
    abstract Retry:
        callId: CallId * expected: Expected * ended: Change * dueAt: DateTimeOffset * cancel: CancellationToken ->
            Task<SaveResult>

    /// At start-up: every `claimed` attempt (its worker died before sending anything) goes back to `due`.
    /// Answers how many.
    abstract ReleaseClaimed: now: DateTimeOffset * cancel: CancellationToken -> Task<int>
