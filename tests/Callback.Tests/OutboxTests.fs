module Callback.Tests.OutboxTests

open System
open System.Text.Json
open System.Threading.Tasks
open Expecto
open Microsoft.Extensions.Time.Testing
open Callback.Calls
open Callback.Domain
open Callback.Webhooks
open Callback.Tests.TestOutbox

let private start = DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero)
let private endpoints = [ "http://127.0.0.1:1/a"; "http://127.0.0.1:1/b" ]

/// The outbox hook, made to fail right after it wrote its rows: the write must roll back with them.
let private failingAfter (hook: ISqliteWriteHook) = {
    new ISqliteWriteHook with
        member _.Schema = hook.Schema

        member _.Written(connection, call, added, cancel) =
            task {
                do! hook.Written(connection, call, added, cancel)
                return raise (InvalidOperationException "the disk is full")
            }
}

let private claim (outbox: OutboxStore) (now: DateTimeOffset) =
    task {
        use! connection = outbox.Sqlite.Connect cancel
        return! Outbox.claim connection outbox.Endpoints now (now.AddMinutes 1.0) 100 cancel
    }

[<Tests>]
let tests =
    testList "Webhook outbox" [
        // Catches rows written outside the store's write (none, or one per endpoint missing).
        test "creating a call writes its call.queued row for each endpoint, with one webhook-id for both" {
            use outbox = new OutboxStore(endpoints, FakeTimeProvider start)
            let call = newCall start
            Expect.isTrue (outbox.Store.Create(call, cancel).Result) "created"

            let rows = outbox.Rows()

            Expect.equal
                (rows |> List.map (fun r -> r.Type, r.Endpoint, r.State))
                [
                    "call.queued", endpoints[0], "pending"
                    "call.queued", endpoints[1], "pending"
                ]
                "one per endpoint"

            Expect.equal (rows |> List.map _.Id |> List.distinct |> List.length) 1 "one webhook-id"
            Expect.stringStarts rows[0].Id "msg_" "id"
            Expect.equal rows[0].CallId (CallId.value call.CallId) "call"
            Expect.equal rows[0].NextAttemptAt start "due at once"

            let data = JsonDocument.Parse(rows[0].Payload).RootElement.GetProperty "data"
            Expect.equal (data.GetProperty("callId").GetString()) (CallId.value call.CallId) "the call's JSON"
        }

        // Catches an event per save instead of per reportable transition, or a missing one.
        test "a whole call's life writes exactly its five events, in order" {
            use outbox = new OutboxStore([ endpoints[0] ], FakeTimeProvider start)
            let call = newCall start
            outbox.Store.Create(call, cancel).Result |> ignore
            completedLife call.CallId outbox.Store start

            Expect.equal
                (outbox.Rows() |> List.map _.Type)
                [ "call.queued"; "call.ringing"; "call.answered"; "call.completed" ]
                "queued, ringing, answered, completed"

            Expect.equal (outbox.Rows() |> List.map _.Id |> List.distinct |> List.length) 4 "an id each"
        }

        // Catches the outbox row committed on its own: the move and its row commit, or roll back, together.
        test "a create whose transaction rolls back records neither the call nor its row" {
            use failing =
                new OutboxStore([ endpoints[0] ], FakeTimeProvider start, failingAfter)

            let other = newCall start

            Expect.throws (fun () -> failing.Store.Create(other, cancel).Result |> ignore) "create fails"
            Expect.isNone (failing.Store.Find(other.CallId, cancel).Result) "no call"
            Expect.isEmpty (failing.Rows()) "no row"
        }

        // Catches a save that rolls back its call but keeps its event (or the reverse).
        test "a save whose transaction rolls back leaves the call as it was and its outbox unchanged" {
            let failNext = ref false

            let wrap (hook: ISqliteWriteHook) = {
                new ISqliteWriteHook with
                    member _.Schema = hook.Schema

                    member _.Written(connection, call, added, cancel) =
                        task {
                            do! hook.Written(connection, call, added, cancel)

                            if failNext.Value then
                                return raise (InvalidOperationException "the disk is full")
                        }
            }

            use outbox = new OutboxStore([ endpoints[0] ], FakeTimeProvider start, wrap)
            let call = newCall start
            outbox.Store.Create(call, cancel).Result |> ignore
            failNext.Value <- true
            let expected, change = move State.Queued (Live Ringing) (start.AddSeconds 1.0)

            Expect.throws
                (fun () -> outbox.Store.Save(call.CallId, expected, change, cancel).Result |> ignore)
                "save fails"

            Expect.equal (outbox.Store.Find(call.CallId, cancel).Result.Value.Status) (Live Queued) "not moved"
            Expect.equal (outbox.Rows() |> List.map _.Type) [ "call.queued" ] "no ringing row"
        }

        // Catches a refused compare-and-set that still enqueues its event.
        test "a stale save enqueues nothing" {
            use outbox = new OutboxStore([ endpoints[0] ], FakeTimeProvider start)
            let call = newCall start
            outbox.Store.Create(call, cancel).Result |> ignore
            let _, change = move State.Queued (Live Ringing) (start.AddSeconds 1.0)

            Expect.equal
                (outbox.Store
                    .Save(
                        call.CallId,
                        {
                            Attempt = Attempt.first
                            State = State.Answered
                        },
                        change,
                        cancel
                    )
                    .Result)
                Stale
                "stale"

            Expect.equal (outbox.Rows().Length) 1 "queued only"
        }

        // Catches a claim that does not count the attempt, hands a row out twice while leased, or loses a
        // row whose delivery was interrupted (the lease must make it due again).
        testTask "a claim counts the attempt and leases the row; after the lease it is due again" {
            use outbox = new OutboxStore([ endpoints[0] ], FakeTimeProvider start)
            outbox.Store.Create(newCall start, cancel).Result |> ignore

            let! first = claim outbox start
            Expect.equal (first |> List.map _.Attempt) [ 1 ] "claimed, attempt 1"
            let! again = claim outbox (start.AddSeconds 30.0)
            Expect.isEmpty again "leased"
            let! afterLease = claim outbox (start.AddMinutes 1.0)
            Expect.equal (afterLease |> List.map _.Attempt) [ 2 ] "due again, attempt 2"

            use! connection = outbox.Sqlite.Connect cancel
            let! _ = Outbox.mark connection (List.head afterLease) (Delivered 204) cancel
            let! later = claim outbox (start.AddHours 1.0)
            Expect.isEmpty later "delivered rows are never claimed"
            let! count, next = Outbox.pending connection outbox.Endpoints cancel
            Expect.equal (count, next) (0L, None) "nothing pending"
        }

        // Catches retries that ignore their time, and pending rows lost by a restart.
        testTask "a retried row waits for its time, and survives a reopen" {
            use outbox = new OutboxStore([ endpoints[0] ], FakeTimeProvider start)
            outbox.Store.Create(newCall start, cancel).Result |> ignore
            let! (rows: OutboxRow list) = claim outbox start

            do!
                task {
                    use! connection = outbox.Sqlite.Connect cancel

                    let! _ =
                        Outbox.mark connection (List.head rows) (Retry(start.AddMinutes 5.0, Some 500)) cancel

                    ()
                }

            outbox.Reopen()
            let! early = claim outbox (start.AddMinutes 4.0)
            Expect.isEmpty early "not yet"
            let! due = claim outbox (start.AddMinutes 5.0)

            Expect.equal
                (due |> List.map (fun (r: OutboxRow) -> MessageId.value r.Id))
                [ MessageId.value (List.head rows).Id ]
                "same id"

            Expect.equal (List.head due).Payload (List.head rows).Payload "same bytes"
        }

        // Catches a 410 that disables every endpoint, or leaves the gone one's rows pending.
        testTask "disabling an endpoint marks its pending rows and no other's" {
            use outbox = new OutboxStore(endpoints, FakeTimeProvider start)
            outbox.Store.Create(newCall start, cancel).Result |> ignore
            use! connection = outbox.Sqlite.Connect cancel
            let! disabled = Outbox.disable connection (List.item 1 endpoints) cancel
            Expect.equal disabled 1 "one row"

            Expect.equal
                (outbox.Rows() |> List.map (fun r -> r.Endpoint, r.State))
                [ endpoints[0], "pending"; endpoints[1], "disabled" ]
                "only the gone endpoint"
        }

        // Catches a prune that deletes rows still waiting for a configured endpoint, or keeps for ever the
        // finished ones and those of an endpoint removed from the settings.
        testTask "pruning deletes old finished rows and old rows of removed endpoints, never a waiting one" {
            let clock = FakeTimeProvider start
            use outbox = new OutboxStore(endpoints, clock)
            outbox.Store.Create(newCall start, cancel).Result |> ignore
            use! connection = outbox.Sqlite.Connect cancel

            let! (rows: OutboxRow list) =
                Outbox.claim connection [ endpoints[0] ] start (start.AddMinutes 1.0) 10 cancel

            let! _ = Outbox.mark connection (List.head rows) (Delivered 200) cancel
            clock.Advance(TimeSpan.FromDays 8.0)
            outbox.Store.Create(newCall (start.AddDays 8.0), cancel).Result |> ignore
            let! pruned = Outbox.prune connection [ endpoints[0] ] (start.AddDays 7.0) cancel

            Expect.equal pruned 2 "the delivered row, and the old row of the removed endpoint"

            Expect.equal
                (outbox.Rows() |> List.map (fun r -> r.Endpoint, r.State))
                [ endpoints[0], "pending"; endpoints[1], "pending" ]
                "the new call's rows are kept"
        }
    ]
