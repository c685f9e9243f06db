module Callback.Tests.PostgresStoreTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Npgsql
open Callback.Calls
open Callback.Domain
open Callback.Tests.OnThisMachine
open Callback.Tests.StoreSpecification

let private cancel = CancellationToken.None

let private opened (connectionString: string) =
    task {
        match! PostgresCallStore.Open(connectionString, cancel) with
        | Ok store -> return store
        | Result.Error message -> return failwith $"the store did not open: {message}"
    }

/// A scalar read around the store, on the test's database.
let private scalar (connectionString: string) (sql: string) (parameters: (string * obj) list) =
    task {
        use dataSource = NpgsqlDataSource.Create connectionString
        use command = dataSource.CreateCommand sql

        for name, value in parameters do
            command.Parameters.AddWithValue(name, value) |> ignore

        return! command.ExecuteScalarAsync cancel
    }

/// Every version of the migrations, as `versions` lists them.
let private allVersions =
    PostgresSchema.migrations |> List.map (fst >> string) |> String.concat ","

let private versions connectionString =
    task {
        let! found =
            scalar connectionString "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations" []

        return string found
    }

/// The store's specification on a database of its own on the local server, dropped afterwards.
type private PostgresDatabase(server: string) =
    let database = new LocalPostgres.TestDatabase(server)

    interface IStoreDatabase with
        member _.Open() =
            task {
                let! store = opened database.ConnectionString

                return {
                    Store = store
                    Close = fun () -> (store :> IDisposable).Dispose()
                }
            }

        member _.TransitionCount callId =
            task {
                let! count =
                    scalar database.ConnectionString "SELECT COUNT(*) FROM transitions WHERE call_id = @id" [
                        "id", box (CallId.value callId)
                    ]

                return count :?> int64
            }

    interface IDisposable with
        member _.Dispose() = (database :> IDisposable).Dispose()

/// A test on the local PostgreSQL: skipped where this machine cannot run it, failed for that in CI.
let private onPostgres name (body: string -> Task) =
    onThisMachine "PostgreSQL" LocalPostgres.server name (fun server -> (body server).GetAwaiter().GetResult())

let private postgresCase: StoreCase =
    fun name body ->
        onPostgres name (fun server ->
            task {
                use database = new PostgresDatabase(server) :> IStoreDatabase
                do! body database
            })

/// `body` with a fresh database's connection string, the database dropped afterwards.
let private onFreshDatabase name (body: string -> Task) =
    onPostgres name (fun server ->
        task {
            use database = new LocalPostgres.TestDatabase(server)
            do! body database.ConnectionString
        })

let private expectRefused (connectionString: string) (expected: string list) (secret: string) =
    task {
        match! PostgresCallStore.Open(connectionString, cancel) with
        | Ok store ->
            (store :> IDisposable).Dispose()
            failtest "the store opened"
        | Result.Error message ->
            for part in expected do
                Expect.stringContains message part message

            Expect.isFalse (message.Contains secret) "the password is never in the message"
    }

[<Tests>]
let tests =
    testSequencedGroup "the local PostgreSQL"
    <| testList "PostgresStore" [
        yield! StoreSpecification.tests postgresCase

        // Catches a schema created without being recorded (the next start would create it again and fail).
        onFreshDatabase "an empty database gets every migration, each recorded once" (fun connection ->
            task {
                use! _ = opened connection
                let! applied = versions connection

                let expected =
                    PostgresSchema.migrations |> List.map (fst >> string) |> String.concat ","

                Expect.equal applied expected "schema_migrations lists every version"

                let! tables =
                    scalar connection "SELECT COUNT(*) FROM pg_tables WHERE tablename IN ('calls', 'transitions')" []

                Expect.equal (tables :?> int64) 2L "both tables"
            })

        // Catches migrations applied again at every start (CREATE TABLE would fail the second start).
        onFreshDatabase "opening a migrated database again applies nothing and keeps its calls" (fun connection ->
            task {
                let call: NewCall = {
                    CallId = CallId.create ()
                    Attempt = Attempt.first
                    Language = English
                    MaskedNumber = "1514*****00"
                    CreatedAt = DateTimeOffset.UtcNow
                }

                do!
                    task {
                        use! first = opened connection
                        let! _ = (first :> ICallStore).Create(call, cancel)
                        ()
                    }

                use! again = opened connection
                use! raw = again.Connect cancel
                let! appliedNow = PostgresSchema.migrate raw cancel
                Expect.equal appliedNow (Ok []) "nothing left to apply"
                let! applied = versions connection
                Expect.equal applied allVersions "each version once"
                let! found = (again :> ICallStore).Find(call.CallId, cancel)
                Expect.isSome found "the call is kept"
            })

        // Catches a migration without its lock: two replicas starting at once would both create the tables,
        // and one of them would fail to start.
        onFreshDatabase
            "replicas starting at once on an empty database all start, and migrate it once"
            (fun connection ->
                task {
                    let replica _ =
                        Task.Run<Result<PostgresCallStore, string>>(
                            Func<Task<Result<PostgresCallStore, string>>>(fun () ->
                                PostgresCallStore.Open(connection, cancel))
                        )

                    let! stores = Task.WhenAll(List.init 4 replica)

                    for store in stores do
                        match store with
                        | Ok store -> (store :> IDisposable).Dispose()
                        | Result.Error message -> failtest $"a replica did not start: {message}"

                    let! applied = versions connection
                    Expect.equal applied allVersions "each version once"
                })

        // Catches a migration that ignores the versions it finds (it would misread a newer database).
        onFreshDatabase "a database of a newer schema stops start-up with a message saying so" (fun connection ->
            task {
                do!
                    task {
                        use! _ = opened connection
                        ()
                    }

                let! _ =
                    scalar connection $"INSERT INTO schema_migrations (version) VALUES ({PostgresSchema.version + 1})" []

                do! expectRefused connection [ "Data__ConnectionString"; "newer than this program" ] "\u0000"
            })

        // Catches an error message built from the connection string, or Npgsql's message quoting it.
        onPostgres
            "a wrong password stops start-up naming Data__ConnectionString and PostgreSQL's code, never the password"
            (fun server ->
                task {
                    let wrong = $"wrong-{Guid.NewGuid():N}"

                    let connection =
                        NpgsqlConnectionStringBuilder(server, Password = wrong).ConnectionString

                    do! expectRefused connection [ "Data__ConnectionString"; "28P01" ] wrong
                })

        onPostgres "a server that is not there stops start-up saying it cannot be reached" (fun server ->
            task {
                let connection =
                    NpgsqlConnectionStringBuilder(server, Port = 1, Timeout = 3).ConnectionString

                let password = NpgsqlConnectionStringBuilder(server).Password
                do! expectRefused connection [ "Data__ConnectionString"; "cannot be reached" ] password
            })

    ]
