module Callback.Tests.CallAtTests

open Expecto
open NodaTime
open Callback.Domain
open Callback.Tests.HoursTests

/// Monday 7 December 2026, 10:00 in Paris: the office is open.
let private now = at "2026-12-07T10:00:00+01:00"

[<Tests>]
let tests =
    testList "CallAt" [
        test "a time inside opening hours from now to 14 days ahead is accepted" {
            for callAt in [ now; at "2026-12-08T15:30:00+01:00"; at "2026-12-21T10:00:00+01:00" ] do
                Expect.equal (CallAt.validate office now callAt) (Ok callAt) (CallAt.format office callAt)
        }

        // Catches a past time accepted (the call would be placed at once, not when asked).
        test "a time before now is in the past, even inside opening hours" {
            Expect.equal (CallAt.validate office now (now - Duration.FromSeconds 1L)) (Error InThePast) "a second ago"
        }

        // Catches the horizon missing or counted from the wrong end.
        test "a time more than 14 days ahead is too far, and the error says the latest time" {
            let tooFar = now + Duration.FromDays 14 + Duration.FromMinutes 1L

            Expect.equal
                (CallAt.validate office now tooFar)
                (Error(TooFarAhead(now + Duration.FromDays 14)))
                "14 days 1 minute"
        }

        // Catches a time outside hours accepted (the owner's phone would ring at night).
        test "a time outside opening hours is refused with the next opening after it" {
            Expect.equal
                (CallAt.validate office now (at "2026-12-07T12:30:00+01:00"))
                (Error(OutsideOpeningHours(at "2026-12-07T14:00:00+01:00")))
                "lunch"

            Expect.equal
                (CallAt.validate office (at "2026-12-20T10:00:00+01:00") (at "2026-12-25T10:00:00+01:00"))
                (Error(OutsideOpeningHours(at "2026-12-28T09:00:00+01:00")))
                "Christmas"
        }

        test "the past is reported before being outside hours" {
            Expect.equal
                (CallAt.validate office now (at "2026-12-06T10:00:00+01:00"))
                (Error InThePast)
                "yesterday, a Sunday"
        }

        test "with hours off any time from now to 14 days ahead is accepted" {
            let off = { office with Schedule = AlwaysOpen }
            let night = at "2026-12-13T03:00:00+01:00"
            Expect.equal (CallAt.validate off now night) (Ok night) "Sunday night"
        }

        // Catches a time without an offset read in the server's zone (a call an hour or more off).
        test "callAt is read as ISO 8601 with an offset or Z, and a time without one is refused" {
            Expect.equal (CallAt.tryParse "2026-12-07T14:30:00+01:00") (Ok(at "2026-12-07T14:30:00+01:00")) "offset"
            Expect.equal (CallAt.tryParse "2026-12-07T13:30:00Z") (Ok(at "2026-12-07T14:30:00+01:00")) "Z"

            Expect.equal
                (CallAt.tryParse "2026-12-07T14:30:00.250-05:00")
                (Ok(Instant.FromUtc(2026, 12, 7, 19, 30) + Duration.FromMilliseconds 250L))
                "fraction"

            for bad in
                [
                    "2026-12-07T14:30:00"
                    "2026-12-07"
                    "14:30"
                    "tomorrow"
                    "2026-13-07T14:30:00Z"
                    ""
                    null
                ] do
                match CallAt.tryParse bad with
                | Ok _ -> failtest $"accepted {bad}"
                | Error message ->
                    Expect.equal
                        message
                        "callAt must be a date and time with its offset, e.g. 2026-12-07T14:30:00+01:00."
                        $"{bad}"
        }

        // Catches a message that echoes the visitor's value, or one in UTC the visitor cannot read.
        test "each refusal has its own message, in the hours' local time with its offset, never the value sent" {
            let lunch = at "2026-12-07T12:30:00+01:00"

            let message =
                CallAt.validate office now lunch |> Result.mapError (CallAt.message office)

            Expect.equal
                message
                (Error "callAt is outside opening hours: the next opening after it is 2026-12-07T14:00:00+01:00.")
                "outside hours"

            let messages =
                [
                    InThePast
                    TooFarAhead(now + Duration.FromDays 14)
                    OutsideOpeningHours lunch
                ]
                |> List.map (CallAt.message office)

            Expect.equal (List.distinct messages).Length 3 "three messages"
            Expect.stringContains messages[1] "2026-12-21T10:00:00+01:00" "the latest time"
        }
    ]
