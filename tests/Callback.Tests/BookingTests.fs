/// Opening hours and `callAt` through the real app: what `POST /callback` places now, what it keeps for
/// later (202) and what it refuses, and `GET /slots`; on a fake clock and a fake scheduler.
module Callback.Tests.BookingTests

open System
open System.Collections.Concurrent
open System.Net
open System.Text.Json
open System.Threading.Tasks
open Expecto
open Microsoft.Extensions.DependencyInjection
open NodaTime
open Callback.Domain
open Callback.Http
open Callback.Tests.FakeAmi
open Callback.Tests.TestSidecar

/// A clock that reads only what the test set.
type BookingClock(now: DateTimeOffset) =
    inherit TimeProvider()
    member val Now = now with get, set
    override this.GetUtcNow() = this.Now

/// What the sidecar asked the scheduler, and what it answers.
type FakeScheduler(clock: TimeProvider, waiting: int, answer: Result<unit, string>) =
    let kept = ConcurrentQueue<string * Instant>()
    let asked = ConcurrentQueue<Instant>()

    member _.Kept = List.ofSeq kept
    member _.AskedWaitingAt = List.ofSeq asked

    member _.Scheduling: Scheduling = {
        Clock = clock
        Schedule =
            fun request at _ ->
                kept.Enqueue(request.PhoneNumber.Digits, at)

                answer
                |> Result.map (fun () -> {
                    CallId = CallId.create ()
                    ScheduledFor = at
                })
                |> Task.FromResult
        WaitingAt =
            fun opening _ ->
                asked.Enqueue opening
                Task.FromResult waiting
    }

/// Mon-Fri 09:00-12:00 and 14:00-18:00 in Paris, Christmas Day closed (HoursTests' office).
let officeHours = [
    "Hours:Enabled", "true"
    "Hours:TimeZone", "Europe/Paris"
    "Hours:Windows", "Mon-Fri 09:00-12:00,14:00-18:00"
    "Hours:Holidays", "2026-12-25"
]

let private instant (text: string) =
    NodaTime.Text.OffsetDateTimePattern.GeneralIso.Parse(text).Value.ToDateTimeOffset()

/// A sidecar for the fake AMI `server` with these hours, its clock at `now` and this scheduler.
let sidecarAt (hours: (string * string) list) (server: Server) (scheduler: FakeScheduler) =
    new Sidecar(
        fakeAmiConfig hours server.Port,
        fun services -> services.AddSingleton<Scheduling> scheduler.Scheduling |> ignore
    )

/// A scheduler on a clock at `now` (ISO 8601 with offset) that says `waiting` calls wait and answers `answer`.
let schedulerAt now waiting answer =
    FakeScheduler(BookingClock(instant now), waiting, answer)

let private valid = [ "phoneNumber", TestNumbers.Allowed; "language", "EN" ]

/// A string property of a JSON body.
let text (name: string) (body: string) =
    use doc = JsonDocument.Parse body
    doc.RootElement.GetProperty(name).GetString()

let private fieldsOf (body: string) = errorFields body |> List.sort

