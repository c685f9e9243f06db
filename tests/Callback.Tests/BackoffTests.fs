/// The reconnection delay: doubling, capped, jittered between half the ceiling and the ceiling.
module Callback.Tests.BackoffTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Callback.Ami

/// A policy of 1 ms to 10 s initial delay and a cap of 1× to 1000× that.
let private policies =
    gen {
        let! initial = Gen.choose (1, 10_000)
        let! factor = Gen.choose (1, 1000)

        return {
            Initial = TimeSpan.FromMilliseconds(float initial)
            Max = TimeSpan.FromMilliseconds(float initial * float factor)
        }
    }

let private cases =
    gen {
        let! policy = policies
        let! attempt = Gen.choose (1, 10_000)
        let! random = Gen.choose (0, 1_000_000) |> Gen.map (fun n -> float n / 1_000_000.0)
        return policy, attempt, random
    }
    |> Arb.fromGen

let private tolerance = TimeSpan.FromMilliseconds 0.001

[<Tests>]
let tests =
    testList "Backoff" [
        test "the ceiling doubles from Initial on each attempt until the cap" {
            let policy = {
                Initial = TimeSpan.FromSeconds 1.0
                Max = TimeSpan.FromSeconds 30.0
            }

            let ceilings = [ for attempt in 1..7 -> (Backoff.ceiling policy attempt).TotalSeconds ]
            Expect.equal ceilings [ 1.0; 2.0; 4.0; 8.0; 16.0; 30.0; 30.0 ] "1, 2, 4, 8, 16, then the cap"
        }

        // Catches an uncapped exponent (overflow to infinity or a negative delay at large attempts).
        testProperty
            "the delay never exceeds the cap, even after thousands of attempts"
            (Prop.forAll cases
             <| fun (policy, attempt, random) -> Backoff.delay policy attempt random <= policy.Max + tolerance)

        // Catches jitter that can reach zero (every sidecar retrying in a tight loop) or exceed the ceiling.
        testProperty
            "the delay lies between half the ceiling and the ceiling"
            (Prop.forAll cases
             <| fun (policy, attempt, random) ->
                 let ceiling = Backoff.ceiling policy attempt
                 let delay = Backoff.delay policy attempt random
                 delay + tolerance >= ceiling / 2.0 && delay <= ceiling + tolerance)

        // Catches a backoff that shrinks again (or resets) while failures go on.
        testProperty
            "the ceiling never shrinks from one attempt to the next"
            (Prop.forAll cases
             <| fun (policy, attempt, _) -> Backoff.ceiling policy attempt <= Backoff.ceiling policy (attempt + 1))

        testProperty
            "the first attempt waits at most Initial"
            (Prop.forAll cases
             <| fun (policy, _, random) -> Backoff.delay policy 1 random <= policy.Initial + tolerance)
    ]
