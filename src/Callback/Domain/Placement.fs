namespace Callback.Domain

open NodaTime

/// When a valid request's call is placed: the decision of `Placement.decide`, before any IO.
type Placement =
    /// Open now and no `callAt` (or one that is already due): ring now, as before hours existed.
    | Now
    /// At the visitor's `callAt`, exactly: a booked time is kept to the second, not spread.
    | At of callAt: Instant
    /// Closed now: at this next opening, spread behind the calls already waiting for it (`spread`).
    | AtOpening of opening: Instant

/// A call held for later: the id its status is read by, and when it will be placed.
type ScheduledCall = {
    CallId: CallId
    ScheduledFor: Instant
}

[<RequireQualifiedAccess>]
module Placement =

    /// Now, a booked `callAt`, or the next opening; a `callAt` that is in the past, too far ahead or
    /// outside opening hours is refused with its reason (`CallAt.validate`), whatever the hours are now.
    let decide (hours: OpeningHours) (now: Instant) (callAt: Instant option) : Result<Placement, CallAtError> =
        match callAt with
        | Some callAt ->
            CallAt.validate hours now callAt
            |> Result.map (fun callAt -> if callAt <= now then Now else At callAt)
        | None when Hours.isOpen hours now -> Ok Now
        | None -> Ok(AtOpening(Hours.nextOpening hours now))

    /// The instant of the call that comes after `waiting` calls already spread from `opening`: one every
    /// rate's spacing from the opening, so the calls that waited overnight do not all ring at 09:00:00; a
    /// call that would fall after closing moves on to the next opening (`Hours.spreadAtOpening`).
    let spread (hours: OpeningHours) (rate: OpeningRate) (opening: Instant) (waiting: int) : Instant =
        Hours.spreadAtOpening hours rate opening (List.replicate (max 0 waiting + 1) ())
        |> List.last
        |> snd
