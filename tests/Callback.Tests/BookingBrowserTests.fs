/// "Call me now" while closed and "call me at" on the demo page, in Debian's headless Chromium: the real app
/// on a real Kestrel port, its clock and scheduler faked (a call kept for later sends nothing to Asterisk,
/// so none is needed).
module Callback.Tests.BookingBrowserTests

open System
open System.Collections.Generic
open System.IO
open Expecto
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.Extensions.Configuration
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging
open NodaTime
open Callback.Http
open Callback.Tests.BookingTests
open Callback.Tests.DemoBrowser
open Callback.Tests.OnThisMachine

/// The app with the demo page and the office's hours on a loopback port, its clock at Monday 7 December
/// 2026, 20:00 in Paris (closed), keeping every call for later with `scheduler`.
let private withDemo (scheduler: FakeScheduler) (body: string -> unit) =
    let port = Loopback.freePort ()

    let settings =
        TestSidecar.fakeAmiConfig [] (Loopback.freePort ())
        @ officeHours
        @ [
            "Demo:Enabled", "true"
            "Data:Path", Directory.CreateTempSubdirectory("callback-data-").FullName
        ]

    let app =
        Callback.Program.createApp [||] (fun builder ->
            builder.WebHost.UseUrls $"http://127.0.0.1:{port}" |> ignore

            builder.Configuration.AddInMemoryCollection(settings |> List.map KeyValuePair)
            |> ignore

            builder.Logging.ClearProviders() |> ignore
            builder.Services.AddSingleton<Scheduling> scheduler.Scheduling |> ignore)
        |> Result.defaultWith (String.concat "; " >> failwith)

    app.StartAsync().Wait()

    try
        body $"http://127.0.0.1:{port}/"
    finally
        app.DisposeAsync().AsTask().Wait()

let private closedMonday () =
    FakeScheduler(BookingClock(DateTimeOffset(2026, 12, 7, 19, 0, 0, TimeSpan.Zero)), 0, Ok())

let private tuesdayNine =
    Instant.FromDateTimeOffset(DateTimeOffset(2026, 12, 8, 8, 0, 0, TimeSpan.Zero))

[<Tests>]
let tests =
    testList "Demo page in Chromium: call me later" [
        // Catches a 202 shown as a failure, or the time said in UTC or the browser's zone.
        onThisMachine "browser" browserTools "while closed, Call me back says in French when we will call"
        <| fun () ->
            let scheduler = closedMonday ()

            withDemo scheduler (fun url ->
                let seen = visit url TestNumbers.Allowed "fr" "demo-closed-fr.png"
                Expect.equal seen.Status 202 "POST /callback answers 202"
                Expect.equal seen.Message "Nous vous rappellerons le mardi 8 décembre à 09 h 00." "the French sentence"
                Expect.equal seen.ScheduledFor (Some "2026-12-08T09:00:00+01:00") "scheduledFor"

                Expect.equal
                    seen.Stages
                    [
                        for s in [ "socket"; "amiLogin"; "amiOrig"; "amiLogoff"; "callSpooled" ] -> s, "✘"
                    ]
                    "five ✘ in the table"

                Expect.isEmpty seen.PageErrors "no errors in the page's console"
                Expect.equal (List.map snd scheduler.Kept) [ tuesdayNine ] "kept for Tuesday's opening")

        // Catches a picker not fed by /slots, or a callAt the page never sends.
        onThisMachine
            "browser"
            browserTools
            "call me at: the visitor picks a slot of a day and is told the time in English"
        <| fun () ->
            let scheduler = closedMonday ()

            withDemo scheduler (fun url ->
                let seen =
                    visitIn "at=2026-12-08" url TestNumbers.Allowed "en" "demo-call-at-en.png"

                Expect.equal seen.Status 202 "POST /callback answers 202"
                Expect.equal seen.Slots.Head "2026-12-08T09:00:00+01:00" "the day's first slot"
                Expect.equal seen.Slots.Length (12 + 16) "every slot of the day, 15 minutes each"
                Expect.equal seen.Message "We will call you on Tuesday, December 8 at 09:00." "the English sentence"
                Expect.isEmpty seen.PageErrors "no errors in the page's console"
                Expect.equal (List.map snd scheduler.Kept) [ tuesdayNine ] "kept for the slot picked")
    ]