[<Tests>]
let callbacks =
    testList "POST /callback with hours" [
        // Catches hours that are on by default, or a request while open held back.
        test "without hours, or while open, a request is placed now as before: 200 and one AMI session" {
            for hours, now in
                [
                    [], "2026-12-13T03:00:00+01:00" // Sunday night, hours off
                    officeHours, "2026-12-07T10:00:00+01:00" // Monday morning
                ] do
                use server = new Server(script asterisk, Some pki.Value.Server)
                let scheduler = schedulerAt now 0 (Ok())
                use sidecar = sidecarAt hours server scheduler
                let status, body = sidecar.Post(form valid)
                Expect.equal status HttpStatusCode.OK $"200 at {now}"
                Expect.equal (stages body) [ true; true; true; true; true ] "five booleans"
                Expect.equal server.Sessions 1 "one AMI session"
                Expect.isEmpty scheduler.Kept "nothing kept for later"
        }

        // Catches a closed office that rings at once, or an answer without what the page shows.
        test "while closed a request is kept for the next opening: 202, queued, scheduledFor, no AMI traffic" {
            use server = new Server(script asterisk, Some pki.Value.Server)
            let scheduler = schedulerAt "2026-12-07T20:00:00+01:00" 0 (Ok())
            use sidecar = sidecarAt officeHours server scheduler
            let status, body = sidecar.Post(form valid)
            Expect.equal status HttpStatusCode.Accepted "202"
            Expect.equal (stages body) [ false; false; false; false; false ] "five false booleans"
            use doc = JsonDocument.Parse body
            Expect.isTrue (doc.RootElement.GetProperty("queued").GetBoolean()) "queued"
            Expect.equal (text "scheduledFor" body) "2026-12-08T09:00:00+01:00" "Tuesday's opening, Paris time"
            let callId = text "callId" body
            Expect.isSome (CallId.tryParse callId) "a call id"
            Expect.equal (text "statusUrl" body) $"/calls/{callId}" "status URL"
            Expect.equal server.Sessions 0 "no AMI session"

            Expect.equal
                scheduler.Kept
                [
                    TestNumbers.AllowedDigits, Instant.FromDateTimeOffset(instant "2026-12-08T09:00:00+01:00")
                ]
                "kept"
        }

        // Catches the count of waiting calls not asked for, asked for another opening, or ignored.
        test "a request while closed is spread behind the calls already waiting for that opening" {
            use server = new Server(script asterisk, Some pki.Value.Server)
            let scheduler = schedulerAt "2026-12-07T20:00:00+01:00" 3 (Ok())
            use sidecar = sidecarAt officeHours server scheduler
            let _, body = sidecar.Post(form valid)
            Expect.equal (text "scheduledFor" body) "2026-12-08T09:00:30+01:00" "three ahead at 6 a minute"

            Expect.equal
                scheduler.AskedWaitingAt
                [ Instant.FromDateTimeOffset(instant "2026-12-08T09:00:00+01:00") ]
                "asked for 09:00"
        }

        // Catches callAt unbound in one format, or not kept as asked (rounded, or read as UTC local time).
        test "a valid callAt, in JSON or a form, in any offset, is kept for that instant and said in Paris time" {
            for content in
                [
                    jsonBody
                        $"""{{"phoneNumber":"{TestNumbers.Allowed}","language":"fr","callAt":"2026-12-08T13:30:00Z"}}"""
                    form (("callAt", "2026-12-08T14:30:00+01:00") :: valid)
                ] do
                use server = new Server(script asterisk, Some pki.Value.Server)
                let scheduler = schedulerAt "2026-12-07T10:00:00+01:00" 0 (Ok())
                use sidecar = sidecarAt officeHours server scheduler
                let status, body = sidecar.Post content
                Expect.equal status HttpStatusCode.Accepted "202"
                Expect.equal (text "scheduledFor" body) "2026-12-08T14:30:00+01:00" "the time asked"
                Expect.equal server.Sessions 0 "no AMI session"
        }

        // Catches a callAt checked only once the other fields pass, or an invalid one kept or placed.
        test "a callAt outside hours is refused with 422 beside the other fields' errors, and nothing is kept" {
            use server = new Server(script asterisk, Some pki.Value.Server)
            let scheduler = schedulerAt "2026-12-07T10:00:00+01:00" 0 (Ok())
            use sidecar = sidecarAt officeHours server scheduler

            let status, body =
                sidecar.Post(form [ "phoneNumber", "12"; "language", "EN"; "callAt", "2026-12-07T12:30:00+01:00" ])

            Expect.equal status HttpStatusCode.UnprocessableEntity "422"
            Expect.equal (fieldsOf body) [ "callAt"; "phoneNumber" ] "both fields"
            use doc = JsonDocument.Parse body

            let messages = [
                for e in doc.RootElement.GetProperty("errors").EnumerateArray() -> e.GetProperty("message").GetString()
            ]

            Expect.contains
                messages
                "callAt is outside opening hours: the next opening after it is 2026-12-07T14:00:00+01:00."
                "the next opening"

            Expect.equal server.Sessions 0 "no AMI session"
            Expect.isEmpty scheduler.Kept "nothing kept"
        }

        test "a callAt in the past, too far ahead, without an offset or not a string is refused on callAt" {
            use server = new Server(script asterisk, Some pki.Value.Server)
            let scheduler = schedulerAt "2026-12-07T10:00:00+01:00" 0 (Ok())
            use sidecar = sidecarAt officeHours server scheduler

            for callAt in
                [
                    "\"2026-12-07T09:00:00+01:00\""
                    "\"2026-12-22T10:00:00+01:00\""
                    "\"2026-12-08T10:00:00\""
                    "1765184400"
                ] do
                let status, body =
                    sidecar.Post(
                        jsonBody $"""{{"phoneNumber":"{TestNumbers.Allowed}","language":"en","callAt":{callAt}}}"""
                    )

                Expect.equal status HttpStatusCode.UnprocessableEntity $"422 for {callAt}"
                Expect.equal (fieldsOf body) [ "callAt" ] $"on callAt for {callAt}"
                Expect.isFalse (body.Contains(callAt.Trim '"')) "the value is not repeated"

            Expect.equal server.Sessions 0 "no AMI session"
        }

        // Catches a failed schedule answered 202 (a call promised and never placed), or placed now instead.
        test "a call that cannot be kept answers 503 in the contract, and nothing reaches Asterisk" {
            use server = new Server(script asterisk, Some pki.Value.Server)
            let scheduler = schedulerAt "2026-12-07T20:00:00+01:00" 0 (Error "disk full")
            use sidecar = sidecarAt officeHours server scheduler
            let status, body = sidecar.Post(form valid)
            Expect.equal status HttpStatusCode.ServiceUnavailable "503"
            Expect.equal (stages body) [ false; false; false; false; false ] "five false booleans"
            Expect.equal (errorFields body) [ "request" ] "on the request"
            Expect.equal server.Sessions 0 "no AMI session"
            let line = sidecar.Log |> List.find (fun l -> l.Contains "could not be scheduled")
            Expect.stringContains line "disk full" "the reason is logged"
            Expect.isFalse (line.Contains TestNumbers.AllowedDigits) "never the whole number"
        }

        // Catches calls for later missing from /metrics, or a failed one counted as kept.
        test "/metrics counts the calls kept for later and those that could not be kept" {
            let scrape (sidecar: Sidecar) (series: string) =
                sidecar.Client.GetStringAsync("/metrics").Result.Split('\n')
                |> Array.tryFind _.StartsWith(series + " ")
                |> Option.map (fun line -> line.Substring(series.Length + 1))

            for answer, kept, unkept in [ Ok(), "1", "0"; Error "full", "0", "1" ] do
                use server = new Server(script asterisk, Some pki.Value.Server)

                use sidecar =
                    sidecarAt officeHours server (schedulerAt "2026-12-07T20:00:00+01:00" 0 answer)

                sidecar.Post(form valid) |> ignore
                Expect.equal (scrape sidecar "callback_scheduled_total") (Some kept) $"kept ({answer})"

                Expect.equal
                    (scrape sidecar "callback_refusals_total{reason=\"unschedulable\"}")
                    (Some unkept)
                    $"unschedulable ({answer})"
        }

        // Catches a composition root that schedules nowhere but answers 202 (a call promised, then lost).
        test
            "with the app's own scheduler a request while closed is kept in the store: 202, due at the opening, nothing sent" {
            use server = new Server(script asterisk, Some pki.Value.Server)
            // The app's own clock and scheduler; open all week but closed from yesterday to the day after
            // tomorrow, so it is closed now whenever the test runs.
            let today = DateTime.UtcNow.Date

            let holidays =
                [ -1 .. 2 ]
                |> List.map (fun d -> today.AddDays(float d).ToString("yyyy-MM-dd"))
                |> String.concat ","

            use sidecar =
                new Sidecar(
                    fakeAmiConfig
                        [
                            "Hours:Enabled", "true"
                            "Hours:TimeZone", "Etc/UTC"
                            "Hours:Windows", "Mon-Sun 00:00-24:00"
                            "Hours:Holidays", holidays
                        ]
                        server.Port
                )

            let status, body = sidecar.Post(form valid)
            Expect.equal status HttpStatusCode.Accepted body
            let callId = (JsonDocument.Parse body).RootElement.GetProperty("callId").GetString()

            let store =
                sidecar.App.Services.GetService(typeof<Callback.Calls.ICallStore>) :?> Callback.Calls.ICallStore

            let stored =
                (store.Find((CallId.tryParse callId).Value, Threading.CancellationToken.None).Result).Value

            Expect.equal
                (stored.ScheduledFor |> Option.map (fun at -> at.UtcDateTime))
                (Some(today.AddDays 3.0))
                "due at the next opening"

            Expect.equal server.Sessions 0 "no AMI session"
        }

        // Catches Hours__ settings never read at start-up (a typo would leave the office always open).
        test "invalid Hours__ settings stop start-up with every problem named" {
            let result =
                Callback.Program.createApp [||] (fun builder ->
                    Microsoft.AspNetCore.TestHost.WebHostBuilderExtensions.UseTestServer builder.WebHost
                    |> ignore

                    Microsoft.Extensions.Configuration.MemoryConfigurationBuilderExtensions.AddInMemoryCollection(
                        builder.Configuration,
                        fakeAmiConfig [ "Hours:Enabled", "true"; "Hours:SlotMinutes", "2" ] 1
                        |> List.map Collections.Generic.KeyValuePair
                    )
                    |> ignore)

            match result with
            | Ok _ -> failtest "started"
            | Error problems ->
                for key in [ "Hours__TimeZone"; "Hours__Windows"; "Hours__SlotMinutes" ] do
                    Expect.isTrue (problems |> List.exists _.Contains(key)) key
        }
    ]
