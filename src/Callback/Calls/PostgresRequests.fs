namespace Callback.Calls

open System
open System.Threading
open System.Threading.Tasks
open Npgsql
open NpgsqlTypes
open Callback.Domain

/// The durable requests on PostgreSQL, for several replicas: each phase move is one UPDATE naming the
/// phase and attempt it expects, as in SQLite; a claim is taken with `FOR UPDATE SKIP LOCKED` (two
/// replicas claiming at once take different attempts, neither waits for the other) and holds a lease,
/// `locked_until`: an attempt claimed by a replica that died before sending anything is claimed again
/// once its lease is over, and a replica that starts releases only expired leases, never a live
/// replica's claim.
[<RequireQualifiedAccess>]
module internal PostgresRequests =

    /// How long a claim holds before another replica may take the attempt again. A claim becomes `sent`
    /// (or goes back to `due`) within one AMI connect and Login, seconds; a lease far longer never lets two
    /// replicas hold one attempt at once.
    let ClaimLease = TimeSpan.FromMinutes 5.0

    let private p = PostgresStore.parameter
    let private execute = PostgresStore.execute
    let private time = PostgresStore.time

    let private id (callId: CallId) =
        PostgresStore.idParameter (CallId.value callId)

    let private attemptOf attempt =
        p "attempt" NpgsqlDbType.Integer (Attempt.number attempt)

    /// The call that makes a request for `numberKey` a duplicate, and its request's five booleans.
    let private duplicateOf connection (numberKey: string) (since: DateTimeOffset) (tracked: bool) cancel =
        task {
            use command =
                PostgresStore.command
                    connection
                    "SELECT call_id, socket, ami_login, ami_orig, ami_logoff, call_spooled FROM calls WHERE number_key = @key AND ((state = 'queued' AND phase IN ('due', 'claimed')) OR (@tracked AND state NOT IN ('ended', 'failed')) OR (created_at >= @since AND reached)) ORDER BY created_at DESC LIMIT 1"
                    [
                        p "key" NpgsqlDbType.Text numberKey
                        p "since" NpgsqlDbType.TimestampTz (time since)
                        p "tracked" NpgsqlDbType.Boolean tracked
                    ]

            use! reader = command.ExecuteReaderAsync(cancel: CancellationToken)
            let! found = reader.ReadAsync cancel

            if found then
                return
                    Some(
                        reader.GetString 0,
                        {
                            Socket = reader.GetBoolean 1
                            AmiLogin = reader.GetBoolean 2
                            AmiOrig = reader.GetBoolean 3
                            AmiLogoff = reader.GetBoolean 4
                            CallSpooled = reader.GetBoolean 5
                        }
                    )
            else
                return None
        }

    let private duplicate connection numberKey since tracked cancel =
        task {
            match! duplicateOf connection numberKey since tracked cancel with
            | Some(found, stages) ->
                let! calls =
                    PostgresStore.selectIn
                        connection
                        "c.call_id = @id"
                        (fun () -> [ PostgresStore.idParameter found ])
                        cancel

                return calls |> List.tryHead |> Option.map (fun call -> call, stages)
            | None -> return None
        }

    let findDuplicate (connection: NpgsqlConnection) numberKey since tracked (cancel: CancellationToken) =
        task {
            use! transaction =
                connection.BeginTransactionAsync(Data.IsolationLevel.RepeatableRead, cancel)

            let! found = duplicate connection numberKey since tracked cancel
            do! transaction.CommitAsync cancel
            return found
        }

    /// The duplicate check and the insert under a lock on the number's key, held to the commit: of two
    /// requests for one number at once, on one replica or two, the second sees the first's call.
    let accept (connection: NpgsqlConnection) (request: Request) (cancel: CancellationToken) =
        task {
            use! transaction = connection.BeginTransactionAsync cancel

            let! _ =
                execute
                    connection
                    "SELECT pg_advisory_xact_lock(hashtextextended(@key, 0))"
                    [ p "key" NpgsqlDbType.Text request.NumberKey ]
                    cancel

            match! duplicate connection request.NumberKey request.DuplicateSince request.Tracked cancel with
            | Some(call, stages) -> return Duplicate(call, stages)
            | None ->
                let callId = CallId.value request.CallId

                let phase, due, lease =
                    match request.DueAt with
                    | None -> "claimed", null, box (time (request.AcceptedAt + ClaimLease))
                    | Some at -> "due", box (time at), null

                let! _ =
                    execute
                        connection
                        "INSERT INTO calls (call_id, attempt, language, masked_number, created_at, updated_at, state, number_key, number, phase, due_at, locked_until) VALUES (@id, 1, @language, @masked, @at, @at, 'queued', @key, @number, @phase, @due, @lease)"
                        [
                            PostgresStore.idParameter callId
                            p "language" NpgsqlDbType.Text (SqliteRows.languageName request.Language)
                            p "masked" NpgsqlDbType.Text (PhoneNumber.masked request.Number)
                            p "at" NpgsqlDbType.TimestampTz (time request.AcceptedAt)
                            p "key" NpgsqlDbType.Text request.NumberKey
                            p "number" NpgsqlDbType.Text request.Number.Digits
                            p "phase" NpgsqlDbType.Text phase
                            p "due" NpgsqlDbType.TimestampTz due
                            p "lease" NpgsqlDbType.TimestampTz lease
                        ]
                        cancel

                let queued = {
                    State = State.Queued
                    At = request.AcceptedAt
                }

                do! PostgresStore.appendTransitions connection callId Attempt.first [ queued ] cancel
                do! transaction.CommitAsync cancel
                return Accepted
        }

    /// One UPDATE guarded by the call's id and attempt (and what `sql` adds), with `also` in the same
    /// transaction when it moved the row; true when it did.
    let private move (connection: NpgsqlConnection) sql callId attempt parameters (also: unit -> Task) cancel =
        task {
            use! transaction = connection.BeginTransactionAsync(cancel: CancellationToken)

            let! moved =
                execute connection sql ([ id callId; attemptOf attempt ] @ parameters) cancel

            if moved = 1 then
                do! also ()
                do! transaction.CommitAsync cancel

            return moved = 1
        }

    let markSent connection callId attempt (at: DateTimeOffset) cancel =
        move
            connection
            "UPDATE calls SET phase = 'sent', locked_until = NULL WHERE call_id = @id AND attempt = @attempt AND phase = 'claimed' AND state = 'queued'"
            callId
            attempt
            []
            (fun () -> PostgresStore.startAttempt connection (CallId.value callId) attempt at cancel)
            cancel

    let recordStages connection callId (stages: StageResults) (original: bool) cancel =
        task {
            let! _ =
                execute
                    connection
                    "UPDATE calls SET reached = reached OR @spooled, socket = CASE WHEN @original THEN @socket ELSE socket END, ami_login = CASE WHEN @original THEN @login ELSE ami_login END, ami_orig = CASE WHEN @original THEN @orig ELSE ami_orig END, ami_logoff = CASE WHEN @original THEN @logoff ELSE ami_logoff END, call_spooled = CASE WHEN @original THEN @spooled ELSE call_spooled END WHERE call_id = @id"
                    [
                        id callId
                        p "original" NpgsqlDbType.Boolean original
                        p "socket" NpgsqlDbType.Boolean stages.Socket
                        p "login" NpgsqlDbType.Boolean stages.AmiLogin
                        p "orig" NpgsqlDbType.Boolean stages.AmiOrig
                        p "logoff" NpgsqlDbType.Boolean stages.AmiLogoff
                        p "spooled" NpgsqlDbType.Boolean stages.CallSpooled
                    ]
                    cancel

            ()
        }

    let abandon connection callId attempt (at: DateTimeOffset) cancel =
        let key = CallId.value callId

        move
            connection
            "UPDATE calls SET state = 'failed', outcome = 'error', number = NULL, locked_until = NULL, updated_at = @at WHERE call_id = @id AND attempt = @attempt AND phase = 'claimed' AND state = 'queued'"
            callId
            attempt
            [ p "at" NpgsqlDbType.TimestampTz (time at) ]
            (fun () ->
                task {
                    let failed = { State = State.Failed; At = at }
                    do! PostgresStore.appendTransitions connection key attempt [ failed ] cancel
                    do! PostgresStore.endAttempt connection key attempt (Failed(FailedOutcome.Error, None)) at cancel
                })
            cancel

    let postpone connection callId attempt (dueAt: DateTimeOffset) cancel =
        move
            connection
            "UPDATE calls SET phase = 'due', due_at = @due, locked_until = NULL WHERE call_id = @id AND attempt = @attempt AND phase = 'claimed' AND state = 'queued'"
            callId
            attempt
            [ p "due" NpgsqlDbType.TimestampTz (time dueAt) ]
            (fun () -> Task.CompletedTask)
            cancel

    /// `due` → `claimed` for the earliest attempts due by `now`, and the claims whose lease is over, as
    /// River and Oban claim jobs: `FOR UPDATE SKIP LOCKED` in a CTE, then one UPDATE … RETURNING.
    let claimDue (connection: NpgsqlConnection) (now: DateTimeOffset) (limit: int) (cancel: CancellationToken) =
        task {
            use command =
                PostgresStore.command
                    connection
                    """WITH due AS (
                           SELECT call_id FROM calls
                           WHERE state = 'queued' AND ((phase = 'due' AND due_at <= @now) OR (phase = 'claimed' AND locked_until <= @now))
                           ORDER BY COALESCE(due_at, locked_until) LIMIT @limit
                           FOR UPDATE SKIP LOCKED)
                       UPDATE calls SET phase = 'claimed', locked_until = @lease FROM due WHERE calls.call_id = due.call_id
                       RETURNING calls.call_id, calls.attempt, calls.language, calls.number"""
                    [
                        p "now" NpgsqlDbType.TimestampTz (time now)
                        p "lease" NpgsqlDbType.TimestampTz (time (now + ClaimLease))
                        p "limit" NpgsqlDbType.Integer limit
                    ]

            use! reader = command.ExecuteReaderAsync cancel
            let claimed = ResizeArray()

            while! reader.ReadAsync cancel do
                let digits = if reader.IsDBNull 3 then None else Some(reader.GetString 3)

                claimed.Add(
                    SqliteRows.readCallId (reader.GetString 0),
                    SqliteRows.readAttempt (int64 (reader.GetInt32 1)),
                    SqliteRows.readLanguage (reader.GetString 2),
                    digits |> Option.bind (fun d -> PhoneNumber.tryParse d |> Result.toOption)
                )

            return List.ofSeq claimed
        }

    /// How many attempts are due from `from` until before `until`.
    let countDue connection (from: DateTimeOffset) (until: DateTimeOffset) (cancel: CancellationToken) =
        task {
            use command =
                PostgresStore.command
                    connection
                    "SELECT COUNT(*) FROM calls WHERE phase = 'due' AND due_at >= @from AND due_at < @until"
                    [
                        p "from" NpgsqlDbType.TimestampTz (time from)
                        p "until" NpgsqlDbType.TimestampTz (time until)
                    ]

            let! count = command.ExecuteScalarAsync cancel
            return int (count :?> int64)
        }

    /// When the next attempt is due, or the next lease ends.
    let nextDue connection (cancel: CancellationToken) =
        task {
            use command =
                PostgresStore.command
                    connection
                    "SELECT MIN(CASE WHEN phase = 'due' THEN due_at ELSE locked_until END) FROM calls WHERE state = 'queued' AND phase IN ('due', 'claimed')"
                    []

            let! found = command.ExecuteScalarAsync cancel

            return
                match found with
                | :? DateTime as at -> Some(DateTimeOffset(DateTime.SpecifyKind(at, DateTimeKind.Utc)))
                | _ -> None
        }

    /// Attempt n ends as `ended` says and attempt n+1 is queued, due at `dueAt`, in one transaction.
    let retry
        (connection: NpgsqlConnection)
        callId
        (expected: Expected)
        (ended: Change)
        (dueAt: DateTimeOffset)
        cancel
        =
        task {
            use! transaction = connection.BeginTransactionAsync(cancel: CancellationToken)
            let key = CallId.value callId
            let next = Attempt.next expected.Attempt

            let! moved =
                execute
                    connection
                    "UPDATE calls SET attempt = @next, state = 'queued', outcome = NULL, talk_ms = NULL, cause_code = NULL, cause_text = NULL, sip_code = NULL, updated_at = @at, phase = 'due', due_at = @due, locked_until = NULL WHERE call_id = @id AND attempt = @attempt AND state = @state AND phase = 'sent'"
                    [
                        id callId
                        attemptOf expected.Attempt
                        p "next" NpgsqlDbType.Integer (Attempt.number next)
                        p "at" NpgsqlDbType.TimestampTz (time ended.At)
                        p "due" NpgsqlDbType.TimestampTz (time dueAt)
                        p "state" NpgsqlDbType.Text (Names.state expected.State)
                    ]
                    cancel

            if moved = 1 then
                let live =
                    ended.Transitions
                    |> List.filter (fun t -> t.State <> State.Ended && t.State <> State.Failed)

                do! PostgresStore.appendTransitions connection key expected.Attempt live cancel

                do!
                    PostgresStore.appendTransitions
                        connection
                        key
                        next
                        [ { State = State.Queued; At = ended.At } ]
                        cancel

                do! PostgresStore.endAttempt connection key expected.Attempt ended.Status ended.At cancel
                do! transaction.CommitAsync cancel
                return Saved
            else
                use exists =
                    PostgresStore.command connection "SELECT 1 FROM calls WHERE call_id = @id" [ id callId ]

                let! found = exists.ExecuteScalarAsync cancel
                return if isNull found then UnknownCall else Stale
        }

    /// The claims whose lease is over go back to `due` (due now if they had no time): a replica that
    /// starts releases what a dead one held, never what a live one is placing.
    let releaseClaimed connection (now: DateTimeOffset) cancel =
        execute
            connection
            "UPDATE calls SET phase = 'due', due_at = COALESCE(due_at, @now), locked_until = NULL WHERE phase = 'claimed' AND state = 'queued' AND locked_until <= @now"
            [ p "now" NpgsqlDbType.TimestampTz (time now) ]
            cancel
