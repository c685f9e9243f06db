module Callback.Tests.SessionGateTests

open System
open System.Diagnostics
open System.Threading
open System.Threading.Tasks
open Expecto
open Callback

[<Tests>]
let tests =
    testList "SessionGate" [
        test "never more sessions at once than its limit, and every one runs" {
            use gate = new SessionGate(2)
            let mutable running = 0
            let mutable most = 0

            let session () =
                task {
                    let now = Interlocked.Increment &running
                    lock gate (fun () -> most <- max most now)
                    do! Task.Delay 50
                    Interlocked.Decrement &running |> ignore
                    return now
                }

            let results =
                [
                    for _ in 1..8 -> gate.Run(TimeSpan.FromSeconds 10.0, CancellationToken.None, session)
                ]
                |> Task.WhenAll
                |> _.Result

            Expect.equal most 2 "two at most"
            Expect.all results Option.isSome "all eight ran"
        }

        test "a session that finds no free slot within the wait is not run" {
            use gate = new SessionGate(1)
            use release = new ManualResetEventSlim()

            let first =
                gate.Run(
                    TimeSpan.FromSeconds 1.0,
                    CancellationToken.None,
                    fun () ->
                        Task.Run(fun () ->
                            release.Wait()
                            0)
                )

            let mutable ran = false

            let second =
                gate.Run(TimeSpan.FromMilliseconds 100.0, CancellationToken.None, fun () -> task { ran <- true }).Result

            release.Set()
            first.Wait()
            Expect.isNone second "refused"
            Expect.isFalse ran "never started"
        }

        test "a slot is given back when its session throws" {
            use gate = new SessionGate(1)

            let failing =
                gate.Run(TimeSpan.FromSeconds 1.0, CancellationToken.None, fun () -> task { return failwith "boom" })

            Expect.throws (fun () -> failing.Wait()) "the exception reaches the caller"

            let next =
                gate.Run(TimeSpan.FromMilliseconds 100.0, CancellationToken.None, fun () -> task { return 1 })

            Expect.equal next.Result (Some 1) "the slot is free again"
        }

        test "past its queue a session is refused at once, and a queued one still runs when a slot frees" {
            use gate = new SessionGate(1, 1)
            use release = new ManualResetEventSlim()
            let wait = TimeSpan.FromSeconds 5.0

            let holding () =
                Task.Run(fun () ->
                    release.Wait()
                    0)

            let running = gate.Run(wait, CancellationToken.None, holding)

            let queued =
                gate.Run(wait, CancellationToken.None, fun () -> task { return "queued ran" })

            Expect.equal (gate.InUse, gate.Queued) (1, 1) "one running, one waiting"
            let mutable ran = false
            let watch = Stopwatch.StartNew()

            let refused =
                gate.Run(wait, CancellationToken.None, fun () -> task { ran <- true }).Result

            // Mutation caught: an unbounded queue would keep the third waiting for the whole 5 s.
            Expect.isLessThan watch.Elapsed (TimeSpan.FromSeconds 1.0) "at once"
            Expect.isNone refused "refused"
            Expect.isFalse ran "never started"
            release.Set()
            running.Wait()
            Expect.equal queued.Result (Some "queued ran") "the queued session ran"
            Expect.equal (gate.InUse, gate.Queued) (0, 0) "all given back"
        }

        test "each session's duration is reported when it ends" {
            use gate = new SessionGate(1, 0)
            let durations = Collections.Concurrent.ConcurrentQueue<TimeSpan>()
            gate.SessionEnded.Add durations.Enqueue

            gate.Run(TimeSpan.FromSeconds 1.0, CancellationToken.None, fun () -> task { do! Task.Delay 100 }).Result
            |> ignore

            Expect.equal durations.Count 1 "one session"
            Expect.isGreaterThanOrEqual (Seq.head durations) (TimeSpan.FromMilliseconds 90.0) "its duration"
        }
    ]
