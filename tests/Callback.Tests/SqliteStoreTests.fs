module Callback.Tests.SqliteStoreTests

open System
open System.IO
open System.Threading
open System.Threading.Tasks
open Expecto
open Microsoft.Data.Sqlite
open Callback.Calls
open Callback.Domain

let private cancel = CancellationToken.None

/// Whole milliseconds, as the store keeps times.
let private now =
    DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())

let private tempDirectory () =
    Path.Combine(Path.GetTempPath(), $"callback-store-{Guid.NewGuid():N}")

let private opened directory =
    task {
        match! SqliteCallStore.Open(directory, cancel) with
        | Ok store -> return store
        | Result.Error message -> return failwith $"the store did not open: {message}"
    }

/// A store in a fresh temporary directory, deleted afterwards.
let private withStore (body: SqliteCallStore -> ICallStore -> Task) =
    task {
        let directory = tempDirectory ()

        try
            use! store = opened directory
            do! body store store
        finally
            if Directory.Exists directory then
                Directory.Delete(directory, true)
    }

let private newCall createdAt : NewCall = {
    CallId = CallId.create ()
    Attempt = Attempt.first
    Language = French
    MaskedNumber = "+33 6** ** ** 78"
    CreatedAt = createdAt
}

let private busyCause = {
    Code = 17
    Text = "User busy"
    SipCode = Some 486
}

let private expectedIn state : Expected = {
    Attempt = Attempt.first
    State = state
}

let private moveTo status state (at: DateTimeOffset) = {
    Attempt = Attempt.first
    Status = status
    Transitions = [ { State = state; At = at } ]
    At = at
}

let private find (store: ICallStore) (call: NewCall) =
    task {
        match! store.Find(call.CallId, cancel) with
        | Some found -> return found
        | None -> return failwith "the call was not found"
    }

let private states (call: StoredCall) =
    call.History |> List.map _.Transition.State

/// Reads `call` while another task moves it through every live state to `ended`: each read must be one
/// snapshot, its state the one of the last transition it holds.
let private readsWhileMoving (store: ICallStore) =
    task {
        let call = newCall now
        let! _ = store.Create(call, cancel)

        let path = [
            State.Queued, Live Queued
            State.Ringing, Live Ringing
            State.Answered, Live Answered
            State.Connecting, Live Connecting
            State.Bridged, Live Bridged
            State.Ended, Ended(Completed(TimeSpan.FromSeconds 1.0), None)
        ]

        // On a thread of its own: the store's calls complete synchronously, so a plain task would make every
        // move before the first read.
        let moving =
            Task.Run<unit>(fun () ->
                task {
                    for (from, _), (state, status) in List.pairwise path do
                        let! _ = store.Save(call.CallId, expectedIn from, moveTo status state now, cancel)
                        ()
                })

        let mismatches = ResizeArray()

        while not moving.IsCompleted do
            let! found = find store call

            if Store.stateOf found.Status <> (List.last found.History).Transition.State then
                mismatches.Add(states found, found.Status)

        do! moving
        return List.ofSeq mismatches
    }

