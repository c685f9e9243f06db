module Callback.Tests.DeliveryScheduleTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Callback.Webhooks

let private now = DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero)

[<Tests>]
let tests =
    testList "Webhook delivery schedule" [
        // Catches a schedule that is not the specification's example, or one shifted by an attempt.
        test "with no jitter the waits are the specification's: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h" {
            Expect.equal
                ([ 2..10 ] |> List.map (fun attempt -> DeliverySchedule.delayBefore attempt 0.5))
                [
                    TimeSpan.FromSeconds 5.0
                    TimeSpan.FromMinutes 5.0
                    TimeSpan.FromMinutes 30.0
                    TimeSpan.FromHours 2.0
                    TimeSpan.FromHours 5.0
                    TimeSpan.FromHours 10.0
                    TimeSpan.FromHours 14.0
                    TimeSpan.FromHours 20.0
                    TimeSpan.FromHours 24.0
                ]
                "the schedule"
        }

        // Catches jitter that can double a wait, or make it zero.
        testProperty
            "jitter keeps each wait within 10% of the schedule's"
            (fun (attempt: PositiveInt) (j: NormalFloat) ->
                let jitter = abs (j.Get % 1.0)
                let wait = DeliverySchedule.delayBefore (attempt.Get + 1) jitter
                let planned = DeliverySchedule.delayBefore (attempt.Get + 1) 0.5
                wait >= planned * 0.9 && wait <= planned * 1.1)

        // Catches 2xx taken as a failure, 3xx or 4xx taken as success, or a give-up one attempt late.
        test "2xx is done, 410 disables, anything else retries until the last attempt" {
            let decide = DeliverySchedule.decide 3
            Expect.equal (decide 1 0.5 (Accepted 204)) Done "2xx"
            Expect.equal (decide 1 0.5 Gone) DisableEndpoint "410"
            Expect.equal (decide 1 0.5 (Refused(302, None))) (RetryIn(TimeSpan.FromSeconds 5.0)) "3xx"
            Expect.equal (decide 2 0.5 (Refused(400, None))) (RetryIn(TimeSpan.FromMinutes 5.0)) "4xx"
            Expect.equal (decide 2 0.5 Unanswered) (RetryIn(TimeSpan.FromMinutes 5.0)) "timeout"
            Expect.equal (decide 3 0.5 (Refused(500, None))) GiveUp "the last attempt"
            Expect.equal (decide 3 0.5 Gone) DisableEndpoint "410 even at the last"
        }

        // Catches Retry-After ignored, a past date giving a negative wait, or a receiver parking a row for a year.
        test "Retry-After is the wait, from seconds or a date, between none and 24 h" {
            Expect.equal
                (DeliverySchedule.decide 10 1 0.5 (Refused(429, Some(TimeSpan.FromSeconds 7.0))))
                (RetryIn(TimeSpan.FromSeconds 7.0))
                "429"

            Expect.equal
                (DeliverySchedule.retryAfter now (Some(TimeSpan.FromSeconds 30.0)) None)
                (Some(TimeSpan.FromSeconds 30.0))
                "seconds"

            Expect.equal
                (DeliverySchedule.retryAfter now None (Some(now.AddMinutes 3.0)))
                (Some(TimeSpan.FromMinutes 3.0))
                "date"

            Expect.equal
                (DeliverySchedule.retryAfter now None (Some(now.AddMinutes -3.0)))
                (Some TimeSpan.Zero)
                "a past date"

            Expect.equal
                (DeliverySchedule.retryAfter now (Some(TimeSpan.FromDays 365.0)) None)
                (Some(TimeSpan.FromHours 24.0))
                "capped"

            Expect.equal (DeliverySchedule.retryAfter now None None) None "none"
        }
    ]
