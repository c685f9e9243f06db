namespace Callback.Http

open System
open System.Net
open System.Net.Sockets
open Microsoft.AspNetCore.Http
open Callback.Callbacks
open Callback.Domain

/// The steps of `POST /callback` that protect it from abuse. Each refuses in the contract (five false
/// booleans and `errors`), notes why for the metrics, and sends nothing to Asterisk.
[<RequireQualifiedAccess>]
module Protection =

    /// Answers and ends the request: the rest of the chain (`next`) never runs, as Giraffe's `earlyReturn`.
    let private refuseFor reason code field (message: string) : HttpHandler =
        fun _ ctx ->
            Verdict.refused reason ctx
            refuse code [ { Field = field; Message = message } ] finish ctx

    /// The site a browser says the request comes from: `Origin`, else `Referer`'s origin. `Ok None` when
    /// neither is sent; `Error ()` when one is sent but names no site (`Origin: null`, a malformed URL).
    let private claimedOrigin (ctx: HttpContext) : Result<SiteOrigin option, unit> =
        let header (name: string) =
            match string ctx.Request.Headers[name] with
            | "" -> None
            | v -> Some v

        match header "Origin" |> Option.orElse (header "Referer") with
        | None -> Ok None
        | Some claimed ->
            match SiteOrigin.tryParse claimed with
            | Some origin -> Ok(Some origin)
            | None -> Error()

    /// With `allowed` origins configured, 403 for a request whose `Origin` (else `Referer`) is another site,
    /// before its body is read. A request with neither header is let through: every browser sends `Origin`
    /// with a cross-site POST, so only a non-browser client (curl, a server-side form) omits both, and such a
    /// client could send any header it likes anyway.
    let checkOrigin (allowed: SiteOrigin list) : HttpHandler =
        let refused =
            refuseFor Origin 403 "origin" "Pages of this site may not request callbacks."

        fun next ctx ->
            if List.isEmpty allowed then
                next ctx
            else
                match claimedOrigin ctx with
                | Ok None -> next ctx
                | Ok(Some origin) when List.contains origin allowed -> next ctx
                | _ -> refused next ctx

    /// The key a client's requests are counted under: its address as the trusted proxy reports it; for
    /// IPv6 its /64, which one subscriber usually holds whole.
    let clientKey (address: IPAddress) =
        match address with
        | null -> "unknown"
        | a when a.IsIPv4MappedToIPv6 -> string (a.MapToIPv4())
        | a when a.AddressFamily = AddressFamily.InterNetworkV6 ->
            let bytes = a.GetAddressBytes()
            Array.fill bytes 8 8 0uy
            $"{IPAddress bytes}/64"
        | a -> string a

    let private tooMany (retryAfter: TimeSpan option) field message : HttpHandler =
        fun next ctx ->
            retryAfter
            |> Option.iter (fun after ->
                ctx.Response.Headers.RetryAfter <- string (max 1 (int (ceil after.TotalSeconds))))

            refuseFor RateLimited 429 field message next ctx

    /// 429 with `Retry-After` once the client's requests of the minute are used.
    let limitClient (limits: CallbackLimits) : HttpHandler =
        fun next ctx ->
            match limits.ForClient(clientKey ctx.Connection.RemoteIpAddress) with
            | Allowed -> next ctx
            | Limited(_, after) -> tooMany after "request" "Too many callback requests; try again later." next ctx

    /// After validation: 429 with `Retry-After` when this number was called too recently or too often today,
    /// or when the sidecar placed its most calls of the minute.
    let limitCall (limits: CallbackLimits) (next: CallbackRequest -> HttpHandler) (request: CallbackRequest) =
        match limits.ForCall request.PhoneNumber with
        | Allowed -> next request
        | Limited(PerNumber, after) ->
            tooMany after CallbackRequest.PhoneNumberField "This number was called recently; try again later."
        | Limited(_, after) -> tooMany after "request" "Too many callbacks right now; try again in a minute."

    /// 503 once shutdown has begun; otherwise counts the callback in flight until its answer is written, so
    /// shutdown waits for it.
    let whileAccepting (inFlight: CallbacksInFlight) : HttpHandler =
        let refused =
            refuseFor ShuttingDown 503 "request" "The service is restarting; try again in a minute."

        fun next ctx ->
            if inFlight.TryEnter() then
                task {
                    try
                        return! next ctx
                    finally
                        inFlight.Leave()
                }
            else
                refused next ctx
