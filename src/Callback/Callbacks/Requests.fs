namespace Callback.Callbacks

open System
open System.Threading
open System.Threading.Tasks
open Microsoft.Extensions.Logging
open Callback
open Callback.Calls
open Callback.Domain

/// What became of a valid callback request.
type RequestOutcome =
    /// Accepted and placed now: the pipeline's outcome (its booleans are the answer's).
    | PlacedNow of CallbackOutcome
    /// Accepted and due at this instant: the dispatcher places it then.
    | Scheduled of CallId * DateTimeOffset
    /// The number already has a call (live, pending, or that reached Asterisk within the window).
    | DuplicateOf of StoredCall * StageResults
    /// The store could not record it: nothing was sent.
    | NotAccepted

/// Places one attempt of an accepted call: `Pipeline.place` with its tracking, settings and gate.
type PlaceAttempt = CallId * Attempt -> CallbackRequest -> CancellationToken -> Task<CallbackOutcome>

/// Durable requests: every valid request is written to the store before any AMI traffic, then placed
/// (now, or by the dispatcher at its time). A request for a number that already has a call gets that call.
[<Sealed>]
type CallbackRequests
    (
        requests: IRequestStore,
        key: NumberKey,
        settings: RequestSettings,
        tracked: bool,
        place: PlaceAttempt,
        time: TimeProvider,
        wake: DateTimeOffset -> unit,
        logger: ILogger
    ) =

    /// Whether nothing of the attempt reached Asterisk's dialplan: no session, no socket, no Login. Such
    /// an attempt can be given up (now) or tried again (the dispatcher) without ringing anyone twice.
    static member NothingSent(outcome: CallbackOutcome) =
        match outcome.Failure with
        | Some NoFreeSession
        | Some(SocketFailed _)
        | Some(LoginFailed _)
        | Some NotRecorded -> true
        | Some(OriginateFailed _)
        | Some(LogoffFailed _)
        | None -> false

    member private _.Write(what: string, callId: CallId, write: unit -> Task) =
        task {
            try
                do! write ()
            with e ->
                logger.LogError(
                    "Call {CallId}: the store could not {What}: {Error}",
                    CallId.short callId,
                    what,
                    e.Message
                )
        }

    /// The request's first attempt, placed now; an attempt nothing of which was sent ends the call
    /// `failed`/`error` before the visitor is answered (502/503), so it is never dialled after that.
    member private this.PlaceNow(callId: CallId, request: CallbackRequest) =
        task {
            let! outcome = place (callId, Attempt.first) request CancellationToken.None

            if CallbackRequests.NothingSent outcome then
                do!
                    this.Write(
                        "end it unsent",
                        callId,
                        fun () ->
                            requests.Abandon(callId, Attempt.first, time.GetUtcNow(), CancellationToken.None) :> Task
                    )

            do!
                this.Write(
                    "record its answer",
                    callId,
                    fun () -> requests.RecordStages(callId, outcome.Stages, true, CancellationToken.None)
                )

            return PlacedNow outcome
        }

    /// The call that makes `request` a duplicate now, if any (before the rate limits: a visitor who
    /// presses twice gets the call, not a refusal). A store that cannot be read answers None: `Submit`
    /// checks again.
    member _.Duplicate(request: CallbackRequest) =
        task {
            try
                let since = time.GetUtcNow() - settings.DuplicateWindow

                return!
                    requests.FindDuplicate(
                        NumberKey.of' key request.PhoneNumber,
                        since,
                        tracked,
                        CancellationToken.None
                    )
            with e ->
                logger.LogError("The store could not be searched for a duplicate: {Error}", e.Message)
                return None
        }

    /// Records `request` (placed now when `dueAt` is None, else due then), or finds its duplicate, in one
    /// write transaction before any AMI traffic; then places it now if it is this request's to place.
    member this.Submit(request: CallbackRequest, dueAt: DateTimeOffset option) : Task<RequestOutcome> =
        task {
            let now = time.GetUtcNow()

            let accepted = {
                CallId = CallId.create ()
                Language = request.Language
                Number = request.PhoneNumber
                NumberKey = NumberKey.of' key request.PhoneNumber
                AcceptedAt = now
                DueAt = dueAt
                DuplicateSince = now - settings.DuplicateWindow
                Tracked = tracked
            }

            let! acceptance =
                task {
                    try
                        let! acceptance = requests.Accept(accepted, CancellationToken.None)
                        return Some acceptance
                    with e ->
                        logger.LogError(
                            "Callback to {Number}: the store could not record it, so nothing is sent: {Error}",
                            PhoneNumber.masked request.PhoneNumber,
                            e.Message
                        )

                        return None
                }

            match acceptance, dueAt with
            | None, _ -> return NotAccepted
            | Some(Duplicate(call, stages)), _ -> return DuplicateOf(call, stages)
            | Some Accepted, Some at ->
                wake at
                return Scheduled(accepted.CallId, at)
            | Some Accepted, None -> return! this.PlaceNow(accepted.CallId, request)
        }
