/// The durable requests on PostgreSQL with several replicas: claims taken once across replicas (`FOR
/// UPDATE SKIP LOCKED`), leases that a dead replica loses and a live one keeps, the duplicate check under
/// the number's lock, and the migration from version 1.
module Callback.Tests.PostgresRequestsTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Npgsql
open Callback.Calls
open Callback.Domain
open Callback.Tests.OnThisMachine

let private cancel = CancellationToken.None

let private t0 = DateTimeOffset.FromUnixTimeMilliseconds 1_800_000_000_000L

let private opened (connection: string) =
    match PostgresCallStore.Open(connection, cancel).Result with
    | Ok store -> store
    | Result.Error message -> failwith message

/// Two stores (two replicas) on a fresh database, closed and the database dropped afterwards.
let private onTwoReplicas name (body: IRequestStore -> IRequestStore -> Task) =
    onThisMachine "PostgreSQL" LocalPostgres.server name (fun server ->
        use database = new LocalPostgres.TestDatabase(server)
        use one = opened database.ConnectionString
        use other = opened database.ConnectionString
        (body one other).GetAwaiter().GetResult())

let private number n = (TestNumbers.distinct n).Digits

[<Tests>]
let tests =
    testSequencedGroup "the local PostgreSQL"
    <| testList "PostgresRequests" [
        // Catches a claim without SKIP LOCKED or without the phase guard: both replicas would take some
        // attempts (and dial them twice).
        onTwoReplicas "two replicas claiming the same due attempts at once take each one once" (fun one other ->
            task {
                for n in 0..19 do
                    let! accepted = one.Accept(RequestStoreTests.request (number n) t0 (Some t0), cancel)
                    Expect.equal accepted Accepted "accepted"

                let claim (store: IRequestStore) =
                    Task.Run<ClaimedAttempt list>(fun () -> store.ClaimDue(t0.AddSeconds 1.0, 20, cancel))

                let! claimed = Task.WhenAll(claim one, claim other, claim one, claim other)
                let ids = claimed |> Seq.concat |> Seq.map _.CallId |> List.ofSeq
                Expect.equal ids.Length 20 "every attempt claimed"
                Expect.equal (List.distinct ids).Length 20 "none twice"
            })

        // Catches a claim without a lease (a dead replica's attempt never placed) or one taken again while
        // its lease runs (two replicas placing it).
        onTwoReplicas
            "an attempt claimed by a replica that died is claimed again once its lease is over, not before"
            (fun one other ->
                task {
                    let request = RequestStoreTests.request (number 1) t0 (Some t0)
                    let! _ = one.Accept(request, cancel)
                    let! first = one.ClaimDue(t0, 10, cancel)
                    Expect.equal (first |> List.map _.CallId) [ request.CallId ] "claimed by the first"

                    let! meanwhile =
                        other.ClaimDue(t0 + PostgresRequests.ClaimLease - TimeSpan.FromSeconds 1.0, 10, cancel)

                    Expect.isEmpty meanwhile "not while the lease runs"
                    let! after = other.ClaimDue(t0 + PostgresRequests.ClaimLease, 10, cancel)
                    Expect.equal (after |> List.map _.CallId) [ request.CallId ] "claimed again after it"

                    let! stale =
                        one.MarkSent(request.CallId, Attempt.first, t0 + PostgresRequests.ClaimLease, cancel)

                    let! sent =
                        other.MarkSent(request.CallId, Attempt.first, t0 + PostgresRequests.ClaimLease, cancel)

                    Expect.equal (stale, sent) (true, false) "one of them sends it (the first mark wins the phase)"
                })

        // Catches SQLite's start-up rule (every claim released) on a shared database: a replica starting
        // would hand another's claim, being placed, to a third.
        onTwoReplicas "a replica that starts releases only the claims whose lease is over" (fun one other ->
            task {
                let request = RequestStoreTests.request (number 2) t0 None
                let! _ = one.Accept(request, cancel)
                let! early = other.ReleaseClaimed(t0.AddMinutes 1.0, cancel)
                Expect.equal early 0 "a live claim is kept"
                let! late = other.ReleaseClaimed(t0 + PostgresRequests.ClaimLease, cancel)
                Expect.equal late 1 "an expired one is released"
            })

        // Catches a duplicate check outside the number's lock: both replicas would see no call and accept.
        onTwoReplicas
            "two requests for one number on two replicas at once: one is accepted, the other is its duplicate"
            (fun one other ->
                task {
                    for round in 0..9 do
                        let digits = number (10 + round)

                        let accept (store: IRequestStore) =
                            Task.Run<Acceptance>(fun () ->
                                store.Accept(RequestStoreTests.request digits t0 None, cancel))

                        let! answers = Task.WhenAll(accept one, accept other)
                        let accepted = answers |> Array.filter ((=) Accepted)
                        Expect.equal accepted.Length 1 $"round {round}: one accepted"
                })

        // Catches a version 2 that only runs on an empty database (the previous version's calls would be
        // unreadable, or lose their attempt).
        onThisMachine
            "PostgreSQL"
            LocalPostgres.server
            "a database at version 1 is migrated to 2 with its calls, each one sent attempt"
            (fun server ->
                use database = new LocalPostgres.TestDatabase(server)
                use dataSource = NpgsqlDataSource.Create database.ConnectionString
                let v1 = PostgresSchema.migrations |> List.find (fst >> (=) 1) |> snd

                let run (sql: string) =
                    use command = dataSource.CreateCommand sql
                    command.ExecuteNonQuery() |> ignore

                run
                    "CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"

                run v1
                run "INSERT INTO schema_migrations (version) VALUES (1)"
                let callId = CallId.create ()

                run
                    $"INSERT INTO calls (call_id, attempt, language, masked_number, created_at, updated_at, state) VALUES ('{CallId.value callId}', 1, 'en', '1514*****34', now(), now(), 'ringing')"

                run $"INSERT INTO transitions VALUES ('{CallId.value callId}', 1, 1, 'queued', now())"
                use store = opened database.ConnectionString
                let found = (store :> ICallStore).Find(callId, cancel).Result |> Option.get
                Expect.equal found.Status (Live Ringing) "the call as it was"
                Expect.equal (found.Attempts |> List.map _.Attempt) [ Attempt.first ] "its one attempt"
                let live = (store :> ICallStore).ListLive(cancel).Result
                Expect.equal (live |> List.map _.CallId) [ callId ] "live and sent: reconciled after a restart")
    ]
