module Callback.Tests.SqliteStoreTests

open System
open System.IO
open System.Threading
open System.Threading.Tasks
open Expecto
open Microsoft.Data.Sqlite
open Callback.Calls
open Callback.Domain
open Callback.Tests.StoreSpecification

let private cancel = CancellationToken.None

let private tempDirectory () =
    Path.Combine(Path.GetTempPath(), $"callback-store-{Guid.NewGuid():N}")

let private opened directory =
    task {
        match! SqliteCallStore.Open(directory, cancel) with
        | Ok store -> return store
        | Result.Error message -> return failwith $"the store did not open: {message}"
    }

/// A fresh temporary directory for one test's database file, deleted afterwards.
type private SqliteDatabase() =
    let directory = tempDirectory ()

    interface IStoreDatabase with
        member _.Open() =
            task {
                let! store = opened directory

                return {
                    Store = store
                    Close = fun () -> (store :> IDisposable).Dispose()
                }
            }

        member _.TransitionCount callId =
            task {
                use! store = opened directory
                use! connection = store.Connect cancel
                use command = connection.CreateCommand()
                command.CommandText <- "SELECT COUNT(*) FROM transitions WHERE call_id = $id"
                command.Parameters.AddWithValue("$id", CallId.value callId) |> ignore
                let! count = command.ExecuteScalarAsync()
                return count :?> int64
            }

    interface IDisposable with
        member _.Dispose() =
            if Directory.Exists directory then
                Directory.Delete(directory, true)

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

let private sqliteCase: StoreCase =
    fun name body ->
        testTask name {
            do!
                task {
                    use database = new SqliteDatabase() :> IStoreDatabase
                    do! body database
                }
        }

[<Tests>]
let tests =
    testList "SqliteStore" [
        yield! StoreSpecification.tests sqliteCase

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
