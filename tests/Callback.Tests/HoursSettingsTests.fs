module Callback.Tests.HoursSettingsTests

open System.Collections.Generic
open Expecto
open Microsoft.Extensions.Configuration
open NodaTime
open Callback
open Callback.Domain

let private read (pairs: (string * string) list) =
    ConfigurationBuilder().AddInMemoryCollection(pairs |> List.map KeyValuePair).Build()
    |> HoursSettings.read

let private errorsOf pairs =
    match read pairs with
    | Ok _ -> failtest "accepted"
    | Error problems -> problems

let private windowsOf (settings: HoursSettings) day =
    match settings.Hours.Schedule with
    | Weekly(week, _) -> WeeklyHours.windowsOn day week |> List.map OpeningWindow.format
    | AlwaysOpen -> failtest "hours are off"

let private enabled windows = [
    "Hours:Enabled", "true"
    "Hours:TimeZone", "Europe/Paris"
    "Hours:Windows", windows
]

[<Tests>]
let tests =
    testList "HoursSettings" [
        // Catches hours that are on by default (every call outside 09:00-18:00 UTC would be held back).
        test "without settings hours are off, in UTC, with 15-minute slots and 6 calls a minute at opening" {
            match read [] with
            | Ok settings ->
                Expect.equal settings.Hours.Schedule AlwaysOpen "off"
                Expect.equal settings.Hours.Zone DateTimeZone.Utc "UTC"
                Expect.equal (SlotLength.duration settings.SlotLength) (Duration.FromMinutes 15L) "15 minutes"
                Expect.equal (OpeningRate.spacing settings.OpeningRate) (Duration.FromSeconds 10L) "6 a minute"
            | Error problems -> failtest (String.concat "; " problems)
        }

        // Catches a day range that stops early, a second window dropped, or a group's days mixed up.
        test "Mon-Fri with two windows and Sat with one give every weekday both windows and Saturday one" {
            match read (enabled "Mon-Fri 09:00-12:00,14:00-18:00; Sat 10:00-13:00") with
            | Ok settings ->
                for day in HoursTests.weekdays do
                    Expect.equal (windowsOf settings day) [ "09:00-12:00"; "14:00-18:00" ] $"{day}"

                Expect.equal (windowsOf settings IsoDayOfWeek.Saturday) [ "10:00-13:00" ] "Saturday"
                Expect.isEmpty (windowsOf settings IsoDayOfWeek.Sunday) "Sunday"
                Expect.equal settings.Hours.Zone.Id "Europe/Paris" "zone"
            | Error problems -> failtest (String.concat "; " problems)
        }

        test "a range wraps round the weekend, days may be listed, names match in any case, 24:00 ends the day" {
            match read (enabled "fri-MON 20:00-24:00; Wed,thu 08:00-09:00") with
            | Ok settings ->
                for day in
                    [
                        IsoDayOfWeek.Friday
                        IsoDayOfWeek.Saturday
                        IsoDayOfWeek.Sunday
                        IsoDayOfWeek.Monday
                    ] do
                    Expect.equal (windowsOf settings day) [ "20:00-24:00" ] $"{day}"

                Expect.equal (windowsOf settings IsoDayOfWeek.Wednesday) [ "08:00-09:00" ] "Wednesday"
                Expect.isEmpty (windowsOf settings IsoDayOfWeek.Tuesday) "Tuesday"
            | Error problems -> failtest (String.concat "; " problems)
        }

        // Catches holidays read but dropped, or a date format other than ISO accepted.
        test "holidays are ISO dates separated by commas, semicolons or spaces" {
            match
                read (
                    enabled "Mon-Fri 09:00-18:00"
                    @ [ "Hours:Holidays", "2026-12-25, 2027-01-01;2027-05-01" ]
                )
            with
            | Ok {
                     Hours = { Schedule = Weekly(_, holidays) }
                 } ->
                Expect.equal
                    holidays
                    (set [ LocalDate(2026, 12, 25); LocalDate(2027, 1, 1); LocalDate(2027, 5, 1) ])
                    "three dates"
            | other -> failtest $"{other}"
        }

        // Catches hours switched on without a zone (silently UTC) or without windows (never open).
        test "hours switched on need a zone and windows" {
            Expect.equal
                (errorsOf [ "Hours:Enabled", "true" ])
                [
                    "Hours__TimeZone is required when Hours__Enabled is true (an IANA name, e.g. Europe/Paris)."
                    "Hours__Windows is required when Hours__Enabled is true (e.g. Mon-Fri 09:00-12:00,14:00-18:00)."
                ]
                "both named"
        }

        // Catches one problem reported and the others hidden until the next start.
        test "every problem in the settings is reported at once, naming the variable" {
            let problems =
                errorsOf [
                    "Hours:Enabled", "true"
                    "Hours:TimeZone", "Europe/Pariss"
                    "Hours:Windows", "Mon-Fry 09:00-12:00,13:00-25:00; Tue 10:00; Wed; Thu 12:00-09:00"
                    "Hours:Holidays", "2026-12-25 25/12/2026"
                    "Hours:SlotMinutes", "1"
                    "Hours:OpeningRatePerMinute", "0"
                ]

            Expect.equal
                problems
                [
                    "Hours__TimeZone must be an IANA time zone name such as Europe/Paris (got 'Europe/Pariss')."
                    "Hours__Windows: 'Fry' is not a day (Mon, Tue, Wed, Thu, Fri, Sat or Sun)."
                    "Hours__Windows: '25:00' is not a time (HH:mm)."
                    "Hours__Windows: '10:00' is not a window such as 09:00-12:00."
                    "Hours__Windows: 'Wed' needs days then windows, such as Mon-Fri 09:00-18:00."
                    "Hours__Windows: '12:00-09:00': a window must open before it closes."
                    "Hours__Holidays: '25/12/2026' is not a date (yyyy-MM-dd)."
                    "Hours__SlotMinutes must be a whole number from 5 to 240 (got '1')."
                    "Hours__OpeningRatePerMinute must be a whole number from 1 to 600 (got '0')."
                ]
                "all of them"
        }

        test "overlapping windows are refused naming the day, once the rest is well formed" {
            Expect.equal
                (errorsOf (enabled "Mon-Tue 09:00-12:00; Mon 11:00-13:00"))
                [ "Hours__Windows: Monday: 09:00-12:00 and 11:00-13:00 overlap." ]
                "Monday only"
        }

        // Catches bad windows ignored while hours are off, to fail the day someone switches them on.
        test "windows and a zone given while hours are off are still checked" {
            Expect.equal (errorsOf [ "Hours:TimeZone", "Mars/Olympus"; "Hours:Windows", "Mon 9-12" ]).Length 2 "both"

            Expect.equal
                (errorsOf [ "Hours:Enabled", "yes" ])
                [ "Hours__Enabled must be true or false (got 'yes')." ]
                "enabled"
        }
    ]
