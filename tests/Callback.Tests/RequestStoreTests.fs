/// The durable requests in SQLite: schema version 2 and its migration, acceptance with the duplicate
/// window, each attempt's phase (due → claimed → sent) as a compare-and-set, the retry that goes from a
/// live state straight back to queued, and the numbers' key.
module Callback.Tests.RequestStoreTests

open System
open System.IO
open System.Threading
open System.Threading.Tasks
open Expecto
open Microsoft.Data.Sqlite
open Callback.Calls
open Callback.Domain

let private cancel = CancellationToken.None

let private t0 = DateTimeOffset.FromUnixTimeMilliseconds 1_800_000_000_000L

let private number (digits: string) =
    match PhoneNumber.tryParse digits with
    | Ok n -> n
    | Result.Error _ -> failwith "test number"

let private key =
    match NumberKey.ofSecret (String('k', 40)) with
    | Ok k -> k
    | Result.Error e -> failwith e

/// A request for `digits` at `at`, placed now (claimed) unless `dueAt`.
let request (digits: string) (at: DateTimeOffset) (dueAt: DateTimeOffset option) : Request = {
    CallId = CallId.create ()
    Language = English
    Number = number digits
    NumberKey = NumberKey.of' key (number digits)
    AcceptedAt = at
    DueAt = dueAt
    DuplicateSince = at - TimeSpan.FromMinutes 10.0
    Tracked = true
}

let private spooled = {
    StageResults.None with
        Socket = true
        AmiLogin = true
        AmiOrig = true
        AmiLogoff = true
        CallSpooled = true
}

/// The store in a fresh directory, reopened by `reopen` (a restart), deleted afterwards.
let private withDirectory (body: string -> (unit -> SqliteCallStore) -> Task) =
    task {
        let directory =
            Path.Combine(Path.GetTempPath(), $"callback-requests-{Guid.NewGuid():N}")

        let opened = ResizeArray<SqliteCallStore>()

        let openStore () =
            match SqliteCallStore.Open(directory, cancel).Result with
            | Ok store ->
                opened.Add store
                store
            | Result.Error message -> failwith message

        try
            do! body directory openStore
        finally
            for store in opened do
                (store :> IDisposable).Dispose()

            if Directory.Exists directory then
                Directory.Delete(directory, true)
    }

let private scalar (store: SqliteCallStore) (sql: string) =
    use connection = store.Connect(cancel).Result
    use command = connection.CreateCommand()
    command.CommandText <- sql
    command.ExecuteScalar()

let private find (store: SqliteCallStore) callId =
    ((store :> ICallStore).Find(callId, cancel).Result).Value

/// The version-1 schema as the previous program wrote it, with a live and a final call.
let private writeVersion1 (directory: string) (live: string) (final: string) =
    Directory.CreateDirectory directory |> ignore

    use connection =
        new SqliteConnection($"Data Source={Path.Combine(directory, SqliteStore.FileName)}")

    connection.Open()
    use command = connection.CreateCommand()

    command.CommandText <-
        $"""
        CREATE TABLE calls (call_id TEXT PRIMARY KEY, attempt INTEGER NOT NULL, language TEXT NOT NULL,
            masked_number TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, state TEXT NOT NULL,
            outcome TEXT, talk_ms INTEGER, cause_code INTEGER, cause_text TEXT, sip_code INTEGER) STRICT;
        CREATE INDEX calls_live ON calls (state) WHERE state NOT IN ('ended', 'failed');
        CREATE INDEX calls_updated ON calls (updated_at);
        CREATE TABLE transitions (call_id TEXT NOT NULL, seq INTEGER NOT NULL, attempt INTEGER NOT NULL,
            state TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (call_id, seq)) STRICT, WITHOUT ROWID;
        INSERT INTO calls VALUES ('{live}', 1, 'fr', '1514*****34', 1000, 2000, 'ringing', NULL, NULL, NULL, NULL, NULL);
        INSERT INTO transitions VALUES ('{live}', 1, 1, 'queued', 1000), ('{live}', 2, 1, 'ringing', 2000);
        INSERT INTO calls VALUES ('{final}', 1, 'en', '1514*****35', 1000, 3000, 'failed', 'busy', NULL, 17, 'User busy', 486);
        INSERT INTO transitions VALUES ('{final}', 1, 1, 'queued', 1000), ('{final}', 2, 1, 'failed', 3000);
        PRAGMA user_version = 1;
        """

    command.ExecuteNonQuery() |> ignore
    SqliteConnection.ClearAllPools()

