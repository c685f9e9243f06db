/// Several sidecars on one PostgreSQL database, as replicas behind a proxy: each serves the calls the
/// others record, a call's event stream follows the moves any of them saves (LISTEN/NOTIFY, also across a
/// cut connection), a visitor's second request on another replica is a duplicate, and what PostgreSQL
/// does not support yet (webhooks) stops start-up.
module Callback.Tests.PostgresReplicasTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Npgsql
open Microsoft.Extensions.DependencyInjection
open Callback.Calls
open Callback.Domain
open Callback.Tests.OnThisMachine
open Callback.Tests.TestSidecar

let private cancel = CancellationToken.None

/// A scalar read around the sidecars, on the test's database.
let private scalar (connectionString: string) (sql: string) (parameters: (string * obj) list) =
    task {
        use dataSource = NpgsqlDataSource.Create connectionString
        use command = dataSource.CreateCommand sql

        for name, value in parameters do
            command.Parameters.AddWithValue(name, value) |> ignore

        return! command.ExecuteScalarAsync cancel
    }

/// `body` with a fresh database's connection string on the local PostgreSQL, the database dropped
/// afterwards: skipped where this machine cannot run it, failed for that in CI.
let private onFreshDatabase name (body: string -> Task) =
    onThisMachine "PostgreSQL" LocalPostgres.server name (fun server ->
        use database = new LocalPostgres.TestDatabase(server)
        (body database.ConnectionString).GetAwaiter().GetResult())

/// The `data:` of each frame of an event stream, in order, until the stream ends or 20 s have passed.
let private frames (response: Net.Http.HttpResponseMessage) =
    task {
        use deadline = new CancellationTokenSource(TimeSpan.FromSeconds 20.0)
        use! body = response.Content.ReadAsStreamAsync()
        use reader = new IO.StreamReader(body)
        let data = ResizeArray<string>()
        let mutable ended = false

        while not ended do
            let! line = reader.ReadLineAsync deadline.Token

            match line with
            | null -> ended <- true
            | line when line.StartsWith "data: " -> data.Add(line.Substring 6)
            | _ -> ()

        return List.ofSeq data
    }

let private stateOf (frame: string) =
    Text.Json.JsonDocument.Parse(frame).RootElement.GetProperty("state").GetString()

/// A call created through one sidecar and streamed from another on the same database, then moved twice
/// in the first one's store only (nothing published on either feed); `between` runs after the stream
/// opens and before the moves. Answers the states the stream sent before it ended.
let private streamedAcrossReplicas (connection: string) (between: unit -> Task) =
    task {
        let settings =
            TestSidecar.fakeAmiConfig
                [
                    "Data:Provider", "postgres"
                    "Data:ConnectionString", connection
                    "Data:NumberKey", String('k', 40)
                    "Monitor:Username", "callback-monitor"
                    "Monitor:Secret", "monitor-s3cret"
                ]
                (Loopback.freePort ())

        use mover = new Sidecar(settings)
        use watcher = new Sidecar(settings)
        let store = mover.App.Services.GetRequiredService<ICallStore>()

        let at =
            DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())

        let call: NewCall = {
            CallId = CallId.create ()
            Attempt = Attempt.first
            Language = English
            MaskedNumber = "1514*****34"
            CreatedAt = at
        }

        let! _ = store.Create(call, cancel)

        let! response =
            watcher.Client.GetAsync(
                $"/calls/{CallId.value call.CallId}/events",
                Net.Http.HttpCompletionOption.ResponseHeadersRead
            )

        let received = frames response
        do! between ()

        let move from status (seconds: float) =
            let change: Change = {
                Attempt = Attempt.first
                Status = status
                Transitions = [
                    {
                        State = Store.stateOf status
                        At = at.AddSeconds seconds
                    }
                ]
                At = at.AddSeconds seconds
            }

            store.Save(
                call.CallId,
                {
                    Attempt = Attempt.first
                    State = from
                },
                change,
                cancel
            )

        // Saved in the mover's store only: nothing is published on either sidecar's own feed.
        let! ringing = move State.Queued (Live Ringing) 1.0
        let! failed = move State.Ringing (Failed(FailedOutcome.Busy, None)) 2.0
        Expect.equal [ ringing; failed ] [ Saved; Saved ] "both moves saved"
        let! sent = received
        return sent |> List.map stateOf
    }

