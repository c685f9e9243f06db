/// Opening hours one example at a time, on real zones and their 2026 daylight-saving changes; the
/// properties over generated hours are in HoursPropertiesTests.
module Callback.Tests.HoursTests

open Expecto
open NodaTime
open NodaTime.Text
open Callback.Domain

/// `HH:mm`, `24:00` for the end of the day.
let time (text: string) =
    if text = "24:00" then
        LocalTime.Midnight
    else
        LocalTimePattern.CreateWithInvariantCulture("HH:mm").Parse(text).Value

let window opens closes =
    OpeningWindow.tryCreate (time opens) (time closes)
    |> Result.defaultWith failwith

let zone id =
    DateTimeZoneProviders.Tzdb.GetZoneOrNull id

/// Hours in `zoneId` from (day, opens, closes) triples and holiday dates (`yyyy-MM-dd`).
let hoursIn zoneId (windows: (IsoDayOfWeek * string * string) list) (holidays: string list) = {
    Zone = zone zoneId
    Schedule =
        Weekly(
            windows
            |> List.map (fun (day, opens, closes) -> day, window opens closes)
            |> WeeklyHours.tryCreate
            |> Result.defaultWith (String.concat "; " >> failwith),
            holidays
            |> List.map (fun d -> LocalDatePattern.Iso.Parse(d).Value)
            |> Set.ofList
        )
}

let weekdays = [
    IsoDayOfWeek.Monday
    IsoDayOfWeek.Tuesday
    IsoDayOfWeek.Wednesday
    IsoDayOfWeek.Thursday
    IsoDayOfWeek.Friday
]

/// Mon-Fri 09:00-12:00 and 14:00-18:00 in Paris, closed on Christmas Day 2026 (a Friday).
let office =
    hoursIn "Europe/Paris" [
        for day in weekdays do
            day, "09:00", "12:00"
            day, "14:00", "18:00"
    ] [ "2026-12-25" ]

/// An instant written as ISO 8601 with its offset, as a visitor in that zone reads the wall clock.
let at (text: string) =
    OffsetDateTimePattern.GeneralIso.Parse(text).Value.ToInstant()

let date (text: string) = LocalDatePattern.Iso.Parse(text).Value

let private minutes n =
    SlotLength.tryCreate n |> Option.defaultWith (fun () -> failwith "slot length")

let private perMinute n =
    OpeningRate.tryCreate n |> Option.defaultWith (fun () -> failwith "rate")

let private sunday opens closes = IsoDayOfWeek.Sunday, opens, closes