[<Tests>]
let tests =
    testList "SqliteStore" [
        testTask "a call read while it is moved is one snapshot: its state is always its last transition's" {
            do!
                withStore (fun _ store ->
                    task {
                        // A race, so many rounds: reading the history and the row in two autocommit reads
                        // (the bug this catches) fails within a few dozen.
                        for _ in 1..200 do
                            let! mismatches = readsWhileMoving store
                            Expect.isEmpty mismatches "a read saw a state its history did not hold yet"
                    })
        }

        testTask "a call written then read back has its fields, its final status and its numbered history" {
            do!
                withStore (fun _ store ->
                    task {
                        let call = newCall now
                        let! created = store.Create(call, cancel)
                        Expect.isTrue created "created"
                        let ringing = now.AddSeconds 1.0
                        let failed = now.AddSeconds 20.0

                        let! first =
                            store.Save(
                                call.CallId,
                                expectedIn State.Queued,
                                moveTo (Live Ringing) State.Ringing ringing,
                                cancel
                            )

                        let! second =
                            store.Save(
                                call.CallId,
                                expectedIn State.Ringing,
                                moveTo (Failed(Busy, Some busyCause)) State.Failed failed,
                                cancel
                            )

                        Expect.equal [ first; second ] [ Saved; Saved ] "both moves saved"
                        let! found = find store call
                        Expect.equal found.CallId call.CallId "id"
                        Expect.equal found.Attempt Attempt.first "attempt"
                        Expect.equal found.Language French "language"
                        Expect.equal found.MaskedNumber call.MaskedNumber "masked number"
                        Expect.equal found.CreatedAt now "created at"
                        Expect.equal found.UpdatedAt failed "updated at"
                        Expect.equal found.Status (Failed(Busy, Some busyCause)) "outcome with its cause and SIP code"
                        Expect.equal (states found) [ State.Queued; State.Ringing; State.Failed ] "history"
                        Expect.equal (found.History |> List.map _.Sequence) [ 1L; 2L; 3L ] "sequence from 1"
                        Expect.equal (found.History |> List.map _.Transition.At) [ now; ringing; failed ] "times"
                    })
        }

        testTask "every outcome, talk time included, reads back as it was saved" {
            do!
                withStore (fun _ store ->
                    task {
                        let statuses = [
                            Ended(Completed(TimeSpan.FromMilliseconds 12345.0), None)
                            Ended(VisitorHungUp, None)
                            Ended(OwnerBusy, Some busyCause)
                            Ended(OwnerNoAnswer, None)
                            for outcome in
                                [
                                    Busy
                                    NoAnswer
                                    Rejected
                                    Unreachable
                                    Congestion
                                    FailedOutcome.Error
                                    FailedOutcome.Lost
                                ] do
                                Failed(
                                    outcome,
                                    Some {
                                        Code = 0
                                        Text = "Unknown"
                                        SipCode = None
                                    }
                                )
                        ]

                        for status in statuses do
                            let call = newCall now
                            let! _ = store.Create(call, cancel)

                            let! saved =
                                store.Save(
                                    call.CallId,
                                    expectedIn State.Queued,
                                    moveTo status (Store.stateOf status) now,
                                    cancel
                                )

                            Expect.equal saved Saved "saved"
                            let! found = find store call
                            Expect.equal found.Status status "read back"
                    })
        }

        testTask "a call recorded twice keeps its first record" {
            do!
                withStore (fun _ store ->
                    task {
                        let call = newCall now
                        let! first = store.Create(call, cancel)
                        let! again = store.Create({ call with MaskedNumber = "other" }, cancel)
                        Expect.equal (first, again) (true, false) "the second is refused"
                        let! found = find store call
                        Expect.equal found.MaskedNumber call.MaskedNumber "first record kept"
                        Expect.equal found.History.Length 1 "one queued transition"
                    })
        }

        // Catches an UPDATE without the state guard: the stale move would then be saved.
        testTask "a move expecting a state the call has already left is refused as stale and writes nothing" {
            do!
                withStore (fun _ store ->
                    task {
                        let call = newCall now
                        let! _ = store.Create(call, cancel)

                        let! first =
                            store.Save(
                                call.CallId,
                                expectedIn State.Queued,
                                moveTo (Live Ringing) State.Ringing now,
                                cancel
                            )

                        let stale = moveTo (Failed(Unreachable, None)) State.Failed now
                        let! second = store.Save(call.CallId, expectedIn State.Queued, stale, cancel)
                        Expect.equal (first, second) (Saved, Stale) "the second writer is stale"
                        let! found = find store call
                        Expect.equal found.Status (Live Ringing) "status unchanged"
                        Expect.equal (states found) [ State.Queued; State.Ringing ] "history unchanged"
                    })
        }

        // Catches an UPDATE without the attempt guard (issue 17's retries rely on it).
        testTask "a move expecting another attempt is refused as stale" {
            do!
                withStore (fun _ store ->
                    task {
                        let call = newCall now
                        let! _ = store.Create(call, cancel)

                        let second = {
                            Attempt = Attempt.next Attempt.first
                            State = State.Queued
                        }

                        let! saved =
                            store.Save(call.CallId, second, moveTo (Live Ringing) State.Ringing now, cancel)

                        Expect.equal saved Stale "attempt 2 is not the call's"
                    })
        }

        testTask "a call never recorded cannot be moved nor found" {
            do!
                withStore (fun _ store ->
                    task {
                        let call = newCall now

                        let! saved =
                            store.Save(
                                call.CallId,
                                expectedIn State.Queued,
                                moveTo (Live Ringing) State.Ringing now,
                                cancel
                            )

                        let! found = store.Find(call.CallId, cancel)
                        Expect.equal saved UnknownCall "unknown"
                        Expect.isNone found "not found"
                    })
        }

        // Catches a read-then-write without the guard in the UPDATE (or outside one transaction).
        testTask "of twenty concurrent writers moving the same call from the same state, exactly one wins" {
            do!
                withStore (fun _ store ->
                    task {
                        let call = newCall now
                        let! _ = store.Create(call, cancel)

                        let writer i =
                            Task.Run<SaveResult>(fun () ->
                                let at = now.AddMilliseconds(float i)

                                store.Save(
                                    call.CallId,
                                    expectedIn State.Queued,
                                    moveTo (Failed(FailedOutcome.Lost, None)) State.Failed at,
                                    cancel
                                ))

                        let! results = Task.WhenAll(List.init 20 writer)
                        let winners = results |> Array.filter ((=) Saved)
                        Expect.equal winners.Length 1 "one winner"
                        Expect.all (results |> Array.filter ((<>) Saved)) ((=) Stale) "the others are stale"
                        let! found = find store call
                        Expect.equal (states found) [ State.Queued; State.Failed ] "moved once"
                    })
        }

        // Catches a store that keeps calls in memory only, or that recreates its schema on every start.
        testTask "calls survive closing the store and opening it again, as after a restart" {
            let directory = tempDirectory ()

            try
                let call = newCall now

                do!
                    task {
                        use! store = opened directory
                        let store = store :> ICallStore
                        let! _ = store.Create(call, cancel)

                        let! _ =
                            store.Save(
                                call.CallId,
                                expectedIn State.Queued,
                                moveTo (Live Ringing) State.Ringing now,
                                cancel
                            )

                        ()
                    }

                do!
                    task {
                        use! reopened = opened directory
                        let! found = find reopened call
                        Expect.equal found.Status (Live Ringing) "status kept"
                        Expect.equal (states found) [ State.Queued; State.Ringing ] "history kept"
                    }
            finally
                Directory.Delete(directory, true)
        }

        testTask "the live list holds exactly the calls not yet ended or failed" {
            do!
                withStore (fun _ store ->
                    task {
                        let live, ended = newCall now, newCall now
                        let! _ = store.Create(live, cancel)
                        let! _ = store.Create(ended, cancel)

                        let! _ =
                            store.Save(
                                ended.CallId,
                                expectedIn State.Queued,
                                moveTo (Failed(Busy, None)) State.Failed now,
                                cancel
                            )

                        let! calls = store.ListLive cancel
                        Expect.equal (calls |> List.map _.CallId) [ live.CallId ] "only the live call"
                        Expect.equal (calls.Head.History.Length) 1 "with its history"
                    })
        }

        // Catches a prune by creation date alone (it would delete the old live call) or one that leaves the
        // deleted calls' transitions behind.
        testTask
            "retention deletes the final calls last moved before the cutoff with their history, and keeps live calls of any age" {
            do!
                withStore (fun sqlite store ->
                    task {
                        let longAgo = now.AddDays -60.0

                        let oldFinal, oldLive, recentFinal =
                            newCall longAgo, newCall longAgo, newCall longAgo

                        for call in [ oldFinal; oldLive; recentFinal ] do
                            let! _ = store.Create(call, cancel)
                            ()

                        let fail (call: NewCall) at =
                            store.Save(
                                call.CallId,
                                expectedIn State.Queued,
                                moveTo (Failed(NoAnswer, None)) State.Failed at,
                                cancel
                            )

                        let! _ = fail oldFinal (longAgo.AddMinutes 1.0)
                        let! _ = fail recentFinal (now.AddDays -1.0)
                        let! deleted = store.Prune(now.AddDays -30.0, cancel)
                        Expect.equal deleted 1 "one call deleted"
                        let! gone = store.Find(oldFinal.CallId, cancel)
                        let! live = store.Find(oldLive.CallId, cancel)
                        let! recent = store.Find(recentFinal.CallId, cancel)
                        Expect.isNone gone "the old final call is deleted"
                        Expect.isSome live "the old live call is kept"
                        Expect.isSome recent "the recent final call is kept"
                        use! connection = sqlite.Connect cancel
                        use command = connection.CreateCommand()
                        command.CommandText <- "SELECT COUNT(*) FROM transitions WHERE call_id = $id"
                        command.Parameters.AddWithValue("$id", CallId.value oldFinal.CallId) |> ignore
                        let! left = command.ExecuteScalarAsync()
                        Expect.equal (left :?> int64) 0L "its transitions are deleted too"
                    })
        }

        // Catches a store that leaves SQLite's journal mode or sync level to the build's defaults.
        testTask "every connection is in WAL mode with synchronous FULL and the current schema version" {
            do!
                withStore (fun sqlite _ ->
                    task {
                        use! connection = sqlite.Connect cancel

                        let pragma name =
                            use command = connection.CreateCommand()
                            command.CommandText <- $"PRAGMA {name}"
                            string (command.ExecuteScalar())

                        Expect.equal (pragma "journal_mode") "wal" "WAL"
                        Expect.equal (pragma "synchronous") "2" "FULL"
                        Expect.equal (pragma "user_version") (string SqliteSchema.SchemaVersion) "schema version"
                    })
        }

        // Catches a benchmark seam that does not reach the connections (the durable bench would compare FULL
        // with FULL) or that changes what the product ships when it is not asked for.
        testTask "synchronous NORMAL only when asked for: the durable-write benchmark's comparison" {
            let directory = tempDirectory ()

            let pragma () =
                task {
                    match! SqliteCallStore.Open(directory, cancel, synchronous = SqliteSynchronous.Normal) with
                    | Result.Error message -> return failwith message
                    | Ok store ->
                        use store = store
                        use! connection = store.Connect cancel
                        use command = connection.CreateCommand()
                        command.CommandText <- "PRAGMA synchronous"
                        return string (command.ExecuteScalar())
                }

            try
                let! level = pragma ()
                Expect.equal level "1" "NORMAL"
            finally
                if Directory.Exists directory then
                    Directory.Delete(directory, true)
        }

        // Catches a migration that ignores the version it finds (it would misread a newer file).
        testTask "a database written by a newer schema stops start-up with a message saying so" {
            let directory = tempDirectory ()

            try
                do!
                    task {
                        use! store = opened directory
                        use! connection = store.Connect cancel
                        use command = connection.CreateCommand()
                        command.CommandText <- $"PRAGMA user_version = {SqliteSchema.SchemaVersion + 1}"
                        command.ExecuteNonQuery() |> ignore
                    }

                match! SqliteCallStore.Open(directory, cancel) with
                | Ok _ -> failtest "a newer schema was opened"
                | Result.Error message -> Expect.stringContains message "newer than this program" message
            finally
                Directory.Delete(directory, true)
        }

        // Catches a store that would create the database beside the file, or fail later with SQLite's own
        // "unable to open database file".
        testTask "a Data__Path that is a file stops start-up with a message naming the setting" {
            let file = Path.GetTempFileName()

            try
                match! SqliteCallStore.Open(file, cancel) with
                | Ok _ -> failtest "a file was taken for the data directory"
                | Result.Error message ->
                    Expect.stringContains message "Data__Path" message
                    Expect.stringContains message "is a file" message
            finally
                File.Delete file
        }

        // /proc/self exists and is a directory, but nobody (root included) can create a file in it.
        testTask "a Data__Path that is not writable stops start-up with a message naming the setting" {
            match! SqliteCallStore.Open("/proc/self", cancel) with
            | Ok _ -> failtest "an unwritable directory was accepted"
            | Result.Error message ->
                Expect.stringContains message "Data__Path '/proc/self'" message
                Expect.stringContains message "not a writable directory" message
        }
    ]