[<Tests>]
let tests =
    testSequencedGroup "the local PostgreSQL"
    <| testList "PostgreSQL replicas" [
        // Catches a Program that opens SQLite whatever Data__Provider says (each replica would keep its own
        // calls, and one would answer 404 for the other's).
        onFreshDatabase
            "two sidecars with Data__Provider=postgres on one database: a call one records, the other serves"
            (fun connection ->
                task {
                    let settings =
                        TestSidecar.fakeAmiConfig
                            [
                                "Data:Provider", "postgres"
                                "Data:ConnectionString", connection
                                "Data:NumberKey", String('k', 40)
                            ]
                            (Loopback.freePort ())

                    use one = new Sidecar(settings)
                    use other = new Sidecar(settings)
                    let store = one.App.Services.GetRequiredService<ICallStore>()
                    Expect.isTrue (store :? PostgresCallStore) "the PostgreSQL store"

                    let call: NewCall = {
                        CallId = CallId.create ()
                        Attempt = Attempt.first
                        Language = French
                        MaskedNumber = "1514*****34"
                        CreatedAt = DateTimeOffset.UtcNow
                    }

                    let! _ = store.Create(call, cancel)
                    let! response = other.Client.GetAsync($"/calls/{CallId.value call.CallId}")
                    let! body = response.Content.ReadAsStringAsync()
                    Expect.equal (int response.StatusCode) 200 body
                    Expect.stringContains body "\"state\":\"queued\"" "the call as the first sidecar recorded it"
                    let password = NpgsqlConnectionStringBuilder(connection).Password
                    Expect.exists one.Log (fun line -> line.Contains "Call store: PostgreSQL, database test_") "logged"
                    Expect.all one.Log (fun line -> not (line.Contains password)) "the password is in no log line"
                })

        // Catches streams fed only by their own replica's feed: the stream on the replica that did not move
        // the call would send its history and then nothing.
        onFreshDatabase
            "a call's event stream on one replica follows the moves another replica saves"
            (fun connection ->
                task {
                    let! sent = streamedAcrossReplicas connection (fun () -> Task.CompletedTask)
                    Expect.equal sent [ "queued"; "ringing"; "failed" ] "every move, once, then the end"
                })

        // Catches a replica that stops listening when its LISTEN connection is cut (its streams would
        // hear no other replica's move again), or one that listens again without reading the watched calls
        // (the moves announced while it was away would be lost).
        onFreshDatabase
            "a replica whose LISTEN connection is cut listens again and sends the moves it missed meanwhile"
            (fun connection ->
                task {
                    let listeners () =
                        scalar
                            connection
                            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'"
                            []

                    let cut () =
                        task {
                            Expect.isTrue
                                (Programs.eventually (TimeSpan.FromSeconds 10.0) (fun () ->
                                    (listeners().Result :?> int64) = 2L))
                                "both replicas listen"

                            let! _ =
                                scalar
                                    connection
                                    "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'"
                                    []

                            Expect.isTrue
                                (Programs.eventually (TimeSpan.FromSeconds 10.0) (fun () ->
                                    (listeners().Result :?> int64) = 0L))
                                "both cut"
                        }

                    let! sent = streamedAcrossReplicas connection (fun () -> cut () :> Task)
                    Expect.equal sent [ "queued"; "ringing"; "failed" ] "every move, once, then the end"
                })

        // Catches webhooks accepted with PostgreSQL: their outbox is written only by the SQLite store, so
        // no event would ever be delivered.
        onFreshDatabase
            "webhooks with Data__Provider=postgres stop start-up with a message saying they need SQLite"
            (fun connection ->
                task {
                    let settings =
                        TestSidecar.fakeAmiConfig
                            [
                                "Data:Provider", "postgres"
                                "Data:ConnectionString", connection
                                "Data:NumberKey", String('k', 40)
                                "Webhooks:Url", "https://hooks.example.com/callback"
                                "Webhooks:Secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
                            ]
                            (Loopback.freePort ())
                        |> List.map Collections.Generic.KeyValuePair

                    let created =
                        Callback.Program.createApp [||] (fun builder ->
                            Microsoft.Extensions.Configuration.MemoryConfigurationBuilderExtensions
                                .AddInMemoryCollection(builder.Configuration, settings)
                            |> ignore)

                    match created with
                    | Ok _ -> failtest "the app was built"
                    | Result.Error errors ->
                        Expect.contains
                            errors
                            "Webhooks__Url needs Data__Provider=sqlite for now: the webhook outbox is not in the PostgreSQL store yet."
                            "said"
                })

        // Catches a duplicate window read from one replica's memory or files: the visitor who pressed
        // twice, answered by two replicas behind a round-robin proxy, would be rung twice.
        onFreshDatabase
            "a second request for the number on the other replica gets the first call and places nothing"
            (fun connection ->
                task {
                    use server =
                        new FakeAmi.Server(FakeAmi.script FakeAmi.asterisk, Some FakeAmi.pki.Value.Server)

                    let settings =
                        TestSidecar.fakeAmiConfig
                            [
                                "Data:Provider", "postgres"
                                "Data:ConnectionString", connection
                                "Data:NumberKey", String('k', 40)
                            ]
                            server.Port

                    use one = new Sidecar(settings)
                    use other = new Sidecar(settings)
                    let visitor = [ "phoneNumber", TestNumbers.Allowed; "language", "en" ]
                    let firstStatus, first = one.Post(form visitor)
                    Expect.equal (int firstStatus) 200 first
                    let status, again = other.Post(form visitor)
                    Expect.equal (int status) 200 again

                    let json (body: string) =
                        Text.Json.JsonDocument.Parse(body).RootElement

                    Expect.equal
                        ((json again).GetProperty("callId").GetString())
                        ((json first).GetProperty("callId").GetString())
                        "the first call"

                    Expect.isTrue ((json again).GetProperty("duplicate").GetBoolean()) "a duplicate"
                    Expect.equal server.Sessions 1 "one call placed, by the first replica"
                })
    ]
