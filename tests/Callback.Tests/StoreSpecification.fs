/// The call store's specification, the same for every provider: each provider runs these cases on a fresh
/// database of its own (SQLite in a temporary directory, PostgreSQL in a database made for the test).
module Callback.Tests.StoreSpecification

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Callback.Calls
open Callback.Domain

/// A store opened on a test's database; disposing it closes the store (not the database).
type OpenedStore = {
    Store: ICallStore
    Close: unit -> unit
} with

    interface IDisposable with
        member this.Dispose() = this.Close()

/// One test's database, empty at first; disposing it deletes it.
type IStoreDatabase =
    inherit IDisposable
    /// Opens a store on this database, another instance each time: a restart, or a second replica.
    abstract Open: unit -> Task<OpenedStore>
    /// The transitions the database holds for the call, counted around the store.
    abstract TransitionCount: callId: CallId -> Task<int64>

/// How a provider turns a case into a test: `case name body` runs `body` on a fresh database.
type StoreCase = string -> (IStoreDatabase -> Task) -> Test

let private cancel = CancellationToken.None

/// Whole milliseconds, as the stores keep times.
let private now =
    DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())

/// The body with a store opened on `database`, closed afterwards.
let private withStore (database: IStoreDatabase) (body: ICallStore -> Task) : Task =
    task {
        use! opened = database.Open()
        do! body opened.Store
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

/// The specification as tests, each run by `case` on a fresh database.
let tests (case: StoreCase) : Test list = [
    case "a call read while it is moved is one snapshot: its state is always its last transition's" (fun database ->
        withStore database (fun store ->
            task {
                // A race, so many rounds: reading the history and the row in two autocommit reads
                // (the bug this catches) fails within a few dozen.
                for _ in 1..200 do
                    let! mismatches = readsWhileMoving store
                    Expect.isEmpty mismatches "a read saw a state its history did not hold yet"
            }))

    case "a call written then read back has its fields, its final status and its numbered history" (fun database ->
        withStore database (fun store ->
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
            }))

    case "every outcome, talk time included, reads back as it was saved" (fun database ->
        withStore database (fun store ->
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
            }))

    case "a call recorded twice keeps its first record" (fun database ->
        withStore database (fun store ->
            task {
                let call = newCall now
                let! first = store.Create(call, cancel)
                let! again = store.Create({ call with MaskedNumber = "other" }, cancel)
                Expect.equal (first, again) (true, false) "the second is refused"
                let! found = find store call
                Expect.equal found.MaskedNumber call.MaskedNumber "first record kept"
                Expect.equal found.History.Length 1 "one queued transition"
            }))

    // Catches an UPDATE without the state guard: the stale move would then be saved.
    case "a move expecting a state the call has already left is refused as stale and writes nothing" (fun database ->
        withStore database (fun store ->
            task {
                let call = newCall now
                let! _ = store.Create(call, cancel)

                let! first =
                    store.Save(call.CallId, expectedIn State.Queued, moveTo (Live Ringing) State.Ringing now, cancel)

                let stale = moveTo (Failed(Unreachable, None)) State.Failed now
                let! second = store.Save(call.CallId, expectedIn State.Queued, stale, cancel)
                Expect.equal (first, second) (Saved, Stale) "the second writer is stale"
                let! found = find store call
                Expect.equal found.Status (Live Ringing) "status unchanged"
                Expect.equal (states found) [ State.Queued; State.Ringing ] "history unchanged"
            }))

    // Catches an UPDATE without the attempt guard (issue 17's retries rely on it).
    case "a move expecting another attempt is refused as stale" (fun database ->
        withStore database (fun store ->
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
            }))

    case "a call never recorded cannot be moved nor found" (fun database ->
        withStore database (fun store ->
            task {
                let call = newCall now

                let! saved =
                    store.Save(call.CallId, expectedIn State.Queued, moveTo (Live Ringing) State.Ringing now, cancel)

                let! found = store.Find(call.CallId, cancel)
                Expect.equal saved UnknownCall "unknown"
                Expect.isNone found "not found"
            }))

    // Catches a read-then-write without the guard in the UPDATE (or outside one transaction).
    case "of twenty concurrent writers moving the same call from the same state, exactly one wins" (fun database ->
        withStore database (fun store ->
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
            }))

    // Catches a store that keeps calls in memory only, or that recreates its schema on every start.
    case "calls survive closing the store and opening it again, as after a restart" (fun database ->
        task {
            let call = newCall now

            do!
                task {
                    use! opened = database.Open()
                    let! _ = opened.Store.Create(call, cancel)

                    let! _ =
                        opened.Store.Save(
                            call.CallId,
                            expectedIn State.Queued,
                            moveTo (Live Ringing) State.Ringing now,
                            cancel
                        )

                    ()
                }

            use! reopened = database.Open()
            let! found = find reopened.Store call
            Expect.equal found.Status (Live Ringing) "status kept"
            Expect.equal (states found) [ State.Queued; State.Ringing ] "history kept"
        })

    case "the live list holds exactly the calls not yet ended or failed" (fun database ->
        withStore database (fun store ->
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
            }))

    // Catches a prune by creation date alone (it would delete the old live call) or one that leaves the
    // deleted calls' transitions behind.
    case
        "retention deletes the final calls last moved before the cutoff with their history, and keeps live calls of any age"
        (fun database ->
            withStore database (fun store ->
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
                    let! left = database.TransitionCount oldFinal.CallId
                    Expect.equal left 0L "its transitions are deleted too"
                }))


    // Catches a compare-and-set that holds only inside one store object (a lock or a cache in the
    // process instead of the guard in the UPDATE): two replicas would then both move the call.
    case
        "two stores on one database, as two replicas, racing the same compare-and-set: exactly one wins"
        (fun database ->
            task {
                use! one = database.Open()
                use! other = database.Open()
                let call = newCall now
                let! _ = one.Store.Create(call, cancel)

                let writer i =
                    Task.Run<SaveResult>(fun () ->
                        let replica = if i % 2 = 0 then one else other

                        replica.Store.Save(
                            call.CallId,
                            expectedIn State.Queued,
                            moveTo (Failed(FailedOutcome.Lost, None)) State.Failed (now.AddMilliseconds(float i)),
                            cancel
                        ))

                let! results = Task.WhenAll(List.init 20 writer)
                Expect.equal (results |> Array.filter ((=) Saved)).Length 1 "one winner over both replicas"
                Expect.all (results |> Array.filter ((<>) Saved)) ((=) Stale) "the others are stale"
                let! seen = find other.Store call
                Expect.equal (states seen) [ State.Queued; State.Failed ] "moved once, as both replicas see it"
            })

    // Catches a create that checks for the id before inserting (both replicas would find none).
    case "the same call recorded by two replicas at once is recorded once" (fun database ->
        task {
            use! one = database.Open()
            use! other = database.Open()
            let call = newCall now

            let! created =
                Task.WhenAll(
                    Task.Run<bool>(fun () -> one.Store.Create(call, cancel)),
                    Task.Run<bool>(fun () -> other.Store.Create(call, cancel))
                )

            Expect.equal (created |> Array.filter id).Length 1 "one of them recorded it"
            let! left = database.TransitionCount call.CallId
            Expect.equal left 1L "one queued transition"
        })
]
