namespace Callback.Webhooks

open System
open Microsoft.Extensions.Configuration
open FsToolkit.ErrorHandling

/// One receiver of the webhooks: an absolute http or https URL without user or password.
[<Struct>]
type WebhookEndpoint = private WebhookEndpoint of Uri

[<RequireQualifiedAccess>]
module WebhookEndpoint =

    /// The endpoint from its URL; a message says what is wrong, never the URL (its query may hold a token).
    let tryParse (text: string) : Result<WebhookEndpoint, string> =
        match Uri.TryCreate(text, UriKind.Absolute) with
        | true, uri when uri.Scheme = Uri.UriSchemeHttp || uri.Scheme = Uri.UriSchemeHttps ->
            if String.IsNullOrEmpty uri.UserInfo then
                Ok(WebhookEndpoint uri)
            else
                Error "must not hold a user or password (the receiver checks the signature instead)"
        | true, _ -> Error "must be an http or https URL"
        | _ -> Error "must be an absolute URL such as https://crm.example.com/hooks/callback"

    let uri (WebhookEndpoint uri) = uri

    /// How the outbox names the endpoint of a row: the whole URL.
    let key (WebhookEndpoint uri) = uri.AbsoluteUri

    /// What a log line or a metric may say of an endpoint: scheme, host and port only, since the path or
    /// the query may carry the receiver's token.
    let label (WebhookEndpoint uri) = uri.GetLeftPart UriPartial.Authority

/// Where the call events are posted and how (`Webhooks__…`); absent when no `Webhooks__Url` is set.
[<NoEquality; NoComparison>]
type WebhookSettings = {
    /// Every event goes to each of them, each endpoint with its own retries.
    Endpoints: WebhookEndpoint list
    /// Each delivery is signed with every one of them (a rollover signs with the old and the new).
    Secrets: WebhookSecret list
    /// How long one delivery may take, from connecting to the answer's status.
    Timeout: TimeSpan
    /// Deliveries of one event to one endpoint at most, the first included, before it is given up.
    MaxAttempts: int
}

[<RequireQualifiedAccess>]
module WebhookSettings =

    /// The Standard Webhooks example schedule has ten attempts: more would only repeat its last delay.
    [<Literal>]
    let MaxAttemptsCap = 10

    let private text (config: IConfiguration) (key: string) =
        match config[key] with
        | null
        | "" -> None
        | v -> Some v

    /// `Webhooks__Url` alone, or `Webhooks__Url__0`, `__1`…, in their order; not both.
    let private endpoints (config: IConfiguration) =
        let listed =
            config.GetSection("Webhooks:Url").GetChildren()
            |> Seq.map (fun child -> $"Webhooks__Url__{child.Key}", child.Value)
            |> Seq.filter (fun (_, value) -> not (String.IsNullOrEmpty value))
            |> List.ofSeq

        let parse (name, value) =
            WebhookEndpoint.tryParse value |> Result.mapError (fun why -> $"{name} {why}.")

        match text config "Webhooks:Url", listed with
        | Some _, _ :: _ -> Error [ "Set either Webhooks__Url or Webhooks__Url__0, __1…, not both." ]
        | Some one, [] ->
            parse ("Webhooks__Url", one)
            |> Result.map List.singleton
            |> Result.mapError List.singleton
        | None, many -> many |> List.map parse |> List.sequenceResultA

    /// `Webhooks__Secret`: one `whsec_…`, or several separated by spaces while the receiver rolls over.
    let private secrets (config: IConfiguration) (required: bool) =
        match text config "Webhooks:Secret" with
        | None when required -> Error [ "Webhooks__Secret is required when Webhooks__Url is set." ]
        | None -> Ok []
        | Some value ->
            let parts =
                value.Split(' ', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries)
                |> List.ofArray

            if List.isEmpty parts && required then
                Error [ "Webhooks__Secret is required when Webhooks__Url is set." ]
            else
                parts
                |> List.map (
                    WebhookSecret.tryParse
                    >> Result.mapError (fun why -> $"Webhooks__Secret {why}.")
                )
                |> List.sequenceResultA

    let private number (config: IConfiguration) (key: string) fallback low high =
        let name = key.Replace(":", "__")

        match text config key with
        | None -> Ok fallback
        | Some v ->
            match Int32.TryParse v with
            | true, n when n >= low && n <= high -> Ok n
            | _ -> Error [ $"{name} must be a whole number from {low} to {high} (got '{v}')." ]

    /// Reads the webhook settings, every problem at once (a secret or a timeout given without a URL is
    /// checked all the same). None when no URL is set: no webhook is then written or sent.
    let read (config: IConfiguration) : Result<WebhookSettings option, string list> =
        let endpoints = endpoints config

        let anyEndpoint =
            match endpoints with
            | Ok(_ :: _) -> true
            | Ok [] -> false
            | Error _ -> true

        let checks =
            validation {
                let! endpoints = endpoints
                and! secrets = secrets config anyEndpoint
                and! timeout = number config "Webhooks:Timeout" 15000 1000 120000

                and! maxAttempts =
                    number config "Webhooks:MaxAttempts" MaxAttemptsCap 1 MaxAttemptsCap

                return endpoints, secrets, timeout, maxAttempts
            }

        checks
        |> Result.map (fun (endpoints, secrets, timeout, maxAttempts) ->
            match endpoints with
            | [] -> None
            | _ ->
                Some {
                    Endpoints = endpoints
                    Secrets = secrets
                    Timeout = TimeSpan.FromMilliseconds(float timeout)
                    MaxAttempts = maxAttempts
                })
