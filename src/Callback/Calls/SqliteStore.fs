namespace Callback.Calls

open System
open System.Collections.Generic
open System.IO
open System.Threading
open System.Threading.Tasks
open Microsoft.Data.Sqlite
open Callback.Domain

/// The embedded store: one SQLite file in the data directory, one row per call plus its transitions.
/// WAL with `synchronous=FULL`: a move the store answered `Saved` survives a power cut, not only a crash of
/// the process (WAL's default, NORMAL, may lose the last commits then), while readers never wait for a writer.
[<RequireQualifiedAccess>]
module SqliteStore =

    /// The database file inside the data directory.
    [<Literal>]
    let FileName = "callback.db"

    let private dbValue (value: 'T option) : obj =
        match value with
        | Some v -> box v
        | None -> box DBNull.Value

    let internal command (connection: SqliteConnection) (sql: string) (parameters: (string * obj) list) =
        let command = connection.CreateCommand()
        command.CommandText <- sql

        for name, value in parameters do
            command.Parameters.AddWithValue(name, value) |> ignore

        command

    let internal execute connection sql parameters (cancel: CancellationToken) =
        task {
            use command = command connection sql parameters
            return! command.ExecuteNonQueryAsync cancel
        }

    let private optional (reader: SqliteDataReader) i (read: int -> 'T) =
        if reader.IsDBNull i then None else Some(read i)

    let private callColumns =
        "call_id, attempt, language, masked_number, created_at, updated_at, state, outcome, talk_ms, cause_code, cause_text, sip_code, due_at, phase"

    /// The hangup cause in three columns from `first` (code, text, SIP code), None without a code.
    let private causeAt (r: SqliteDataReader) first =
        optional r first r.GetInt32
        |> Option.map (fun code -> {
            Code = code
            Text = optional r (first + 1) r.GetString |> Option.defaultValue ""
            SipCode = optional r (first + 2) r.GetInt32
        })

    let private readCall (r: SqliteDataReader) history attempts =
        let cause = causeAt r 9

        {
            CallId = SqliteRows.readCallId (r.GetString 0)
            Attempt = SqliteRows.readAttempt (r.GetInt64 1)
            Language = SqliteRows.readLanguage (r.GetString 2)
            MaskedNumber = r.GetString 3
            CreatedAt = SqliteRows.readTime (r.GetInt64 4)
            UpdatedAt = SqliteRows.readTime (r.GetInt64 5)
            Status =
                SqliteRows.readStatus
                    (SqliteRows.readState (r.GetString 6))
                    (optional r 7 r.GetString)
                    (optional r 8 r.GetInt64)
                    cause
            History = history
            Attempts = attempts
            ScheduledFor =
                if r.GetString 13 = "due" then
                    optional r 12 r.GetInt64 |> Option.map SqliteRows.readTime
                else
                    None
        }

    /// The rows of `sql`, whose first column is the call id, read by `read` and grouped by call, in the
    /// order the query gives them.
    let private byCall connection sql parameters (read: SqliteDataReader -> 'T) cancel =
        task {
            use command = command connection sql parameters
            use! reader = command.ExecuteReaderAsync(cancel: CancellationToken)
            let grouped = Dictionary<string, ResizeArray<'T>>()

            while! reader.ReadAsync cancel do
                let id = reader.GetString 0

                if not (grouped.ContainsKey id) then
                    grouped[id] <- ResizeArray()

                grouped[id].Add(read reader)

            return grouped
        }

    /// The attempts of the calls `where` selects, by call id, the first first.
    let private attemptsOf connection where parameters cancel =
        byCall
            connection
            $"SELECT a.call_id, a.n, a.started_at, a.outcome, a.cause_code, a.cause_text, a.sip_code FROM attempts a JOIN calls c USING (call_id) WHERE {where} ORDER BY a.call_id, a.n"
            parameters
            (fun reader -> {
                Attempt = SqliteRows.readAttempt (reader.GetInt64 1)
                StartedAt = SqliteRows.readTime (reader.GetInt64 2)
                Outcome = optional reader 3 reader.GetString
                Cause = causeAt reader 4
            })
            cancel

    /// Transitions of the calls `where` selects, by call id, oldest first.
    let private histories connection where parameters cancel =
        byCall
            connection
            $"SELECT t.call_id, t.seq, t.attempt, t.state, t.at FROM transitions t JOIN calls c USING (call_id) WHERE {where} ORDER BY t.call_id, t.seq"
            parameters
            (fun reader -> {
                Sequence = reader.GetInt64 1
                Attempt = SqliteRows.readAttempt (reader.GetInt64 2)
                Transition = {
                    State = SqliteRows.readState (reader.GetString 3)
                    At = SqliteRows.readTime (reader.GetInt64 4)
                }
            })
            cancel

    /// The calls `where` selects (on `calls c`), each with its history and attempts, inside a transaction
    /// the caller holds (a write transaction that reads a call, or `select`'s read snapshot).
    let internal selectInTransaction connection where parameters cancel =
        task {
            let! history = histories connection where parameters cancel
            let! attempts = attemptsOf connection where parameters cancel

            use command =
                command connection $"SELECT {callColumns} FROM calls c WHERE {where}" parameters

            use! reader = command.ExecuteReaderAsync(cancel: CancellationToken)
            let calls = ResizeArray()

            while! reader.ReadAsync cancel do
                let listed (byCall: Dictionary<string, ResizeArray<'T>>) =
                    match byCall.TryGetValue(reader.GetString 0) with
                    | true, rows -> List.ofSeq rows
                    | _ -> []

                calls.Add(readCall reader (listed history) (listed attempts))

            return List.ofSeq calls
        }

    /// The calls `where` selects (on `calls c`), each with its history. Both reads are made in one read
    /// transaction, so they see one snapshot of the database: between two autocommit reads a save could
    /// land, and a call would come back with the new state but only the old history.
    let internal select connection where parameters cancel =
        task {
            // Deferred: a read snapshot, without taking the write lock the writer needs.
            use _ = (connection: SqliteConnection).BeginTransaction(deferred = true)
            return! selectInTransaction connection where parameters cancel
        }

    let internal appendTransitions connection (callId: string) attempt (transitions: Transition list) cancel =
        task {
            for transition in transitions do
                let! _ =
                    execute
                        connection
                        "INSERT INTO transitions (call_id, seq, attempt, state, at) VALUES ($id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM transitions WHERE call_id = $id), $attempt, $state, $at)"
                        [
                            "$id", box callId
                            "$attempt", box (Attempt.number attempt)
                            "$state", box (Names.state transition.State)
                            "$at", box (SqliteRows.time transition.At)
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
                    "INSERT INTO attempts (call_id, n, started_at) VALUES ($id, $n, $at) ON CONFLICT (call_id, n) DO NOTHING"
                    [
                        "$id", box callId
                        "$n", box (Attempt.number attempt)
                        "$at", box (SqliteRows.time at)
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
                    "INSERT INTO attempts (call_id, n, started_at, outcome, cause_code, cause_text, sip_code) VALUES ($id, $n, $at, $outcome, $code, $text, $sip) ON CONFLICT (call_id, n) DO UPDATE SET outcome = excluded.outcome, cause_code = excluded.cause_code, cause_text = excluded.cause_text, sip_code = excluded.sip_code"
                    [
                        "$id", box callId
                        "$n", box (Attempt.number attempt)
                        "$at", box (SqliteRows.time at)
                        "$outcome", dbValue (Names.outcome status)
                        "$code", dbValue (cause |> Option.map _.Code)
                        "$text", dbValue (cause |> Option.map _.Text)
                        "$sip", dbValue (cause |> Option.bind _.SipCode)
                    ]
                    cancel

            ()
        }

    /// Whether `status` is final (`ended` or `failed`).
    let internal isFinal status =
        match status with
        | Live _ -> false
        | Ended _
        | Failed _ -> true

    /// Hands `hook`, inside the write's transaction, the call as now stored and the `added` transitions
    /// this write appended (its last ones). Every write that appends transitions calls it before its commit.
    let internal written (hook: ISqliteWriteHook option) connection (id: string) (added: int) cancel =
        task {
            match hook with
            | None -> ()
            | Some hook ->
                let! calls =
                    selectInTransaction connection "c.call_id = $id" [ "$id", box id ] cancel

                for call in calls do
                    let added = List.skip (max 0 (call.History.Length - added)) call.History
                    do! hook.Written(connection, call, added, cancel)
        }

    let internal create hook connection (call: NewCall) cancel =
        task {
            use transaction = (connection: SqliteConnection).BeginTransaction()
            let id = CallId.value call.CallId

            let! inserted =
                execute
                    connection
                    "INSERT INTO calls (call_id, attempt, language, masked_number, created_at, updated_at, state) VALUES ($id, $attempt, $language, $number, $at, $at, 'queued') ON CONFLICT (call_id) DO NOTHING"
                    [
                        "$id", box id
                        "$attempt", box (Attempt.number call.Attempt)
                        "$language", box (SqliteRows.languageName call.Language)
                        "$number", box call.MaskedNumber
                        "$at", box (SqliteRows.time call.CreatedAt)
                    ]
                    cancel

            if inserted = 1 then
                do!
                    appendTransitions
                        connection
                        id
                        call.Attempt
                        [
                            {
                                State = State.Queued
                                At = call.CreatedAt
                            }
                        ]
                        cancel

                do! startAttempt connection id call.Attempt call.CreatedAt cancel
                do! written hook connection id 1 cancel

            do! transaction.CommitAsync cancel
            return inserted = 1
        }

    /// The compare-and-set: the UPDATE moves the row only while it still has the expected attempt and
    /// state, inside an IMMEDIATE transaction, so of two writers holding the same expectation one moves it
    /// and the other finds nothing to update.
    let internal save hook connection callId (expected: Expected) (change: Change) cancel =
        task {
            use transaction = (connection: SqliteConnection).BeginTransaction()
            let id = CallId.value callId
            let outcome, talk = SqliteRows.outcome change.Status
            let cause = SqliteRows.cause change.Status

            let! moved =
                execute
                    connection
                    "UPDATE calls SET attempt = $attempt, state = $state, outcome = $outcome, talk_ms = $talk, cause_code = $code, cause_text = $text, sip_code = $sip, updated_at = $at, number = CASE WHEN $final THEN NULL ELSE number END WHERE call_id = $id AND attempt = $expectedAttempt AND state = $expectedState"
                    [
                        "$id", box id
                        "$attempt", box (Attempt.number change.Attempt)
                        "$state", box (Names.state (Store.stateOf change.Status))
                        "$outcome", dbValue outcome
                        "$talk", dbValue talk
                        "$code", dbValue (cause |> Option.map _.Code)
                        "$text", dbValue (cause |> Option.map _.Text)
                        "$sip", dbValue (cause |> Option.bind _.SipCode)
                        "$at", box (SqliteRows.time change.At)
                        "$expectedAttempt", box (Attempt.number expected.Attempt)
                        "$expectedState", box (Names.state expected.State)
                        // The digits are kept only while a later attempt may dial them.
                        "$final", box (isFinal change.Status)
                    ]
                    cancel

            if moved = 1 then
                do! appendTransitions connection id change.Attempt change.Transitions cancel

                if isFinal change.Status then
                    do! endAttempt connection id change.Attempt change.Status change.At cancel

                do! written hook connection id change.Transitions.Length cancel
                do! transaction.CommitAsync cancel
                return Saved
            else
                use exists =
                    command connection "SELECT 1 FROM calls WHERE call_id = $id" [ "$id", box id ]

                let! found = exists.ExecuteScalarAsync cancel
                return if isNull found then UnknownCall else Stale
        }

    let internal prune connection (cutoff: DateTimeOffset) cancel =
        task {
            use transaction = (connection: SqliteConnection).BeginTransaction()
            let old = "state IN ('ended', 'failed') AND updated_at < $cutoff"
            let parameters = [ "$cutoff", box (SqliteRows.time cutoff) ]

            for table in [ "transitions"; "attempts" ] do
                let! _ =
                    execute
                        connection
                        $"DELETE FROM {table} WHERE call_id IN (SELECT call_id FROM calls WHERE {old})"
                        parameters
                        cancel

                ()

            let! deleted = execute connection $"DELETE FROM calls WHERE {old}" parameters cancel
            do! transaction.CommitAsync cancel
            return deleted
        }
