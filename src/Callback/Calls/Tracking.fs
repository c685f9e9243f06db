namespace Callback.Calls

open System
open System.Threading
open System.Threading.Tasks
open Microsoft.Extensions.Logging
open Callback.Domain

/// What the pipeline does around each Originate: `Spooling` records the attempt in the store (queued)
/// before the Originate is sent, and hands it to the monitor if there is one; false when the store could
/// not record it, and then no Originate may be sent. `Refused`: Asterisk refused the Originate, so the
/// call has failed (`error`) before it began.
type CallTracking = {
    Spooling: CallId -> Attempt -> CallbackRequest -> CancellationToken -> Task<bool>
    Refused: CallId -> Attempt -> Task
}

[<RequireQualifiedAccess>]
module CallTracking =

    /// Nothing recorded, nothing followed: the pipeline on its own (its tests, the benchmarks).
    let none = {
        Spooling = fun _ _ _ _ -> Task.FromResult true
        Refused = fun _ _ -> Task.CompletedTask
    }

    let private record (store: ICallStore) (time: TimeProvider) (logger: ILogger) callId attempt request cancel =
        task {
            let call = {
                CallId = callId
                Attempt = attempt
                Language = request.Language
                MaskedNumber = PhoneNumber.masked request.PhoneNumber
                CreatedAt = time.GetUtcNow()
            }

            try
                let! created = (store: ICallStore).Create(call, cancel)

                if not created then
                    logger.LogError(
                        "Call {CallId}: already in the store; no Originate is sent for it",
                        CallId.short callId
                    )

                return if created then Some call.CreatedAt else None
            with e ->
                logger.LogError(
                    "Call {CallId}: the store could not record it, so no Originate is sent: {Error}",
                    CallId.short callId,
                    e.Message
                )

                return None
        }

    /// The call failed with `error` at `at`, from `queued`: its Originate was refused.
    let private refusal attempt (at: DateTimeOffset) =
        let expected = {
            Attempt = attempt
            State = State.Queued
        }

        let change = {
            Attempt = attempt
            Status = Failed(FailedOutcome.Error, None)
            Transitions = [ { State = State.Failed; At = at } ]
            At = at
        }

        expected, change

    let private refuse (store: ICallStore) outcomes (time: TimeProvider) (logger: ILogger) callId attempt =
        task {
            let expected, change = refusal attempt (time.GetUtcNow())

            try
                match! store.Save(callId, expected, change, CancellationToken.None) with
                | Saved -> (outcomes: OutcomeCounts).Add change.Status
                | Stale
                | UnknownCall ->
                    logger.LogWarning("Call {CallId}: refused, but no longer queued in the store", CallId.short callId)
            with e ->
                logger.LogError(
                    "Call {CallId}: refused, and the store could not mark it failed: {Error}",
                    CallId.short callId,
                    e.Message
                )
        }

    /// Records every attempt in `store` before its Originate and hands it to `monitor`, if any; a refused
    /// Originate's call is forgotten by the monitor and marked `failed`/`error` in the store.
    let create (store: ICallStore) (monitor: CallMonitor option) outcomes (time: TimeProvider) (logger: ILogger) = {
        Spooling =
            fun callId attempt request cancel ->
                task {
                    match! record store time logger callId attempt request cancel with
                    | Some createdAt ->
                        monitor |> Option.iter (fun m -> m.Track(callId, attempt, createdAt))
                        return true
                    | None -> return false
                }
        Refused =
            fun callId attempt ->
                monitor |> Option.iter (fun m -> m.Forget callId)
                refuse store outcomes time logger callId attempt
    }

    /// For a call the request store accepted (`claimed`): each attempt is marked `sent` (a compare-and-set
    /// from `claimed`) just before its Originate, then handed to `monitor`, if any; an attempt that is not
    /// claimed any more, or that the store cannot mark, gets no Originate. A refused Originate as `create`.
    let durable
        (requests: IRequestStore)
        (store: ICallStore)
        (monitor: CallMonitor option)
        outcomes
        (time: TimeProvider)
        (logger: ILogger)
        =
        let created = create store monitor outcomes time logger

        {
            created with
                Spooling =
                    fun callId attempt _ cancel ->
                        task {
                            let at = time.GetUtcNow()

                            try
                                let! sent = requests.MarkSent(callId, attempt, at, cancel)

                                if sent then
                                    monitor |> Option.iter (fun m -> m.Track(callId, attempt, at))
                                else
                                    logger.LogError(
                                        "Call {CallId}: attempt {Attempt} is no longer claimed; no Originate is sent for it",
                                        CallId.short callId,
                                        Attempt.number attempt
                                    )

                                return sent
                            with e ->
                                logger.LogError(
                                    "Call {CallId}: the store could not mark it sent, so no Originate is sent: {Error}",
                                    CallId.short callId,
                                    e.Message
                                )

                                return false
                        }
        }
