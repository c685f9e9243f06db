/// What opening hours must keep over generated weeks, holidays and instants in zones with and without
/// daylight saving (Lord Howe's changes by 30 minutes); the examples are in HoursTests.
module Callback.Tests.HoursPropertiesTests

open Expecto
open FsCheck
open FsCheck.FSharp
open NodaTime
open Callback.Domain

let private zones =
    [
        "Europe/Paris"
        "America/Montreal"
        "Australia/Lord_Howe"
        "Asia/Kolkata"
        "UTC"
    ]
    |> List.map HoursTests.zone

/// 2026 and 2027, where the generated instants and holidays fall.
let private firstDay = LocalDate(2026, 1, 1)

/// Up to three windows of one day from distinct 5-minute marks (1440 is 24:00), so they never touch.
let private dayWindows =
    gen {
        let! count = Gen.choose (0, 3)
        let! marks = Gen.choose (0, 288) |> Gen.listOfLength (2 * count)
        let marks = marks |> List.distinct |> List.sort

        let timeOf mark =
            if mark = 288 then
                LocalTime.Midnight
            else
                LocalTime.FromMinutesSinceMidnight(mark * 5)

        return
            marks
            |> List.chunkBySize 2
            |> List.choose (function
                | [ opens; closes ] -> Some(OpeningWindow.tryCreate (timeOf opens) (timeOf closes))
                | _ -> None)
            |> List.choose Result.toOption
    }

let private hours =
    gen {
        let! zone = Gen.elements zones
        let! days = Gen.listOfLength 7 dayWindows

        let windows =
            days
            |> List.mapi (fun i ws -> ws |> List.map (fun w -> enum<IsoDayOfWeek>(i + 1), w))
            |> List.concat

        let! holidays = Gen.choose (0, 729) |> Gen.map firstDay.PlusDays |> Gen.listOf

        return
            WeeklyHours.tryCreate windows
            |> Result.toOption
            |> Option.map (fun week -> {
                Zone = zone
                Schedule = Weekly(week, Set.ofList holidays)
            })
    }
    |> Gen.filter Option.isSome
    |> Gen.map Option.get

let private instant =
    gen {
        let! minute = Gen.choose (0, 729 * 24 * 60)
        let! second = Gen.choose (0, 59)

        return
            Instant.FromUtc(2026, 1, 1, 0, 0)
            + Duration.FromMinutes(int64 minute)
            + Duration.FromSeconds(int64 second)
    }

let private hoursAndInstant = Gen.zip hours instant |> Arb.fromGen

let private config = {
    FsCheckConfig.defaultConfig with
        maxTest = 300
}

let private openingsAround hours (instant: Instant) =
    let date = instant.InZone(hours.Zone).Date
    [ -1 .. 1 ] |> List.collect (fun n -> Hours.openingsOn hours (date.PlusDays n))

[<Tests>]
let tests =
    testList "Hours properties" [
        // Catches a next opening in the past, or one that is a closed instant (a window's end).
        testPropertyWithConfig config "the next opening is never before now and is open"
        <| Prop.forAll hoursAndInstant (fun (hours, now) ->
            let next = Hours.nextOpening hours now
            Expect.isGreaterThanOrEqual next now "not before now"
            Expect.isTrue (Hours.isOpen hours next) "open")

        // Catches a next opening that skips an earlier window (a later day's, or the other shift).
        testPropertyWithConfig config "when closed, nothing from now until the next opening is open"
        <| Prop.forAll hoursAndInstant (fun (hours, now) ->
            let next = Hours.nextOpening hours now

            if next > now then
                let gap = next - now

                for step in 0..20 do
                    let probe = now + gap * (float step / 21.0)
                    Expect.isFalse (Hours.isOpen hours probe) $"open at {probe}"

                Expect.isFalse (Hours.isOpen hours (next - Duration.Epsilon)) "open just before")

        // Catches an opening closed at its start or open at its end (the interval taken as closed or open).
        testPropertyWithConfig
            config
            "every opening is open from its start to just before its end, and closed at its end"
        <| Prop.forAll hoursAndInstant (fun (hours, around) ->
            for opening in openingsAround hours around do
                Expect.isTrue (Hours.isOpen hours opening.Start) "open at its start"
                Expect.isTrue (Hours.isOpen hours (opening.End - Duration.Epsilon)) "open just before its end"

                // Only another opening that starts right there (across a spring gap) keeps it open.
                let continued =
                    openingsAround hours opening.End
                    |> List.exists (fun o -> o.Contains opening.End)

                Expect.equal (Hours.isOpen hours opening.End) continued "closed at its end")

        // Catches a slot that runs past the close, or one on a holiday.
        testPropertyWithConfig config "every slot is open from its start to its end"
        <| Prop.forAll hoursAndInstant (fun (hours, around) ->
            let length = SlotLength.tryCreate 25 |> Option.get
            let date = around.InZone(hours.Zone).Date

            for slot in Hours.slots hours length date do
                Expect.isTrue (Hours.isOpen hours slot) "open at its start"

                Expect.isTrue
                    (Hours.isOpen hours (slot + SlotLength.duration length - Duration.Epsilon))
                    "until its end")

        // Catches calls placed closed, out of order, or closer together than the rate allows.
        testPropertyWithConfig config "calls spread at an opening are open, in order, at least one spacing apart"
        <| Prop.forAll hoursAndInstant (fun (hours, now) ->
            let rate = OpeningRate.tryCreate 7 |> Option.get

            let placed =
                Hours.spreadAtOpening hours rate (Hours.nextOpening hours now) [ 1..12 ]

            Expect.equal (List.map fst placed) [ 1..12 ] "in order"

            for _, at in placed do
                Expect.isTrue (Hours.isOpen hours at) "open"

            for (_, a), (_, b) in List.pairwise placed do
                Expect.isGreaterThanOrEqual (b - a) (OpeningRate.spacing rate) "spaced")

        // Catches a request rung while closed, or held back while open.
        testPropertyWithConfig config "without callAt a call is placed now exactly when open, else at the next opening"
        <| Prop.forAll hoursAndInstant (fun (hours, now) ->
            match Placement.decide hours now None with
            | Ok Now -> Expect.isTrue (Hours.isOpen hours now) "open now"
            | Ok(AtOpening opening) ->
                Expect.isFalse (Hours.isOpen hours now) "closed now"
                Expect.equal opening (Hours.nextOpening hours now) "the next opening"
            | other -> failtest $"{other}")

        // Catches a waiting call placed closed, before its opening, or in the slot of one waiting before it.
        testPropertyWithConfig config "the call behind n waiting ones is open, after the opening and after the n-th"
        <| Prop.forAll hoursAndInstant (fun (hours, now) ->
            let rate = OpeningRate.tryCreate 7 |> Option.get
            let opening = Hours.nextOpening hours now
            let spread = Placement.spread hours rate opening
            let placed = [ for n in 0..12 -> spread n ]

            for at in placed do
                Expect.isTrue (Hours.isOpen hours at) "open"
                Expect.isGreaterThanOrEqual at opening "not before the opening"

            for a, b in List.pairwise placed do
                Expect.isGreaterThanOrEqual (b - a) (OpeningRate.spacing rate) "behind the one before")
    ]
