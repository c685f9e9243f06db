namespace Callback.Calls

open System

/// How a call ended, decided from the hangup causes and dial statuses of its legs, never from the
/// `OriginateResponse` Reason alone (PJSIP busy and rejected calls both give Reason 0).
[<RequireQualifiedAccess>]
module Outcome =

    let private legs (call: Call) visitor =
        call.Legs
        |> Map.toList
        |> List.filter (fun (id, leg) -> Call.isVisitorLeg call id leg = visitor)
        |> List.map snd

    /// The most telling cause among `legs`: a known one over cause 0 "Unknown" (a Local channel's `;1`
    /// half hangs up with 0 while its `;2` half carries the real cause), then one with a SIP code (the
    /// phone's own channel), then the `;2` half, then the first.
    let private causeOf (legs: Leg list) =
        legs
        |> List.choose (fun leg -> leg.Cause |> Option.map (fun cause -> leg, cause))
        |> List.sortBy (fun (leg, cause) ->
            (if cause.Code = 0 then 1 else 0),
            (if cause.SipCode.IsSome then 0 else 1),
            (if leg.Channel.EndsWith ";2" then 0 else 1),
            leg.HungUpAt)
        |> List.tryHead
        |> Option.map snd

    let private dialStatusOf (legs: Leg list) =
        legs |> List.choose _.DialStatus |> List.tryLast

    /// A visitor who never answered: by cause first (the most precise: a 603 is cause 21 but DialEnd
    /// NOANSWER), then by dial status, then by the OriginateResponse. Cause 18/19 is a timeout: `NoAnswer` if
    /// the phone rang, else `Unreachable` (an address where nothing answers is retried until the timeout).
    let private unanswered (call: Call) =
        let visitor = legs call true
        let cause = causeOf visitor
        let rang = call.History |> List.exists (fun t -> t.State = State.Ringing)
        let timedOut = if rang then NoAnswer else Unreachable

        let byDialStatus () =
            match dialStatusOf visitor with
            | Some "BUSY" -> Busy
            | Some "CONGESTION" -> Congestion
            | Some "CHANUNAVAIL" -> Unreachable
            | Some "NOANSWER" -> timedOut
            | _ when List.isEmpty visitor && call.OriginateFailed -> Unreachable
            | _ -> Error

        let outcome =
            match cause |> Option.map _.Code with
            | Some 17 -> Busy
            | Some 21 -> Rejected
            | Some(18 | 19) -> timedOut
            | Some(27 | 34 | 38 | 41 | 42 | 44 | 102) -> Congestion
            | Some(1 | 2 | 3 | 20 | 22 | 28) -> Unreachable
            | Some 0
            | None -> byDialStatus ()
            | Some _ -> Error

        Failed(outcome, cause)

    /// The first hangup at or after the bridge, of any leg: where talk time stops.
    let private talk (call: Call) (bridgedAt: DateTimeOffset) (at: DateTimeOffset) =
        let ended =
            call.Legs
            |> Map.toSeq
            |> Seq.choose (fun (_, leg) -> leg.HungUpAt)
            |> Seq.filter (fun t -> t >= bridgedAt)
            |> Seq.fold min at

        ended - bridgedAt

    let private firstHangup (legs: Leg list) =
        legs |> List.choose _.HungUpAt |> List.sort |> List.tryHead

    /// A visitor who answered: bridged is `Completed`; otherwise the owner's dial status says why not. An
    /// owner who answered but hung up before the bridge (during the whisper) did not take the call either:
    /// `OwnerNoAnswer`. Without a dial status (no Dial yet, or CANCEL when the visitor hung up during the
    /// ringing) the visitor left.
    let private answered (call: Call) (at: DateTimeOffset) =
        let visitor, owner = legs call true, legs call false

        match call.BridgedAt, dialStatusOf owner with
        | Some bridgedAt, _ -> Ended(Completed(talk call bridgedAt at), causeOf visitor)
        | None, Some("BUSY" | "CONGESTION" | "CHANUNAVAIL") -> Ended(OwnerBusy, causeOf owner)
        | None, Some "NOANSWER" -> Ended(OwnerNoAnswer, causeOf owner)
        | None, Some "ANSWER" when firstHangup owner < firstHangup visitor -> Ended(OwnerNoAnswer, causeOf owner)
        | None, _ -> Ended(VisitorHungUp, causeOf visitor)

    /// The final status of a call whose channels are all gone, at `at`.
    let classify (call: Call) (at: DateTimeOffset) =
        match call.Status with
        | Live progress when Call.rank progress >= Call.rank Answered -> answered call at
        | Live _ -> unanswered call
        | final -> final
