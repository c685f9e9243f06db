/// `GET /slots` through the real app on a fake clock: the bookable slots of one day, in the hours' zone.
module Callback.Tests.SlotsTests

open System.Net
open System.Text.Json
open Expecto
open Callback.Tests.BookingTests
open Callback.Tests.FakeAmi
open Callback.Tests.TestSidecar

let private slotsOf (sidecar: Sidecar) (query: string) =
    let response = sidecar.Client.GetAsync($"/slots{query}").Result
    response, response.Content.ReadAsStringAsync().Result

let private startsIn (body: string) =
    use doc = JsonDocument.Parse body

    [
        for s in doc.RootElement.GetProperty("slots").EnumerateArray() -> s.GetString()
    ]

[<Tests>]
let slots =
    testList "GET /slots" [
        // Catches slots already gone still offered (a booking that is refused), or the zone missing.
        test "a day's slots are its bookable times from now on, in the hours' zone" {
            use server = new Server(script asterisk, Some pki.Value.Server)

            use sidecar =
                sidecarAt officeHours server (schedulerAt "2026-12-07T10:05:00+01:00" 0 (Ok()))

            let response, body = slotsOf sidecar "?date=2026-12-07"
            Expect.equal response.StatusCode HttpStatusCode.OK "200"
            Expect.equal (string response.Headers.CacheControl) "no-store" "never stored"
            Expect.equal (text "date" body) "2026-12-07" "date"
            Expect.equal (text "timeZone" body) "Europe/Paris" "zone"
            let starts = startsIn body
            Expect.equal starts.Head "2026-12-07T10:15:00+01:00" "10:00 is gone"
            Expect.equal (List.last starts) "2026-12-07T17:45:00+01:00" "the last that ends by 18:00"
            Expect.equal starts.Length (7 + 16) "the rest of the morning and the afternoon"
            Expect.isFalse (starts |> List.contains "2026-12-07T12:00:00+01:00") "not over lunch"
        }

        // Catches an error for a closed day, or slots beyond the 14 days that callAt refuses.
        test "a closed day, a holiday, a day gone and a day past 14 days have no slots" {
            use server = new Server(script asterisk, Some pki.Value.Server)

            use sidecar =
                sidecarAt officeHours server (schedulerAt "2026-12-07T10:05:00+01:00" 0 (Ok()))

            for date in
                [
                    "2026-12-13"
                    "2026-12-25"
                    "2026-12-04"
                    "2026-12-22"
                    "9999-12-31"
                    "0001-01-01"
                ] do
                let response, body = slotsOf sidecar $"?date={date}"
                Expect.equal response.StatusCode HttpStatusCode.OK $"200 for {date}"
                Expect.isEmpty (startsIn body) date

            let _, last = slotsOf sidecar "?date=2026-12-21"
            Expect.equal (List.last (startsIn last)) "2026-12-21T10:00:00+01:00" "up to 14 days from now"
        }

        // Catches a spring-forward day listed in local steps (a 02:00+01:00 that never happens).
        test "a day across a daylight-saving change lists each slot with that moment's offset" {
            use server = new Server(script asterisk, Some pki.Value.Server)

            let night = [
                "Hours:Enabled", "true"
                "Hours:TimeZone", "Europe/Paris"
                "Hours:Windows", "Sun 01:00-04:00"
                "Hours:SlotMinutes", "60"
            ]

            use sidecar =
                sidecarAt night server (schedulerAt "2026-03-28T12:00:00+01:00" 0 (Ok()))

            let _, body = slotsOf sidecar "?date=2026-03-29"
            Expect.equal (startsIn body) [ "2026-03-29T01:00:00+01:00"; "2026-03-29T03:00:00+02:00" ] "two real hours"
        }

        // Catches a bad date answered 500 or outside the contract, or a guessed date.
        test "a missing, repeated or malformed date is refused with 400 on date" {
            use server = new Server(script asterisk, Some pki.Value.Server)

            use sidecar =
                sidecarAt officeHours server (schedulerAt "2026-12-07T10:05:00+01:00" 0 (Ok()))

            for query in
                [
                    ""
                    "?date="
                    "?date=07/12/2026"
                    "?date=2026-02-30"
                    "?date=2026-12-07&date=2026-12-08"
                ] do
                let response, body = slotsOf sidecar query
                Expect.equal response.StatusCode HttpStatusCode.BadRequest $"400 for '{query}'"
                Expect.equal (errorFields body) [ "date" ] $"on date for '{query}'"
                Expect.equal (stages body) [ false; false; false; false; false ] "the contract's shape"

            let post = sidecar.Client.PostAsync("/slots?date=2026-12-07", form []).Result
            Expect.equal post.StatusCode HttpStatusCode.MethodNotAllowed "GET only"
        }
    ]
