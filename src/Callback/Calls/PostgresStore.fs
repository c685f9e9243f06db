namespace Callback.Calls

open System
open System.Threading
open System.Threading.Tasks
open Npgsql
open NpgsqlTypes
open Callback.Domain

/// The store's statements on PostgreSQL: the same rows and the same compare-and-set as SQLite's, so any
/// number of replicas can share one database. Each write is one transaction; each read is one statement,
/// hence one snapshot, even under READ COMMITTED.
[<RequireQualifiedAccess>]
module internal PostgresStore =

    /// Whole milliseconds in UTC, as SQLite keeps them: the same call reads back the same from both stores
    /// (and Npgsql writes only offset-zero values to `timestamptz`).
    let time (at: DateTimeOffset) =
        DateTimeOffset.FromUnixTimeMilliseconds(at.ToUnixTimeMilliseconds())

    /// The channel a committed move is announced on (its payload the call id), so the other replicas can
    /// hand it to their streams' watchers.
    [<Literal>]
    let MovesChannel = "callback_call_moved"

    let internal parameter (name: string) (kind: NpgsqlDbType) (value: obj) =
        NpgsqlParameter(name, kind, Value = (if isNull value then box DBNull.Value else value))

    let internal optional (value: 'T option) : obj =
        match value with
        | Some v -> box v
        | None -> null

    let internal command (connection: NpgsqlConnection) (sql: string) (parameters: NpgsqlParameter list) =
        let command = new NpgsqlCommand(sql, connection)

        for p in parameters do
            command.Parameters.Add p |> ignore

        command

    let internal execute connection sql parameters (cancel: CancellationToken) =
        task {
            use command = command connection sql parameters
            return! command.ExecuteNonQueryAsync cancel
        }

    let internal idParameter (callId: string) = parameter "id" NpgsqlDbType.Text callId

    let private readOptional (reader: NpgsqlDataReader) i (read: int -> 'T) =
        if reader.IsDBNull i then None else Some(read i)

    /// The call's columns (0-13) and one transition's (14-17) per row.
    let private selectSql where =
        $"""SELECT c.call_id, c.attempt, c.language, c.masked_number, c.created_at, c.updated_at, c.state,
                   c.outcome, c.talk_ms, c.cause_code, c.cause_text, c.sip_code, c.due_at, c.phase,
                   t.seq, t.attempt, t.state, t.at
            FROM calls c LEFT JOIN transitions t ON t.call_id = c.call_id
            WHERE {where}
            ORDER BY c.created_at, c.call_id, t.seq"""

    /// The hangup cause in three columns from `first` (code, text, SIP code), None without a code.
    let private causeAt (r: NpgsqlDataReader) first =
        readOptional r first r.GetInt32
        |> Option.map (fun code -> {
            Code = code
            Text = readOptional r (first + 1) r.GetString |> Option.defaultValue ""
            SipCode = readOptional r (first + 2) r.GetInt32
        })

    let private readCall (r: NpgsqlDataReader) history = {
        CallId = SqliteRows.readCallId (r.GetString 0)
        Attempt = SqliteRows.readAttempt (int64 (r.GetInt32 1))
        Language = SqliteRows.readLanguage (r.GetString 2)
        MaskedNumber = r.GetString 3
        CreatedAt = r.GetFieldValue<DateTimeOffset> 4
        UpdatedAt = r.GetFieldValue<DateTimeOffset> 5
        Status =
            SqliteRows.readStatus
                (SqliteRows.readState (r.GetString 6))
                (readOptional r 7 r.GetString)
                (readOptional r 8 r.GetInt64)
                (causeAt r 9)
        History = history
        Attempts = []
        ScheduledFor =
            if r.GetString 13 = "due" then
                readOptional r 12 r.GetFieldValue<DateTimeOffset>
            else
                None
    }

    let private readTransition (r: NpgsqlDataReader) =
        if r.IsDBNull 14 then
            None
        else
            Some {
                Sequence = r.GetInt64 14
                Attempt = SqliteRows.readAttempt (int64 (r.GetInt32 15))
                Transition = {
                    State = SqliteRows.readState (r.GetString 16)
                    At = r.GetFieldValue<DateTimeOffset> 17
                }
            }

    /// The attempts of the calls `where` selects, by call id, the first first.
    let private attemptsOf connection where parameters (cancel: CancellationToken) =
        task {
            use command =
                command
                    connection
                    $"SELECT a.call_id, a.n, a.started_at, a.outcome, a.cause_code, a.cause_text, a.sip_code FROM attempts a JOIN calls c ON c.call_id = a.call_id WHERE {where} ORDER BY a.call_id, a.n"
                    parameters

            use! reader = command.ExecuteReaderAsync cancel
            let byCall = Collections.Generic.Dictionary<string, ResizeArray<AttemptRecord>>()

            while! reader.ReadAsync cancel do
                let id = reader.GetString 0

                if not (byCall.ContainsKey id) then
                    byCall[id] <- ResizeArray()

                byCall[id].Add {
                    Attempt = SqliteRows.readAttempt (int64 (reader.GetInt32 1))
                    StartedAt = reader.GetFieldValue<DateTimeOffset> 2
                    Outcome = readOptional reader 3 reader.GetString
                    Cause = causeAt reader 4
                }

            return byCall
        }

    /// The calls `where` selects (on `calls c`), each with its history and attempts, oldest call first,
    /// inside a transaction the caller holds (its snapshot covers both statements).
    let selectIn connection where (parameters: unit -> NpgsqlParameter list) (cancel: CancellationToken) =
        task {
            let! attempts = attemptsOf connection where (parameters ()) cancel
            use command = command connection (selectSql where) (parameters ())
            use! reader = command.ExecuteReaderAsync cancel
            let calls = ResizeArray<StoredCall>()
            let history = ResizeArray<SavedTransition>()
            let mutable current: string = null

            let flush () =
                if not (isNull current) then
                    let call = calls[calls.Count - 1]

                    let tried =
                        match attempts.TryGetValue current with
                        | true, rows -> List.ofSeq rows
                        | _ -> []

                    calls[calls.Count - 1] <- {
                        call with
                            History = List.ofSeq history
                            Attempts = tried
                    }

                    history.Clear()

            while! reader.ReadAsync cancel do
                let id = reader.GetString 0

                if id <> current then
                    flush ()
                    current <- id
                    calls.Add(readCall reader [])

                readTransition reader |> Option.iter history.Add

            flush ()
            return List.ofSeq calls
        }

    /// `selectIn` in a REPEATABLE READ, read-only transaction: the calls, their transitions and their
    /// attempts from one snapshot, so a save cannot land between two of the reads.
    let select (connection: NpgsqlConnection) where parameters (cancel: CancellationToken) : Task<StoredCall list> =
        task {
            use! transaction =
                connection.BeginTransactionAsync(Data.IsolationLevel.RepeatableRead, cancel)

            let! calls = selectIn connection where parameters cancel
            do! transaction.CommitAsync cancel
            return calls
        }

    let internal appendTransitions connection (callId: string) attempt (transitions: Transition list) cancel =
        task {
            for transition in transitions do
                let! _ =
                    execute
                        connection
                        "INSERT INTO transitions (call_id, seq, attempt, state, at) VALUES (@id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM transitions WHERE call_id = @id), @attempt, @state, @at)"
                        [
                            idParameter callId
                            parameter "attempt" NpgsqlDbType.Integer (Attempt.number attempt)
                            parameter "state" NpgsqlDbType.Text (Names.state transition.State)
                            parameter "at" NpgsqlDbType.TimestampTz (time transition.At)
                        ]
                        cancel

                ()
        }

    /// Records that attempt `attempt` of the call starts (its Originate is about to be sent) at `at`.
    let internal startAttempt connection (callId: string) attempt (at: DateTimeOffset) cancel =
        task {
            let! _ =
                execute
                    connection
                    "INSERT INTO attempts (call_id, n, started_at) VALUES (@id, @n, @at) ON CONFLICT (call_id, n) DO NOTHING"
                    [
                        idParameter callId
                        parameter "n" NpgsqlDbType.Integer (Attempt.number attempt)
                        parameter "at" NpgsqlDbType.TimestampTz (time at)
                    ]
                    cancel

            ()
        }

    /// Records how attempt `attempt` ended (`status`, final), creating its row if it never started.
    let internal endAttempt connection (callId: string) attempt (status: CallStatus) (at: DateTimeOffset) cancel =
        task {
            let cause = SqliteRows.cause status

            let! _ =
                execute
                    connection
                    "INSERT INTO attempts (call_id, n, started_at, outcome, cause_code, cause_text, sip_code) VALUES (@id, @n, @at, @outcome, @code, @text, @sip) ON CONFLICT (call_id, n) DO UPDATE SET outcome = excluded.outcome, cause_code = excluded.cause_code, cause_text = excluded.cause_text, sip_code = excluded.sip_code"
                    [
                        idParameter callId
                        parameter "n" NpgsqlDbType.Integer (Attempt.number attempt)
                        parameter "at" NpgsqlDbType.TimestampTz (time at)
                        parameter "outcome" NpgsqlDbType.Text (optional (Names.outcome status))
                        parameter "code" NpgsqlDbType.Integer (optional (cause |> Option.map _.Code))
                        parameter "text" NpgsqlDbType.Text (optional (cause |> Option.map _.Text))
                        parameter "sip" NpgsqlDbType.Integer (optional (cause |> Option.bind _.SipCode))
                    ]
                    cancel

            ()
        }

    let internal isFinal status =
        match status with
        | Live _ -> false
        | Ended _
        | Failed _ -> true

    /// Records the call and its `queued` transition in one transaction; false when the id is taken (the
    /// insert waits for a concurrent one of the same id, then does nothing).
    let create (connection: NpgsqlConnection) (call: NewCall) (cancel: CancellationToken) =
        task {
            use! transaction = connection.BeginTransactionAsync cancel
            let id = CallId.value call.CallId

            let! inserted =
                execute
                    connection
                    "INSERT INTO calls (call_id, attempt, language, masked_number, created_at, updated_at, state) VALUES (@id, @attempt, @language, @number, @at, @at, 'queued') ON CONFLICT (call_id) DO NOTHING"
                    [
                        idParameter id
                        parameter "attempt" NpgsqlDbType.Integer (Attempt.number call.Attempt)
                        parameter "language" NpgsqlDbType.Text (SqliteRows.languageName call.Language)
                        parameter "number" NpgsqlDbType.Text call.MaskedNumber
                        parameter "at" NpgsqlDbType.TimestampTz (time call.CreatedAt)
                    ]
                    cancel

            if inserted = 1 then
                let queued = {
                    State = State.Queued
                    At = call.CreatedAt
                }

                do! appendTransitions connection id call.Attempt [ queued ] cancel

            do! transaction.CommitAsync cancel
            return inserted = 1
        }

    /// The compare-and-set. A concurrent UPDATE of the same row waits for the first to commit, then
    /// re-checks its WHERE on the row as committed (READ COMMITTED), so of two writers holding the same
    /// expectation, on one replica or two, one moves the call and the other updates nothing.
    let save (connection: NpgsqlConnection) callId (expected: Expected) (change: Change) (cancel: CancellationToken) =
        task {
            use! transaction = connection.BeginTransactionAsync cancel
            let id = CallId.value callId
            let outcome, talk = SqliteRows.outcome change.Status
            let cause = SqliteRows.cause change.Status

            let! moved =
                execute
                    connection
                    "UPDATE calls SET attempt = @attempt, state = @state, outcome = @outcome, talk_ms = @talk, cause_code = @code, cause_text = @text, sip_code = @sip, updated_at = @at, number = CASE WHEN @final THEN NULL ELSE number END WHERE call_id = @id AND attempt = @expectedAttempt AND state = @expectedState"
                    [
                        idParameter id
                        parameter "attempt" NpgsqlDbType.Integer (Attempt.number change.Attempt)
                        parameter "state" NpgsqlDbType.Text (Names.state (Store.stateOf change.Status))
                        parameter "outcome" NpgsqlDbType.Text (optional outcome)
                        parameter "talk" NpgsqlDbType.Bigint (optional talk)
                        parameter "code" NpgsqlDbType.Integer (optional (cause |> Option.map _.Code))
                        parameter "text" NpgsqlDbType.Text (optional (cause |> Option.map _.Text))
                        parameter "sip" NpgsqlDbType.Integer (optional (cause |> Option.bind _.SipCode))
                        parameter "at" NpgsqlDbType.TimestampTz (time change.At)
                        parameter "expectedAttempt" NpgsqlDbType.Integer (Attempt.number expected.Attempt)
                        parameter "expectedState" NpgsqlDbType.Text (Names.state expected.State)
                        // The digits are kept only while a later attempt may dial them.
                        parameter "final" NpgsqlDbType.Boolean (isFinal change.Status)
                    ]
                    cancel

            if moved = 1 then
                do! appendTransitions connection id change.Attempt change.Transitions cancel

                if isFinal change.Status then
                    do! endAttempt connection id change.Attempt change.Status change.At cancel

                // Inside the transaction: PostgreSQL delivers it on commit, never for a move rolled back.
                let! _ =
                    execute connection $"SELECT pg_notify('{MovesChannel}', @id)" [ idParameter id ] cancel

                do! transaction.CommitAsync cancel
                return Saved
            else
                use exists =
                    command connection "SELECT 1 FROM calls WHERE call_id = @id" [ idParameter id ]

                let! found = exists.ExecuteScalarAsync cancel
                return if isNull found then UnknownCall else Stale
        }

    /// Deletes the final calls last moved before `cutoff`; their transitions and attempts go with them
    /// (ON DELETE CASCADE).
    let prune (connection: NpgsqlConnection) (cutoff: DateTimeOffset) (cancel: CancellationToken) =
        execute
            connection
            "DELETE FROM calls WHERE state IN ('ended', 'failed') AND updated_at < @cutoff"
            [ parameter "cutoff" NpgsqlDbType.TimestampTz (time cutoff) ]
            cancel
