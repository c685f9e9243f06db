namespace Callback.Calls

open System
open System.Threading
open System.Threading.Tasks
open Microsoft.Data.Sqlite
open Callback.Domain

/// The durable requests in SQLite: each phase move is one `BEGIN IMMEDIATE` transaction whose UPDATE
/// names the phase and attempt it expects, so of two workers (or a worker and a restart) one moves the
/// row and the other finds nothing to move.
[<RequireQualifiedAccess>]
module internal SqliteRequests =

    let private execute = SqliteStore.execute

    let private flag (value: bool) = box (if value then 1L else 0L)

    /// The call that makes a request for `numberKey` a duplicate: one not final (live, due or claimed),
    /// or one created since `since` that reached Asterisk; the newest.
    let private duplicateOf connection (numberKey: string) (since: DateTimeOffset) (tracked: bool) cancel =
        task {
            use command =
                SqliteStore.command
                    connection
                    "SELECT call_id, socket, ami_login, ami_orig, ami_logoff, call_spooled FROM calls WHERE number_key = $key AND ((state = 'queued' AND phase IN ('due', 'claimed')) OR ($tracked AND state NOT IN ('ended', 'failed')) OR (created_at >= $since AND reached = 1)) ORDER BY created_at DESC LIMIT 1"
                    [
                        "$key", box numberKey
                        "$since", box (SqliteRows.time since)
                        "$tracked", flag tracked
                    ]

            use! reader = command.ExecuteReaderAsync(cancel: CancellationToken)

            let! found = reader.ReadAsync cancel

            if found then
                let stage i = reader.GetInt64 i = 1L

                return
                    Some(
                        reader.GetString 0,
                        {
                            Socket = stage 1
                            AmiLogin = stage 2
                            AmiOrig = stage 3
                            AmiLogoff = stage 4
                            CallSpooled = stage 5
                        }
                    )
            else
                return None
        }

    let private insert hook connection (request: Request) cancel =
        task {
            let id = CallId.value request.CallId

            let phase, due =
                match request.DueAt with
                | None -> "claimed", box DBNull.Value
                | Some at -> "due", box (SqliteRows.time at)

            let! _ =
                execute
                    connection
                    "INSERT INTO calls (call_id, attempt, language, masked_number, created_at, updated_at, state, number_key, number, phase, due_at) VALUES ($id, 1, $language, $masked, $at, $at, 'queued', $key, $number, $phase, $due)"
                    [
                        "$id", box id
                        "$language", box (SqliteRows.languageName request.Language)
                        "$masked", box (PhoneNumber.masked request.Number)
                        "$at", box (SqliteRows.time request.AcceptedAt)
                        "$key", box request.NumberKey
                        "$number", box request.Number.Digits
                        "$phase", box phase
                        "$due", due
                    ]
                    cancel

            do!
                SqliteStore.appendTransitions
                    connection
                    id
                    Attempt.first
                    [
                        {
                            State = State.Queued
                            At = request.AcceptedAt
                        }
                    ]
                    cancel

            do! SqliteStore.written hook connection id 1 cancel
        }

    /// The duplicate and its five booleans, read inside the transaction the caller holds.
    let private duplicate connection numberKey since tracked cancel =
        task {
            match! duplicateOf connection numberKey since tracked cancel with
            | Some(id, stages) ->
                let! calls =
                    SqliteStore.selectInTransaction connection "c.call_id = $id" [ "$id", box id ] cancel

                return calls |> List.tryHead |> Option.map (fun call -> call, stages)
            | None -> return None
        }

    /// How long until the number's calls created so far leave room for one more under `limit` at `now`;
    /// None when there is room. A call counts if it may have rung the number: any but one that failed
    /// before reaching Asterisk (no socket, no Login, a refused Originate), which blocks nothing either.
    let private numberLimited connection (numberKey: string) (limit: NumberLimit) (now: DateTimeOffset) cancel =
        task {
            use command =
                SqliteStore.command
                    connection
                    "SELECT created_at FROM calls WHERE number_key = $key AND created_at > $since AND NOT (state = 'failed' AND reached = 0) ORDER BY created_at DESC"
                    [
                        "$key", box numberKey
                        "$since", box (SqliteRows.time (now - NumberLimit.day))
                    ]

            use! reader = command.ExecuteReaderAsync(cancel: CancellationToken)
            let created = ResizeArray<DateTimeOffset>()

            while! reader.ReadAsync cancel do
                created.Add(SqliteRows.readTime (reader.GetInt64 0))

            return NumberLimit.retryAfter limit now (List.ofSeq created)
        }

    let findDuplicate connection numberKey since tracked cancel =
        task {
            use _ = (connection: SqliteConnection).BeginTransaction(deferred = true)
            return! duplicate connection numberKey since tracked cancel
        }

    /// The duplicate check and the insert in one write transaction, so two requests for one number at
    /// once cannot both be accepted.
    let accept hook connection (request: Request) cancel =
        task {
            use transaction = (connection: SqliteConnection).BeginTransaction()

            match! duplicate connection request.NumberKey request.DuplicateSince request.Tracked cancel with
            | Some(call, stages) -> return Duplicate(call, stages)
            | None ->
                let! limited =
                    match request.PerNumber with
                    | Some limit -> numberLimited connection request.NumberKey limit request.AcceptedAt cancel
                    | None -> Task.FromResult None

                match limited with
                | Some after -> return NumberLimited after
                | None ->
                    do! insert hook connection request cancel
                    do! transaction.CommitAsync cancel
                    return Accepted
        }

    /// One UPDATE guarded by the call's id and attempt (and whatever `guard` adds), in its own write
    /// transaction with `also` when it moved the row; true when it did.
    let private move connection sql (callId: CallId) attempt parameters also cancel =
        task {
            use transaction = (connection: SqliteConnection).BeginTransaction()

            let! moved =
                execute
                    connection
                    sql
                    ([ "$id", box (CallId.value callId); "$attempt", box (Attempt.number attempt) ]
                     @ parameters)
                    cancel

            if moved = 1 then
                do! also ()
                do! transaction.CommitAsync cancel

            return moved = 1
        }

    let markSent connection callId attempt (at: DateTimeOffset) cancel =
        move
            connection
            "UPDATE calls SET phase = 'sent' WHERE call_id = $id AND attempt = $attempt AND phase = 'claimed' AND state = 'queued'"
            callId
            attempt
            []
            (fun () -> SqliteStore.startAttempt connection (CallId.value callId) attempt at cancel)
            cancel

    let recordStages connection callId (stages: StageResults) (original: bool) cancel =
        task {
            let! _ =
                execute
                    connection
                    "UPDATE calls SET reached = MAX(reached, $spooled), socket = CASE WHEN $original THEN $socket ELSE socket END, ami_login = CASE WHEN $original THEN $login ELSE ami_login END, ami_orig = CASE WHEN $original THEN $orig ELSE ami_orig END, ami_logoff = CASE WHEN $original THEN $logoff ELSE ami_logoff END, call_spooled = CASE WHEN $original THEN $spooled ELSE call_spooled END WHERE call_id = $id"
                    [
                        "$id", box (CallId.value callId)
                        "$original", flag original
                        "$socket", flag stages.Socket
                        "$login", flag stages.AmiLogin
                        "$orig", flag stages.AmiOrig
                        "$logoff", flag stages.AmiLogoff
                        "$spooled", flag stages.CallSpooled
                    ]
                    cancel

            ()
        }

    let abandon hook connection callId attempt (at: DateTimeOffset) cancel =
        let status = Failed(FailedOutcome.Error, None)
        let id = CallId.value callId

        move
            connection
            "UPDATE calls SET state = 'failed', outcome = 'error', number = NULL, updated_at = $at WHERE call_id = $id AND attempt = $attempt AND phase = 'claimed' AND state = 'queued'"
            callId
            attempt
            [ "$at", box (SqliteRows.time at) ]
            (fun () ->
                task {
                    do!
                        SqliteStore.appendTransitions
                            connection
                            id
                            attempt
                            [ { State = State.Failed; At = at } ]
                            cancel

                    do! SqliteStore.endAttempt connection id attempt status at cancel
                    do! SqliteStore.written hook connection id 1 cancel
                })
            cancel

    let postpone connection callId attempt (dueAt: DateTimeOffset) cancel =
        move
            connection
            "UPDATE calls SET phase = 'due', due_at = $due WHERE call_id = $id AND attempt = $attempt AND phase = 'claimed' AND state = 'queued'"
            callId
            attempt
            [ "$due", box (SqliteRows.time dueAt) ]
            (fun () -> task { return () })
            cancel

    /// `due` → `claimed` for the earliest attempts due by `now`, as River's SQLite driver claims jobs:
    /// one UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING, atomic in SQLite's single writer.
    let claimDue connection (now: DateTimeOffset) (limit: int) cancel =
        task {
            use transaction = (connection: SqliteConnection).BeginTransaction()

            use command =
                SqliteStore.command
                    connection
                    "UPDATE calls SET phase = 'claimed' WHERE call_id IN (SELECT call_id FROM calls WHERE phase = 'due' AND due_at <= $now ORDER BY due_at LIMIT $limit) RETURNING call_id, attempt, language, number"
                    [ "$now", box (SqliteRows.time now); "$limit", box limit ]

            let claimed = ResizeArray()

            do!
                task {
                    use! reader = command.ExecuteReaderAsync(cancel: CancellationToken)

                    while! reader.ReadAsync cancel do
                        claimed.Add(
                            SqliteRows.readCallId (reader.GetString 0),
                            SqliteRows.readAttempt (reader.GetInt64 1),
                            SqliteRows.readLanguage (reader.GetString 2),
                            (if reader.IsDBNull 3 then None else Some(reader.GetString 3))
                        )
                }

            do! transaction.CommitAsync cancel

            return
                claimed
                |> Seq.map (fun (callId, attempt, language, digits) ->
                    let number =
                        digits |> Option.bind (fun d -> PhoneNumber.tryParse d |> Result.toOption)

                    callId, attempt, language, number)
                |> List.ofSeq
        }

    let countDue connection (from: DateTimeOffset) (until: DateTimeOffset) cancel =
        task {
            use command =
                SqliteStore.command
                    connection
                    "SELECT COUNT(*) FROM calls WHERE phase = 'due' AND due_at >= $from AND due_at < $until"
                    [ "$from", box (SqliteRows.time from); "$until", box (SqliteRows.time until) ]

            let! found = command.ExecuteScalarAsync(cancel: CancellationToken)
            return Convert.ToInt32 found
        }

    let nextDue connection cancel =
        task {
            use command =
                SqliteStore.command connection "SELECT MIN(due_at) FROM calls WHERE phase = 'due'" []

            let! found = command.ExecuteScalarAsync(cancel: CancellationToken)

            return
                match found with
                | :? int64 as ms -> Some(SqliteRows.readTime ms)
                | _ -> None
        }

    /// Attempt n ends as `ended` says and attempt n+1 is queued, due at `dueAt`, in one transaction: the
    /// row goes from attempt n's live state straight back to `queued`; the history gets attempt n's live
    /// transitions (not its final one) and attempt n+1's `queued`; `attempts` gets n's outcome.
    let retry hook connection callId (expected: Expected) (ended: Change) (dueAt: DateTimeOffset) cancel =
        task {
            use transaction = (connection: SqliteConnection).BeginTransaction()
            let id = CallId.value callId
            let next = Attempt.next expected.Attempt

            let! moved =
                execute
                    connection
                    "UPDATE calls SET attempt = $next, state = 'queued', outcome = NULL, talk_ms = NULL, cause_code = NULL, cause_text = NULL, sip_code = NULL, updated_at = $at, phase = 'due', due_at = $due WHERE call_id = $id AND attempt = $attempt AND state = $state AND phase = 'sent'"
                    [
                        "$id", box id
                        "$next", box (Attempt.number next)
                        "$at", box (SqliteRows.time ended.At)
                        "$due", box (SqliteRows.time dueAt)
                        "$attempt", box (Attempt.number expected.Attempt)
                        "$state", box (Names.state expected.State)
                    ]
                    cancel

            if moved = 1 then
                let live =
                    ended.Transitions
                    |> List.filter (fun t -> t.State <> State.Ended && t.State <> State.Failed)

                do! SqliteStore.appendTransitions connection id expected.Attempt live cancel
                do! SqliteStore.appendTransitions connection id next [ { State = State.Queued; At = ended.At } ] cancel
                do! SqliteStore.endAttempt connection id expected.Attempt ended.Status ended.At cancel
                do! SqliteStore.written hook connection id (live.Length + 1) cancel
                do! transaction.CommitAsync cancel
                return Saved
            else
                use exists =
                    SqliteStore.command connection "SELECT 1 FROM calls WHERE call_id = $id" [ "$id", box id ]

                let! found = exists.ExecuteScalarAsync cancel
                return if isNull found then UnknownCall else Stale
        }

    /// Every live `claimed` attempt back to `due`, due now if it had no time (a request's own attempt).
    let releaseClaimed connection (now: DateTimeOffset) cancel =
        task {
            use transaction = (connection: SqliteConnection).BeginTransaction()

            let! released =
                execute
                    connection
                    "UPDATE calls SET phase = 'due', due_at = COALESCE(due_at, $now) WHERE phase = 'claimed' AND state = 'queued'"
                    [ "$now", box (SqliteRows.time now) ]
                    cancel

            do! transaction.CommitAsync cancel
            return released
        }