let private accept (store: SqliteCallStore) (r: Request) =
    (store :> IRequestStore).Accept(r, cancel).Result

let private requests (store: SqliteCallStore) = store :> IRequestStore

[<Tests>]
let tests =
    testList "Request store" [
        // Catches a migration that only runs from an empty file, or forgets to copy the attempts.
        testTask "a version-1 file with calls is migrated to version 2: its calls read back, sent, one attempt each" {
            do!
                withDirectory (fun directory openStore ->
                    task {
                        let live, final = CallId.create (), CallId.create ()
                        writeVersion1 directory (CallId.value live) (CallId.value final)
                        let store = openStore ()
                        Expect.equal (scalar store "PRAGMA user_version" |> string) "2" "version 2"
                        let liveCall = find store live
                        Expect.equal (TestStore.states liveCall) [ State.Queued; State.Ringing ] "history kept"
                        let! listed = (store :> ICallStore).ListLive cancel
                        Expect.equal (listed |> List.map _.CallId) [ live ] "the live call is sent: reconciled"

                        Expect.equal
                            ((find store final).Attempts
                             |> List.map (fun a -> Attempt.number a.Attempt, a.Outcome, a.Cause |> Option.map _.Code))
                            [ 1, Some "busy", Some 17 ]
                            "the final call's one attempt, with its outcome"
                    })
        }

        // Catches a schema built by a path other than the migrations (an empty file must end where v1 did).
        testTask "an empty file gets every migration: version 2, the attempts table, an accepted call round-trips" {
            do!
                withDirectory (fun _ openStore ->
                    task {
                        let store = openStore ()
                        Expect.equal (scalar store "PRAGMA user_version" |> string) "2" "version 2"
                        let r = request "15145550234" t0 None
                        Expect.equal (accept store r) Accepted "accepted"
                        let call = find store r.CallId
                        Expect.equal call.Status (Live Queued) "queued"
                        Expect.equal call.MaskedNumber "1514*****34" "masked"
                        Expect.isEmpty call.Attempts "nothing sent yet"
                    })
        }

        // Catches a duplicate check outside the store (lost on restart) or one that ignores pending calls.
        testTask "a pending call makes a new request for its number a duplicate, with its booleans, after a restart too" {
            do!
                withDirectory (fun _ openStore ->
                    task {
                        let store = openStore ()
                        let first = request "15145550234" t0 None
                        Expect.equal (accept store first) Accepted "first"
                        do! (requests store).RecordStages(first.CallId, spooled, true, cancel)
                        (store :> IDisposable).Dispose()
                        let again = openStore ()

                        match accept again (request "15145550234" (t0.AddSeconds 5.0) None) with
                        | Duplicate(call, stages) ->
                            Expect.equal call.CallId first.CallId "the first call"
                            Expect.equal stages spooled "its booleans"
                        | Accepted -> failtest "a second call was accepted"

                        Expect.equal (accept again (request "15145550235" t0 None)) Accepted "another number is not"
                        Expect.equal (scalar again "SELECT COUNT(*) FROM calls" |> string) "2" "two calls only"
                    })
        }

        // Catches a window that blocks calls that never reached Asterisk (the visitor was told 502/503).
        testTask "a call given up unsent does not block; one that reached Asterisk blocks within the window only" {
            do!
                withDirectory (fun _ openStore ->
                    task {
                        let store = openStore ()
                        let unsent = request "15145550234" t0 None
                        Expect.equal (accept store unsent) Accepted "first"
                        let! abandoned = (requests store).Abandon(unsent.CallId, Attempt.first, t0, cancel)
                        Expect.isTrue abandoned "given up"
                        let reached = request "15145550234" (t0.AddSeconds 1.0) None
                        Expect.equal (accept store reached) Accepted "not a duplicate of an unsent call"
                        let! _ = (requests store).MarkSent(reached.CallId, Attempt.first, t0, cancel)
                        do! (requests store).RecordStages(reached.CallId, spooled, true, cancel)

                        let ended = {
                            Attempt = Attempt.first
                            Status = Failed(Rejected, None)
                            Transitions = [
                                {
                                    State = State.Failed
                                    At = t0.AddSeconds 30.0
                                }
                            ]
                            At = t0.AddSeconds 30.0
                        }

                        let! saved =
                            (store :> ICallStore)
                                .Save(
                                    reached.CallId,
                                    {
                                        Attempt = Attempt.first
                                        State = State.Queued
                                    },
                                    ended,
                                    cancel
                                )

                        Expect.equal saved Saved "final"

                        match accept store (request "15145550234" (t0.AddMinutes 9.0) None) with
                        | Duplicate(call, _) -> Expect.equal call.CallId reached.CallId "within the window"
                        | Accepted -> failtest "a call that reached Asterisk 9 minutes ago did not block"

                        Expect.equal
                            (accept store (request "15145550234" (t0.AddMinutes 11.0) None))
                            Accepted
                            "after the window"
                    })
        }

        // Catches digits left in the row once nothing will dial them again.
        testTask "the digits are kept while the call may be dialled and dropped when it becomes final" {
            do!
                withDirectory (fun _ openStore ->
                    task {
                        let store = openStore ()
                        let r = request "15145550234" t0 None
                        accept store r |> ignore

                        let digits () =
                            scalar store $"SELECT number FROM calls WHERE call_id = '{CallId.value r.CallId}'"

                        Expect.equal (string (digits ())) "15145550234" "kept while live"

                        let ended = {
                            Attempt = Attempt.first
                            Status = Ended(VisitorHungUp, None)
                            Transitions = [
                                {
                                    State = State.Ended
                                    At = t0.AddSeconds 9.0
                                }
                            ]
                            At = t0.AddSeconds 9.0
                        }

                        let! _ = (requests store).MarkSent(r.CallId, Attempt.first, t0, cancel)

                        let! _ =
                            (store :> ICallStore)
                                .Save(
                                    r.CallId,
                                    {
                                        Attempt = Attempt.first
                                        State = State.Queued
                                    },
                                    ended,
                                    cancel
                                )

                        Expect.equal (digits ()) (box DBNull.Value) "dropped when final"

                        let found =
                            scalar
                                store
                                "SELECT COUNT(*) FROM calls WHERE number LIKE '%5550234%' OR number_key LIKE '%5550234%'"

                        Expect.equal (string found) "0" "no column holds the number"
                    })
        }

        // Catches a phase move that is not a compare-and-set (two workers would both send).
        testTask
            "each phase moves once: claimed → sent, due → claimed, and a claim left by a dead worker goes back to due" {
            do!
                withDirectory (fun _ openStore ->
                    task {
                        let store = openStore ()
                        let r = request "15145550234" t0 None
                        accept store r |> ignore
                        let! first = (requests store).MarkSent(r.CallId, Attempt.first, t0, cancel)
                        let! second = (requests store).MarkSent(r.CallId, Attempt.first, t0, cancel)
                        Expect.equal (first, second) (true, false) "sent once"

                        let later = request "15145550235" t0 (Some(t0.AddMinutes 5.0))
                        Expect.equal (accept store later) Accepted "scheduled"
                        Expect.equal (find store later.CallId).ScheduledFor (Some(t0.AddMinutes 5.0)) "scheduledFor"
                        let! early = (requests store).ClaimDue(t0.AddMinutes 4.0, 8, cancel)
                        Expect.isEmpty early "not due yet"
                        let! next = (requests store).NextDue cancel
                        Expect.equal next (Some(t0.AddMinutes 5.0)) "next due"
                        let! due = (requests store).ClaimDue(t0.AddMinutes 5.0, 8, cancel)
                        Expect.equal (due |> List.map _.CallId) [ later.CallId ] "claimed when due"
                        Expect.equal (due.Head.Request.PhoneNumber.Digits) "15145550235" "with its number"
                        let! again = (requests store).ClaimDue(t0.AddMinutes 6.0, 8, cancel)
                        Expect.isEmpty again "claimed once"
                        let! released = (requests store).ReleaseClaimed(t0.AddMinutes 7.0, cancel)
                        Expect.equal released 1 "the claimed one, not the sent one"
                        let! retaken = (requests store).ClaimDue(t0.AddMinutes 7.0, 8, cancel)
                        Expect.equal (retaken |> List.map _.CallId) [ later.CallId ] "due again"
                    })
        }

        // Catches a retry saved in two steps (the stream would show failed, then queued).
        testTask "a retry ends attempt 1 and queues attempt 2 in one move: history never says failed" {
            do!
                withDirectory (fun _ openStore ->
                    task {
                        let store = openStore ()
                        let r = request "15145550234" t0 None
                        accept store r |> ignore
                        let! _ = (requests store).MarkSent(r.CallId, Attempt.first, t0, cancel)

                        let busy = {
                            Attempt = Attempt.first
                            Status =
                                Failed(
                                    Busy,
                                    Some {
                                        Code = 17
                                        Text = "User busy"
                                        SipCode = Some 486
                                    }
                                )
                            Transitions = [
                                {
                                    State = State.Ringing
                                    At = t0.AddSeconds 1.0
                                }
                                {
                                    State = State.Failed
                                    At = t0.AddSeconds 3.0
                                }
                            ]
                            At = t0.AddSeconds 3.0
                        }

                        let expected = {
                            Attempt = Attempt.first
                            State = State.Queued
                        }

                        let due = t0.AddMinutes 2.0
                        let! saved = (requests store).Retry(r.CallId, expected, busy, due, cancel)
                        Expect.equal saved Saved "saved"
                        let! twice = (requests store).Retry(r.CallId, expected, busy, due, cancel)
                        Expect.equal twice Stale "once"
                        let call = find store r.CallId
                        Expect.equal (Attempt.number call.Attempt) 2 "attempt 2"
                        Expect.equal call.Status (Live Queued) "queued again"
                        Expect.equal call.ScheduledFor (Some due) "due"

                        Expect.equal
                            (call.History |> List.map (fun t -> Attempt.number t.Attempt, t.Transition.State))
                            [ 1, State.Queued; 1, State.Ringing; 2, State.Queued ]
                            "no failed in the history"

                        Expect.equal
                            (call.Attempts |> List.map (fun a -> Attempt.number a.Attempt, a.Outcome))
                            [ 1, Some "busy" ]
                            "attempt 1's outcome"

                        Expect.equal (string (scalar store "SELECT number FROM calls")) "15145550234" "still dialable"
                    })
        }

        // Catches a key regenerated on every start (duplicates would be forgotten) or readable by others.
        test "the number key is generated once, owner-only, and read back; a configured key is another key" {
            let directory = Directory.CreateTempSubdirectory("callback-key-").FullName

            try
                let first = NumberKey.load None directory
                let second = NumberKey.load None directory
                let n = number "15145550234"

                let digest (k: Result<NumberKey, string>) =
                    k |> Result.map (fun k -> NumberKey.of' k n)

                Expect.equal (digest first) (digest second) "the same key after a restart"
                Expect.notEqual (digest first) (digest (Ok key)) "a configured key is another key"
                Expect.isFalse ((digest first |> Result.defaultValue "").Contains "5550234") "no digits"

                if not (OperatingSystem.IsWindows()) then
                    Expect.equal
                        (File.GetUnixFileMode(Path.Combine(directory, NumberKey.FileName)))
                        (UnixFileMode.UserRead ||| UnixFileMode.UserWrite)
                        "0600"

                Expect.isError (NumberKey.ofSecret "short") "a short configured key"
            finally
                Directory.Delete(directory, true)
        }
    ]
