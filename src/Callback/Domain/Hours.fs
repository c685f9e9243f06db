namespace Callback.Domain

open System.Globalization
open NodaTime
open NodaTime.TimeZones

/// One opening of a day, from `Opens` until just before `Closes`, in the local time of the hours' zone.
/// `Closes` is later the same day, or midnight for "until the end of the day" (24:00); an opening past
/// midnight is two windows, one on each day. The only way to get one is `OpeningWindow.tryCreate`.
type OpeningWindow =
    private
    | OpeningWindow of opens: LocalTime * closes: LocalTime

    member this.Opens =
        let (OpeningWindow(opens, _)) = this
        opens

    /// `LocalTime.Midnight` stands for 24:00, the end of the day.
    member this.Closes =
        let (OpeningWindow(_, closes)) = this
        closes

[<RequireQualifiedAccess>]
module OpeningWindow =

    /// Ticks from the day's start to the window's end, 24:00 included, to compare windows of one day.
    let internal endTick (window: OpeningWindow) =
        if window.Closes = LocalTime.Midnight then
            NodaConstants.TicksPerDay
        else
            window.Closes.TickOfDay

    /// A window that opens before it closes; `closes` at midnight means 24:00.
    let tryCreate (opens: LocalTime) (closes: LocalTime) : Result<OpeningWindow, string> =
        if closes = LocalTime.Midnight || opens < closes then
            Ok(OpeningWindow(opens, closes))
        else
            Error "a window must open before it closes"

    /// `HH:mm-HH:mm`, the way configuration writes it (24:00 for the end of the day).
    let format (window: OpeningWindow) =
        let closes =
            if window.Closes = LocalTime.Midnight then
                "24:00"
            else
                window.Closes.ToString("HH:mm", CultureInfo.InvariantCulture)

        $"""{window.Opens.ToString("HH:mm", CultureInfo.InvariantCulture)}-{closes}"""

/// The windows of each day of the week, in order and not overlapping, at least one in the week: hours
/// with no opening at all would leave every scheduled call waiting forever.
type WeeklyHours = private WeeklyHours of Map<IsoDayOfWeek, OpeningWindow list>

[<RequireQualifiedAccess>]
module WeeklyHours =

    let private overlaps (day: IsoDayOfWeek) (windows: OpeningWindow list) =
        windows
        |> List.pairwise
        |> List.filter (fun (a, b) -> OpeningWindow.endTick a > b.Opens.TickOfDay)
        |> List.map (fun (a, b) -> $"{day}: {OpeningWindow.format a} and {OpeningWindow.format b} overlap")

    /// The week from (day, window) pairs in any order; windows of one day may touch (12:00-14:00 and
    /// 14:00-18:00) but not overlap. Every problem is reported.
    let tryCreate (windows: (IsoDayOfWeek * OpeningWindow) list) : Result<WeeklyHours, string list> =
        let byDay =
            windows
            |> List.groupBy fst
            |> List.map (fun (day, pairs) -> day, pairs |> List.map snd |> List.sortBy _.Opens.TickOfDay)

        let problems = [
            if windows.IsEmpty then
                "at least one opening window is needed"
            for day, _ in byDay do
                if day < IsoDayOfWeek.Monday || day > IsoDayOfWeek.Sunday then
                    $"{int day} is not a day of the week"
            for day, dayWindows in byDay do
                yield! overlaps day dayWindows
        ]

        if problems.IsEmpty then
            Ok(WeeklyHours(Map.ofList byDay))
        else
            Error problems

    /// The windows of one day of the week, earliest first (empty when closed all day).
    let windowsOn (day: IsoDayOfWeek) (WeeklyHours week) =
        week |> Map.tryFind day |> Option.defaultValue []

/// When calls may be placed.
[<NoComparison>]
type Schedule =
    /// Hours are off (`Hours__Enabled=false`): any time is a time to call, as before hours existed.
    | AlwaysOpen
    /// Open in the week's windows, except on the holidays (whole local dates).
    | Weekly of week: WeeklyHours * holidays: Set<LocalDate>

/// Opening hours in one IANA time zone. Local times become instants by the wall-clock rule (`Hours.at`).
[<NoComparison>]
type OpeningHours = {
    Zone: DateTimeZone
    Schedule: Schedule
}

/// The length of the slots a visitor may book with `callAt`: a positive whole number of minutes.
[<Struct>]
type SlotLength = private SlotLength of Duration

[<RequireQualifiedAccess>]
module SlotLength =

    let tryCreate minutes =
        if minutes >= 1 then
            Some(SlotLength(Duration.FromMinutes(int64 minutes)))
        else
            None

    let duration (SlotLength length) = length

