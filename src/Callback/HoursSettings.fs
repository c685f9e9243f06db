namespace Callback

open System
open Microsoft.Extensions.Configuration
open FsToolkit.ErrorHandling
open NodaTime
open NodaTime.Text
open Callback.Domain

/// Opening hours and the booking of calls (`Hours__…`): when calls are placed, the slots a visitor may
/// book with `callAt`, and how fast the calls that waited for an opening are placed.
[<NoComparison>]
type HoursSettings = {
    Hours: OpeningHours
    SlotLength: SlotLength
    OpeningRate: OpeningRate
}

/// `Hours__Windows`: groups separated by `;`, each days then windows, e.g.
/// `Mon-Fri 09:00-12:00,14:00-18:00; Sat 10:00-13:00`. Days are `Mon` … `Sun` in any case, alone, as a
/// range (`Fri-Mon` wraps round the weekend) or a list (`Mon,Wed`); `24:00` closes a window at midnight.
[<RequireQualifiedAccess>]
module WindowsSyntax =

    let private days =
        [ "mon"; "tue"; "wed"; "thu"; "fri"; "sat"; "sun" ]
        |> List.mapi (fun i name -> name, enum<IsoDayOfWeek>(i + 1))
        |> Map.ofList

    let private day (text: string) =
        days
        |> Map.tryFind (text.ToLowerInvariant())
        |> Result.requireSome $"'{text}' is not a day (Mon, Tue, Wed, Thu, Fri, Sat or Sun)"

    /// `Mon`, or `Fri-Mon` for Friday to Monday.
    let private dayRange (text: string) =
        match text.Split '-' with
        | [| one |] -> day one |> Result.map List.singleton
        | [| first; last |] ->
            result {
                let! first = day first
                and! last = day last
                let count = (int last - int first + 7) % 7 + 1
                return List.init count (fun i -> enum<IsoDayOfWeek>((int first - 1 + i) % 7 + 1))
            }
        | _ -> Error $"'{text}' is not a day or a range of days such as Mon-Fri"

    let private clock = LocalTimePattern.CreateWithInvariantCulture "HH:mm"

    let private time (text: string) =
        let parsed = clock.Parse text

        if parsed.Success then
            Ok parsed.Value
        else
            Error $"'{text}' is not a time (HH:mm)"

    /// `09:00-12:00`; `24:00` only as a closing time.
    let private window (text: string) =
        match text.Split '-' with
        | [| opens; "24:00" |] -> time opens |> Result.map (fun opens -> opens, LocalTime.Midnight)
        | [| opens; closes |] ->
            result {
                let! opens = time opens
                let! closes = time closes
                return opens, closes
            }
        | _ -> Error $"'{text}' is not a window such as 09:00-12:00"
        |> Result.bind (fun (opens, closes) ->
            OpeningWindow.tryCreate opens closes
            |> Result.mapError (fun why -> $"'{text}': {why}"))

    /// Every item parsed, or the problems of every item that failed, in the items' order.
    let internal all (parse: string -> Result<'a, string list>) (items: string list) =
        let results = List.map parse items

        match results |> List.collect (Result.defaultError []) with
        | [] -> Ok(results |> List.choose Result.toOption)
        | problems -> Error problems

    let private trimmed (separator: char) (text: string) =
        text.Split(separator, StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries)
        |> List.ofArray

    /// One group, `Mon-Fri 09:00-12:00,14:00-18:00`: every day of it gets every window of it.
    let private group (text: string) =
        match text.Split((null: char array), 2, StringSplitOptions.RemoveEmptyEntries) with
        | [| dayPart; windowPart |] ->
            let days = trimmed ',' dayPart |> all (dayRange >> Result.mapError List.singleton)

            let windows =
                trimmed ',' windowPart |> all (window >> Result.mapError List.singleton)

            match days, windows with
            | Ok days, Ok windows ->
                Ok [
                    for day in List.concat days do
                        for w in windows -> day, w
                ]
            | _ -> Error(List.concat [ Result.defaultError [] days; Result.defaultError [] windows ])
        | _ -> Error [ $"'{text}' needs days then windows, such as Mon-Fri 09:00-18:00" ]

    /// The week the text describes, or every problem found in it.
    let parse (text: string) : Result<WeeklyHours, string list> =
        trimmed ';' text
        |> all group
        |> Result.bind (List.concat >> WeeklyHours.tryCreate)

[<RequireQualifiedAccess>]
module HoursSettings =

    /// The slot length's bounds, in minutes: a slot shorter than 5 minutes books nobody's time, one longer
    /// than 4 hours is not a time to call.
    [<Literal>]
    let MaxSlotMinutes = 240

    [<Literal>]
    let MinSlotMinutes = 5

    /// Calls per minute at an opening, at most: ten a second is past any trunk a sidecar drives.
    [<Literal>]
    let MaxOpeningRate = 600

    let private text (config: IConfiguration) key =
        match config[key] with
        | null -> None
        | v when String.IsNullOrWhiteSpace v -> None
        | v -> Some(v.Trim())

    let private enabled config =
        match text config "Hours:Enabled" with
        | None -> Ok false
        | Some v ->
            match Boolean.TryParse v with
            | true, b -> Ok b
            | _ -> Error $"Hours__Enabled must be true or false (got '{v}')."

    let private number config key fallback low high =
        match text config key with
        | None -> Ok fallback
        | Some v ->
            match Int32.TryParse v with
            | true, n when n >= low && n <= high -> Ok n
            | _ -> Error $"""{key.Replace(":", "__")} must be a whole number from {low} to {high} (got '{v}')."""

    let private zone config isEnabled =
        match text config "Hours:TimeZone", isEnabled with
        | None, true ->
            Error "Hours__TimeZone is required when Hours__Enabled is true (an IANA name, e.g. Europe/Paris)."
        | None, false -> Ok DateTimeZone.Utc
        | Some id, _ ->
            DateTimeZoneProviders.Tzdb.GetZoneOrNull id
            |> Option.ofObj
            |> Result.requireSome $"Hours__TimeZone must be an IANA time zone name such as Europe/Paris (got '{id}')."

    let private week config isEnabled =
        match text config "Hours:Windows", isEnabled with
        | None, true ->
            Error [
                "Hours__Windows is required when Hours__Enabled is true (e.g. Mon-Fri 09:00-12:00,14:00-18:00)."
            ]
        | None, false -> Ok None
        | Some windows, _ ->
            WindowsSyntax.parse windows
            |> Result.map Some
            |> Result.mapError (List.map (fun problem -> $"Hours__Windows: {problem}."))

    let private holiday (text: string) =
        let parsed = LocalDatePattern.Iso.Parse text

        if parsed.Success then
            Ok parsed.Value
        else
            Error [ $"Hours__Holidays: '{text}' is not a date (yyyy-MM-dd)." ]

    /// Dates separated by commas, semicolons or spaces.
    let private holidays config =
        match text config "Hours:Holidays" with
        | None -> Ok Set.empty
        | Some dates ->
            dates.Split([| ','; ';'; ' ' |], StringSplitOptions.RemoveEmptyEntries)
            |> List.ofArray
            |> WindowsSyntax.all holiday
            |> Result.map Set.ofList

    let private schedule isEnabled week holidays =
        match isEnabled, week with
        | true, Some week -> Weekly(week, holidays)
        | _ -> AlwaysOpen

    /// Reads the hours' settings, all problems at once. Hours are off unless `Hours__Enabled` is true, which
    /// needs a zone and windows; windows, holidays and a zone given while off are checked all the same.
    let read (config: IConfiguration) : Result<HoursSettings, string list> =
        match enabled config with
        | Error problem -> Error [ problem ]
        | Ok isEnabled ->
            validation {
                let! zone = zone config isEnabled
                and! week = week config isEnabled
                and! holidays = holidays config
                and! slot = number config "Hours:SlotMinutes" 15 MinSlotMinutes MaxSlotMinutes
                and! rate = number config "Hours:OpeningRatePerMinute" 6 1 MaxOpeningRate

                return {
                    Hours = {
                        Zone = zone
                        Schedule = schedule isEnabled week holidays
                    }
                    SlotLength = SlotLength.tryCreate slot |> Option.get
                    OpeningRate = OpeningRate.tryCreate rate |> Option.get
                }
            }
