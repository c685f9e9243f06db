namespace Callback.Http

open System.Threading
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.Logging
open NodaTime
open NodaTime.Text
open Callback
open Callback.Domain

/// Calls for later: holding a request outside opening hours or for its `callAt` (202), and the slots a
/// visitor may book (`GET /slots`).
[<RequireQualifiedAccess>]
module Booking =

    /// The query parameter of `GET /slots`.
    [<Literal>]
    let DateField = "date"

    let private unschedulable = [
        {
            Field = "request"
            Message = "The call cannot be scheduled right now; try again later."
        }
    ]

    /// Keeps the request for `at` and answers 202 with when it will be placed; 503 when it cannot be kept.
    let private hold
        (settings: HoursSettings)
        (scheduling: Scheduling)
        (logger: ILogger)
        (request: CallbackRequest)
        (at: Instant)
        : HttpHandler =
        fun next ctx ->
            task {
                // Like a call placed now, a call being kept is not abandoned when the browser gives up.
                match! scheduling.Schedule request at CancellationToken.None with
                | Ok call ->
                    Verdict.kept ctx

                    logger.LogInformation(
                        "Callback {CallId} to {Number} ({Language}) scheduled for {ScheduledFor}",
                        CallId.short call.CallId,
                        PhoneNumber.masked request.PhoneNumber,
                        Language.code request.Language,
                        CallAt.format settings.Hours call.ScheduledFor
                    )

                    return! (setStatusCode 202 >=> json (CallbackJson.scheduled settings.Hours call)) next ctx
                | Error why ->
                    logger.LogWarning(
                        "Callback to {Number} ({Language}) for {At} could not be scheduled: {Reason}",
                        PhoneNumber.masked request.PhoneNumber,
                        Language.code request.Language,
                        CallAt.format settings.Hours at,
                        why
                    )

                    Verdict.refused Unschedulable ctx
                    return! refuse 503 unschedulable next ctx
            }

    /// A call for now goes to `place`, as before hours existed; one for a booked `callAt` is kept for that
    /// time; one that arrives while closed is kept for the next opening, behind the calls already waiting.
    let placeOrSchedule
        (settings: HoursSettings)
        (scheduling: Scheduling)
        (logger: ILogger)
        (place: CallbackRequest -> HttpHandler)
        (placement: Placement)
        (request: CallbackRequest)
        : HttpHandler =
        match placement with
        | Now -> place request
        | At callAt -> hold settings scheduling logger request callAt
        | AtOpening opening ->
            fun next ctx ->
                task {
                    let! waiting = scheduling.WaitingAt opening CancellationToken.None
                    let at = Placement.spread settings.Hours settings.OpeningRate opening waiting
                    return! hold settings scheduling logger request at next ctx
                }

    /// The slots of `date` still bookable at `now`: ahead, inside the hours and within `callAt`'s 14 days,
    /// so a day past the horizon (or gone) has none. Days that far are not even computed.
    let bookable (settings: HoursSettings) (now: Instant) (date: LocalDate) : Instant list =
        let today = now.InZone(settings.Hours.Zone).Date
        let days = Period.Between(today, date, PeriodUnits.Days).Days

        if days < 0 || days > CallAt.MaxDaysAhead + 1 then
            []
        else
            Hours.slots settings.Hours settings.SlotLength date
            |> List.filter (fun slot -> CallAt.validate settings.Hours now slot |> Result.isOk)

    let private badDate = [
        {
            Field = DateField
            Message = "date must be one day as YYYY-MM-DD, e.g. 2026-12-03."
        }
    ]

    /// `?date=YYYY-MM-DD`, given once.
    let private dateOf (query: IQueryCollection) =
        match query.TryGetValue DateField with
        | true, values when values.Count = 1 ->
            let parsed = LocalDatePattern.Iso.Parse(values.ToString())
            if parsed.Success then Some parsed.Value else None
        | _ -> None

    /// `GET /slots?date=YYYY-MM-DD`: the day's bookable slots in the hours' zone; 400 for a missing, repeated
    /// or malformed date. Never stored: the list shrinks as the day goes on.
    let slots (settings: HoursSettings) (scheduling: Scheduling) : HttpHandler =
        fun next ctx ->
            ctx.Response.Headers.CacheControl <- "no-store"

            match dateOf ctx.Request.Query with
            | None -> refuse 400 badDate next ctx
            | Some date ->
                let starts = bookable settings (Scheduling.now scheduling) date
                json (SlotsJson.slots settings.Hours date starts) next ctx