/// How fast the calls due at one opening are placed: a positive number of calls per minute.
[<Struct>]
type OpeningRate = private OpeningRate of perMinute: int

[<RequireQualifiedAccess>]
module OpeningRate =

    let tryCreate perMinute =
        if perMinute >= 1 then Some(OpeningRate perMinute) else None

    /// The time between two calls at this rate.
    let spacing (OpeningRate perMinute) =
        Duration.FromMilliseconds(60_000L / int64 perMinute)

/// Opening hours as instants: when calls may be placed, when the next opening is, which slots a day has.
[<RequireQualifiedAccess>]
module Hours =

    /// The wall-clock rule for a local time that a daylight-saving change makes ambiguous or skips: a
    /// window opens (and closes) the first time the wall clock reads its time, so an ambiguous time (the
    /// autumn hour that happens twice) is its earlier instant and a skipped one (the spring gap) is the
    /// first instant after the gap. Local → instant stays monotone, so windows keep their order.
    let private wallClock =
        Resolvers.CreateMappingResolver(Resolvers.ReturnEarlier, Resolvers.ReturnStartOfIntervalAfter)

    /// The instant a local date and time stands for in the hours' zone, by the wall-clock rule.
    let at (hours: OpeningHours) (date: LocalDate) (time: LocalTime) =
        date.At(time).InZone(hours.Zone, wallClock).ToInstant()

    let private startOfDay hours (date: LocalDate) = at hours date LocalTime.Midnight

    let private closing hours (date: LocalDate) (window: OpeningWindow) =
        if window.Closes = LocalTime.Midnight then
            startOfDay hours (date.PlusDays 1)
        else
            at hours date window.Closes

    /// The openings of one local date as instant intervals, earliest first: none on a holiday, the
    /// whole day when hours are off. A window that lies wholly in a spring-forward gap is empty that
    /// day and left out; one across a change is an hour shorter or longer.
    let openingsOn (hours: OpeningHours) (date: LocalDate) : Interval list =
        match hours.Schedule with
        | AlwaysOpen -> [ Interval(startOfDay hours date, startOfDay hours (date.PlusDays 1)) ]
        | Weekly(_, holidays) when holidays.Contains date -> []
        | Weekly(week, _) ->
            WeeklyHours.windowsOn date.DayOfWeek week
            |> List.map (fun window -> Interval(at hours date window.Opens, closing hours date window))
            |> List.filter (fun opening -> opening.Start < opening.End)

    let private localDate hours (instant: Instant) = instant.InZone(hours.Zone).Date

    /// Whether a call may be placed at this instant.
    let isOpen (hours: OpeningHours) (instant: Instant) =
        match hours.Schedule with
        | AlwaysOpen -> true
        | Weekly _ ->
            let date = localDate hours instant

            // A window that closes at 24:00 ends on the next local date; its neighbours are checked too.
            [ date.PlusDays -1; date; date.PlusDays 1 ]
            |> List.exists (fun day -> openingsOn hours day |> List.exists _.Contains(instant))

    /// `now` when open, else the instant the next window opens.
    let nextOpening (hours: OpeningHours) (now: Instant) =
        if isOpen hours now then
            now
        else
            let yesterday = (localDate hours now).PlusDays -1

            // Ends: the week has a window, holidays are finite, and a window is lost to a gap at most
            // twice a year.
            Seq.initInfinite yesterday.PlusDays
            |> Seq.collect (openingsOn hours)
            |> Seq.map _.Start
            |> Seq.find (fun start -> start > now)

    /// The slots of a local date a visitor may book: from each opening's start, one every slot length,
    /// each ending by the time its window closes. Whether one is still ahead is `CallAt.validate`'s call.
    let slots (hours: OpeningHours) (length: SlotLength) (date: LocalDate) : Instant list =
        let length = SlotLength.duration length

        openingsOn hours date
        |> List.collect (fun opening ->
            opening.Start
            |> List.unfold (fun start ->
                if start + length <= opening.End then
                    Some(start, start + length)
                else
                    None))

    /// When each of the calls due at one opening is placed: the first at `opening`, each next one a
    /// rate's spacing later, moved to the next opening if that falls after closing. In the order given.
    let spreadAtOpening (hours: OpeningHours) (rate: OpeningRate) (opening: Instant) (calls: 'call list) =
        let spacing = OpeningRate.spacing rate

        calls
        |> List.mapFold
            (fun earliest call ->
                let placedAt = nextOpening hours earliest
                (call, placedAt), placedAt + spacing)
            opening
        |> fst