[<Tests>]
let tests =
    testList "Hours" [
        // Catches a second window of the day ignored, or a window open at its closing minute.
        test "a split shift is open in both windows, closed at lunch and from its closing time" {
            for instant, expected in
                [
                    "2026-12-07T08:59:59+01:00", false
                    "2026-12-07T09:00:00+01:00", true
                    "2026-12-07T11:59:59+01:00", true
                    "2026-12-07T12:00:00+01:00", false
                    "2026-12-07T14:00:00+01:00", true
                    "2026-12-07T18:00:00+01:00", false
                    "2026-12-06T10:00:00+01:00", false
                ] do
                Expect.equal (Hours.isOpen office (at instant)) expected instant
        }

        // Catches nextOpening that skips the afternoon window or the weekend's end.
        test "the next opening is now when open, the afternoon at lunch, and Monday after Friday's close" {
            Expect.equal
                (Hours.nextOpening office (at "2026-12-07T10:00:00+01:00"))
                (at "2026-12-07T10:00:00+01:00")
                "open"

            Expect.equal
                (Hours.nextOpening office (at "2026-12-07T12:30:00+01:00"))
                (at "2026-12-07T14:00:00+01:00")
                "lunch"

            Expect.equal
                (Hours.nextOpening office (at "2026-12-04T18:00:00+01:00"))
                (at "2026-12-07T09:00:00+01:00")
                "weekend"
        }

        // Catches hours computed in UTC or at a fixed offset instead of the zone's rules.
        test "09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer" {
            Expect.equal
                (Hours.nextOpening office (Instant.FromUtc(2026, 1, 4, 12, 0)))
                (Instant.FromUtc(2026, 1, 5, 8, 0))
                "winter"

            Expect.equal
                (Hours.nextOpening office (Instant.FromUtc(2026, 7, 5, 12, 0)))
                (Instant.FromUtc(2026, 7, 6, 7, 0))
                "summer"
        }

        // Catches holidays ignored, or a holiday that closes more than its own date.
        test "a holiday is closed all day and the next opening is the next working day" {
            Expect.isFalse (Hours.isOpen office (at "2026-12-25T10:00:00+01:00")) "Christmas"

            Expect.equal
                (Hours.nextOpening office (at "2026-12-24T18:30:00+01:00"))
                (at "2026-12-28T09:00:00+01:00")
                "Monday after"

            Expect.isTrue (Hours.isOpen office (at "2026-12-24T17:59:00+01:00")) "the day before"
        }

        // Catches hours that are off but still closed at night.
        test "hours that are off are open at any instant and the next opening is now" {
            let off = { office with Schedule = AlwaysOpen }
            let night = at "2026-12-06T03:00:00+01:00"
            Expect.isTrue (Hours.isOpen off night) "open"
            Expect.equal (Hours.nextOpening off night) night "now"
        }

        // Catches a 24:00 close read as 00:00 of the same day (an empty or inverted window).
        test "a window closing at 24:00 is open until midnight and touches the next day's window" {
            let late =
                hoursIn "Europe/Paris" [
                    IsoDayOfWeek.Friday, "20:00", "24:00"
                    IsoDayOfWeek.Saturday, "00:00", "02:00"
                ] []

            Expect.isTrue (Hours.isOpen late (at "2026-12-04T23:59:59+01:00")) "Friday night"
            Expect.isTrue (Hours.isOpen late (at "2026-12-05T00:00:00+01:00")) "midnight"
            Expect.isFalse (Hours.isOpen late (at "2026-12-05T02:00:00+01:00")) "Saturday 02:00"

            Expect.equal
                (Hours.nextOpening late (at "2026-12-04T19:00:00+01:00"))
                (at "2026-12-04T20:00:00+01:00")
                "20:00"
        }

        // Catches the lenient resolver (02:30 shifted to 03:30) or a strict one (an exception).
        test "Paris, spring forward: a window opening in the gap opens when the gap ends" {
            let night = hoursIn "Europe/Paris" [ sunday "02:30" "04:00" ] []

            Expect.equal
                (Hours.nextOpening night (at "2026-03-28T20:00:00+01:00"))
                (at "2026-03-29T03:00:00+02:00")
                "03:00 CEST"

            Expect.isFalse (Hours.isOpen night (at "2026-03-29T04:00:00+02:00")) "closed at 04:00"
        }

        // Catches a window wholly in the gap kept as an inverted or zero-length opening.
        test "Paris, spring forward: a window wholly inside the gap has no opening that day" {
            let night = hoursIn "Europe/Paris" [ sunday "02:10" "02:50" ] []
            Expect.isEmpty (Hours.openingsOn night (date "2026-03-29")) "no opening"

            Expect.equal
                (Hours.nextOpening night (at "2026-03-28T20:00:00+01:00"))
                (at "2026-04-05T02:10:00+02:00")
                "next Sunday"
        }

        // Catches the later instant for an ambiguous opening time (the window would start an hour late).
        test "Paris, fall back: a window across the repeated hour opens at the first 02:30 and lasts two hours" {
            let night = hoursIn "Europe/Paris" [ sunday "02:30" "03:30" ] []

            match Hours.openingsOn night (date "2026-10-25") with
            | [ opening ] ->
                Expect.equal opening.Start (at "2026-10-25T02:30:00+02:00") "the first 02:30"
                Expect.equal opening.Duration (Duration.FromHours 2) "an hour longer"
            | other -> failtest $"{other.Length} openings"

            Expect.isTrue (Hours.isOpen night (at "2026-10-25T02:15:00+01:00")) "the second 02:15 is inside"
        }

        // Catches the later instant for an ambiguous closing time (open again when the clock goes back).
        test "Montreal, fall back: a window closing at 01:30 closes the first time the clock reads 01:30" {
            let night = hoursIn "America/Montreal" [ sunday "00:00" "01:30" ] []
            Expect.isTrue (Hours.isOpen night (at "2026-11-01T01:15:00-04:00")) "the first 01:15"
            Expect.isFalse (Hours.isOpen night (at "2026-11-01T01:15:00-05:00")) "the second 01:15"
        }

        test "Montreal, spring forward: a window opening at 02:00 opens at 03:00 EDT" {
            let night = hoursIn "America/Montreal" [ sunday "02:00" "05:00" ] []

            Expect.equal
                (Hours.nextOpening night (at "2026-03-07T12:00:00-05:00"))
                (at "2026-03-08T03:00:00-04:00")
                "03:00 EDT"
        }

        // Catches a last slot that runs past the close, or slots across lunch.
        test "a day's slots start at each window's opening, one per slot length, each ending by the close" {
            let slots = Hours.slots office (minutes 45) (date "2026-12-07")

            let expected =
                [
                    "09:00"
                    "09:45"
                    "10:30"
                    "11:15"
                    "14:00"
                    "14:45"
                    "15:30"
                    "16:15"
                    "17:00"
                ]
                |> List.map (fun t -> at $"2026-12-07T{t}:00+01:00")

            Expect.equal slots expected "45-minute slots"
            Expect.isEmpty (Hours.slots office (minutes 45) (date "2026-12-25")) "a holiday"
            Expect.isEmpty (Hours.slots office (minutes 45) (date "2026-12-06")) "a Sunday"
        }

        // Catches slots stepped in local time (a repeated or missing hour).
        test "with hours off, a day of 23 or 25 hours has 23 or 25 one-hour slots" {
            let off = { office with Schedule = AlwaysOpen }
            Expect.hasLength (Hours.slots off (minutes 60) (date "2026-03-29")) 23 "spring"
            Expect.hasLength (Hours.slots off (minutes 60) (date "2026-10-25")) 25 "autumn"
            Expect.hasLength (Hours.slots off (minutes 60) (date "2026-12-07")) 24 "December"
        }

        // Catches every call due at opening placed at 09:00:00.
        test "calls due at an opening are placed one spacing apart from the opening" {
            let placed =
                Hours.spreadAtOpening office (perMinute 10) (at "2026-12-07T09:00:00+01:00") [ 'a'; 'b'; 'c'; 'd' ]

            Expect.equal
                placed
                [
                    'a', at "2026-12-07T09:00:00+01:00"
                    'b', at "2026-12-07T09:00:06+01:00"
                    'c', at "2026-12-07T09:00:12+01:00"
                    'd', at "2026-12-07T09:00:18+01:00"
                ]
                "every 6 s, in order"
        }

        // Catches a spread that places calls after the close.
        test "calls that a spread would place after closing go to the next opening" {
            let short = hoursIn "Europe/Paris" [ IsoDayOfWeek.Monday, "09:00", "09:02" ] []

            let placed =
                Hours.spreadAtOpening short (perMinute 1) (at "2026-12-07T09:00:00+01:00") [ 1; 2; 3 ]

            Expect.equal
                (List.map snd placed)
                [
                    at "2026-12-07T09:00:00+01:00"
                    at "2026-12-07T09:01:00+01:00"
                    at "2026-12-14T09:00:00+01:00"
                ]
                "the third a week later"
        }

        // Catches overlapping windows accepted (a call's window would be ambiguous) or touching ones refused.
        test "windows of one day may touch but not overlap, a week needs one, and a window opens before it closes" {
            let week pairs =
                WeeklyHours.tryCreate pairs |> Result.map ignore

            Expect.isOk
                (week [
                    IsoDayOfWeek.Monday, window "09:00" "12:00"
                    IsoDayOfWeek.Monday, window "12:00" "14:00"
                ])
                "touching"

            Expect.equal
                (week [
                    IsoDayOfWeek.Monday, window "11:00" "14:00"
                    IsoDayOfWeek.Monday, window "09:00" "12:00"
                ])
                (Error [ "Monday: 09:00-12:00 and 11:00-14:00 overlap" ])
                "overlapping"

            Expect.equal (week []) (Error [ "at least one opening window is needed" ]) "empty"
            Expect.isError (OpeningWindow.tryCreate (time "12:00") (time "09:00")) "inverted"
            Expect.isError (OpeningWindow.tryCreate (time "09:00") (time "09:00")) "empty window"
            Expect.isOk (OpeningWindow.tryCreate (time "00:00") (time "24:00")) "the whole day"
        }
    ]
