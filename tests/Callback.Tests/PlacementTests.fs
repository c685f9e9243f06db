/// When a valid request's call is placed: now, at its `callAt`, or at the next opening behind the calls
/// already waiting; the clock is an input, so every case names its own instant.
module Callback.Tests.PlacementTests

open Expecto
open NodaTime
open Callback.Domain
open Callback.Tests.HoursTests

let private perMinute n =
    OpeningRate.tryCreate n |> Option.defaultWith (fun () -> failwith "rate")

let private decide now callAt = Placement.decide office now callAt

/// Sunday only, in Paris, from `opens` to `closes`: a window on the night of a daylight-saving change.
let private sundayNight opens closes =
    hoursIn "Europe/Paris" [ IsoDayOfWeek.Sunday, opens, closes ] []

[<Tests>]
let tests =
    testList "Placement" [
        // Catches a request while open held back, or a callAt-less request always scheduled.
        test "open now and no callAt: the call is placed now, as before hours existed" {
            Expect.equal (decide (at "2026-12-07T10:00:00+01:00") None) (Ok Now) "Monday 10:00"
            Expect.equal (decide (at "2026-12-07T17:59:59+01:00") None) (Ok Now) "a second before closing"
        }

        // Catches a closed office that rings anyway (the owner's phone at night), or the wrong opening.
        test "closed now and no callAt: the call waits for the next opening" {
            let cases = [
                "2026-12-07T12:30:00+01:00", "2026-12-07T14:00:00+01:00" // lunch
                "2026-12-07T18:00:00+01:00", "2026-12-08T09:00:00+01:00" // closing time itself is closed
                "2026-12-11T19:00:00+01:00", "2026-12-14T09:00:00+01:00" // Friday evening: Monday
                "2026-12-24T18:30:00+01:00", "2026-12-28T09:00:00+01:00" // Christmas Day is a holiday
            ]

            for now, opening in cases do
                Expect.equal (decide (at now) None) (Ok(AtOpening(at opening))) now
        }

        // Catches a booked time ignored when the office is closed now, or rounded to a slot or an opening.
        test "a valid callAt is kept to the second, whether open or closed now" {
            let callAt = at "2026-12-08T09:37:12+01:00"
            Expect.equal (decide (at "2026-12-07T10:00:00+01:00") (Some callAt)) (Ok(At callAt)) "open now"
            Expect.equal (decide (at "2026-12-07T23:00:00+01:00") (Some callAt)) (Ok(At callAt)) "closed now"
        }

        test "a callAt that is now is placed now" {
            let now = at "2026-12-07T10:00:00+01:00"
            Expect.equal (decide now (Some now)) (Ok Now) "now"
        }

        // Catches an invalid callAt quietly replaced by the next opening instead of refused.
        test "a callAt in the past, too far ahead or outside hours is refused with its reason" {
            let now = at "2026-12-07T10:00:00+01:00"
            Expect.equal (decide now (Some(at "2026-12-07T09:59:00+01:00"))) (Error InThePast) "past"

            Expect.equal
                (decide now (Some(at "2026-12-22T10:00:00+01:00")))
                (Error(TooFarAhead(now + Duration.FromDays 14)))
                "15 days"

            Expect.equal
                (decide now (Some(at "2026-12-07T13:00:00+01:00")))
                (Error(OutsideOpeningHours(at "2026-12-07T14:00:00+01:00")))
                "lunch"
        }

        test "with hours off every request is placed now and a callAt any time within 14 days is kept" {
            let off = { office with Schedule = AlwaysOpen }
            let night = at "2026-12-13T03:00:00+01:00"
            Expect.equal (Placement.decide off night None) (Ok Now) "Sunday night"

            Expect.equal
                (Placement.decide off night (Some(night + Duration.FromHours 1)))
                (Ok(At(night + Duration.FromHours 1)))
                "booked"
        }

        // Catches the spring gap's opening computed as a local 02:30 that does not exist (an exception or
        // an instant an hour early).
        test "Paris, spring forward: a closed night's next opening in the gap is when the gap ends" {
            let hours = sundayNight "02:30" "05:00"

            Expect.equal
                (Placement.decide hours (at "2026-03-28T23:00:00+01:00") None)
                (Ok(AtOpening(at "2026-03-29T03:00:00+02:00")))
                "03:00 CEST"
        }

        // Catches the autumn's ambiguous 02:30 taken as its later instant (an hour late).
        test "Paris, fall back: the next opening at an hour that happens twice is its first one" {
            let hours = sundayNight "02:30" "05:00"

            Expect.equal
                (Placement.decide hours (at "2026-10-25T01:00:00+02:00") None)
                (Ok(AtOpening(at "2026-10-25T02:30:00+02:00")))
                "02:30 CEST"
        }

        // Catches every waiting call placed at 09:00:00, or the count ignored.
        test "calls waiting for an opening are spread by the rate behind those already waiting" {
            let opening = at "2026-12-08T09:00:00+01:00"
            let spread = Placement.spread office (perMinute 6) opening
            Expect.equal (spread 0) opening "the first at the opening"
            Expect.equal (spread 1) (at "2026-12-08T09:00:10+01:00") "10 s later"
            Expect.equal (spread 30) (at "2026-12-08T09:05:00+01:00") "the 31st 5 min later"
        }

        // Catches a spread that rings after closing rather than at the next opening.
        test "a spread past closing goes on at the next opening" {
            let opening = at "2026-12-08T09:00:00+01:00"
            let spread = Placement.spread office (perMinute 1) opening
            Expect.equal (spread 179) (at "2026-12-08T11:59:00+01:00") "the last minute of the morning"
            Expect.equal (spread 180) (at "2026-12-08T14:00:00+01:00") "the afternoon's opening"
        }

        // Catches a spread counted in local minutes across the change: 01:00-04:00 that night is two hours.
        test "Paris, spring forward: a spread across the gap counts real minutes" {
            let hours = sundayNight "01:00" "04:00"
            let opening = at "2026-03-29T01:00:00+01:00"
            let spread = Placement.spread hours (perMinute 1) opening
            Expect.equal (spread 119) (at "2026-03-29T03:59:00+02:00") "the 120th call"
            Expect.equal (spread 120) (at "2026-04-05T01:00:00+02:00") "the 121st, a week later"
        }
    ]
