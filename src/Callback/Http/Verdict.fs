namespace Callback.Http

open Microsoft.AspNetCore.Http
open Callback

/// Why `POST /callback` refused a request, for the metrics: what the status code alone cannot tell
/// (a 422 is `invalid` or `policy`, a 503 is `busy` or `shutting-down`).
type RefusalReason =
    | Invalid
    | RateLimited
    | Origin
    | Policy
    | Busy
    | ShuttingDown
    /// A call for later that could not be kept (503).
    | Unschedulable

[<RequireQualifiedAccess>]
module RefusalReason =
    /// The `reason` label of `callback_refusals_total`.
    let label reason =
        match reason with
        | Invalid -> "invalid"
        | RateLimited -> "rate-limited"
        | Origin -> "origin"
        | Policy -> "policy"
        | Busy -> "busy"
        | ShuttingDown -> "shutting-down"
        | Unschedulable -> "unschedulable"

/// What became of one request to `POST /callback`: refused (and why), or placed (and its outcome). A
/// handler notes it in `HttpContext.Items`; the metrics read it once, when the request ends.
type Verdict =
    | Refused of RefusalReason
    | Placed of CallbackOutcome
    /// Kept for later (202): nothing reached Asterisk yet.
    | Kept

[<RequireQualifiedAccess>]
module Verdict =
    let private key = "Callback.Verdict"

    /// Notes that this request is refused for `reason` (a handler that refuses calls this, then answers).
    let refused (reason: RefusalReason) (ctx: HttpContext) = ctx.Items[key] <- Refused reason

    /// Notes that this request ran the AMI pipeline, with this outcome.
    let placed (outcome: CallbackOutcome) (ctx: HttpContext) = ctx.Items[key] <- Placed outcome

    /// Notes that this request was kept for later.
    let kept (ctx: HttpContext) = ctx.Items[key] <- Kept

    /// What a handler noted, if anything.
    let ofContext (ctx: HttpContext) : Verdict option =
        match ctx.Items.TryGetValue key with
        | true, (:? Verdict as v) -> Some v
        | _ -> None
