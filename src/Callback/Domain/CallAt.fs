namespace Callback.Domain

open NodaTime
open NodaTime.Text

/// Why a visitor's `callAt` cannot be booked.
type CallAtError =
    | InThePast
    | TooFarAhead of latest: Instant
    | OutsideOpeningHours of nextOpening: Instant

/// A time a visitor asks to be called at (`callAt`), checked against the clock and the opening hours.
[<RequireQualifiedAccess>]
module CallAt =

    /// The form field a visitor books a time with.
    [<Literal>]
    let Field = "callAt"

    /// How far ahead a call may be booked, as 14 × 24 hours.
    [<Literal>]
    let MaxDaysAhead = 14

    let private horizon = Duration.FromDays MaxDaysAhead

    /// An instant in ISO 8601 (RFC 3339) with its offset in the hours' zone, e.g. `2026-12-03T09:00:00+01:00`.
    let format (hours: OpeningHours) (instant: Instant) =
        OffsetDateTimePattern.Rfc3339.Format(instant.InZone(hours.Zone).ToOffsetDateTime())

    /// `callAt` as a visitor's page sends it: ISO 8601 (RFC 3339) with seconds and an offset or `Z`, e.g.
    /// `2026-12-07T14:30:00+01:00`. A time without an offset is refused, not guessed: it names no instant.
    let tryParse (text: string) : Result<Instant, string> =
        let parsed =
            if isNull text then
                None
            else
                // A `+` sent unescaped in a URL-encoded form (`curl -d callAt=…+01:00`) arrives as a space;
                // RFC 3339 has no space, so reading it back as `+` can only mend that.
                let result = OffsetDateTimePattern.Rfc3339.Parse(text.Trim().Replace(' ', '+'))

                if result.Success then
                    Some(result.Value.ToInstant())
                else
                    None

        parsed
        |> Option.map Ok
        |> Option.defaultValue (Error "callAt must be a date and time with its offset, e.g. 2026-12-07T14:30:00+01:00.")

    /// `callAt` when it is now or later, at most 14 days ahead, and inside opening hours; else the first
    /// of those it fails, in that order.
    let validate (hours: OpeningHours) (now: Instant) (callAt: Instant) : Result<Instant, CallAtError> =
        if callAt < now then
            Error InThePast
        elif callAt - now > horizon then
            Error(TooFarAhead(now + horizon))
        elif not (Hours.isOpen hours callAt) then
            Error(OutsideOpeningHours(Hours.nextOpening hours callAt))
        else
            Ok callAt

    /// A message for the visitor's `callAt` field: what to change, never the value they sent.
    let message (hours: OpeningHours) (error: CallAtError) =
        match error with
        | InThePast -> "callAt is in the past: choose a time from now on."
        | TooFarAhead latest ->
            $"callAt is more than {MaxDaysAhead} days ahead: choose a time until {format hours latest}."
        | OutsideOpeningHours next ->
            $"callAt is outside opening hours: the next opening after it is {format hours next}."
