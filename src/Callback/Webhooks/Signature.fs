namespace Callback.Webhooks

open System
open System.Security.Cryptography
open System.Text

/// A webhook endpoint's signing secret, `whsec_` then the base64 of 24 to 64 bytes (Standard Webhooks).
/// Its text never leaves it: `ToString` shows only the prefix, so a secret cannot end up in a log line.
[<NoEquality; NoComparison>]
type WebhookSecret =
    private
    | WebhookSecret of key: byte array

    override _.ToString() = "whsec_…"

[<RequireQualifiedAccess>]
module WebhookSecret =

    [<Literal>]
    let Prefix = "whsec_"

    /// The key's length in bytes, as the specification bounds it.
    [<Literal>]
    let MinBytes = 24

    [<Literal>]
    let MaxBytes = 64

    let private decode (base64: string) =
        let buffer = Array.zeroCreate<byte>(base64.Length * 3 / 4 + 3)

        match Convert.TryFromBase64String(base64, Span buffer) with
        | true, written -> Some(Array.sub buffer 0 written)
        | _ -> None

    /// The secret from its text; a message says what is wrong, never the text.
    let tryParse (text: string) : Result<WebhookSecret, string> =
        if isNull text || not (text.StartsWith(Prefix, StringComparison.Ordinal)) then
            Error $"must start with {Prefix}"
        else
            match decode (text.Substring Prefix.Length) with
            | None -> Error $"must be {Prefix} then base64"
            | Some key when key.Length < MinBytes || key.Length > MaxBytes ->
                Error $"must hold {MinBytes} to {MaxBytes} bytes after {Prefix} (it holds {key.Length})"
            | Some key -> Ok(WebhookSecret key)

    /// A fresh secret of 32 bytes from the system's CSPRNG, as text to give the receiver.
    let generate () =
        Prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes 32)

    let internal key (WebhookSecret key) = key

/// A delivery's `webhook-id`: the same on every retry of one event, so the receiver can drop duplicates.
/// 1 to 64 of `[A-Za-z0-9_-]`, which needs no escaping in a header and holds no `.` of the signed content.
[<Struct>]
type MessageId = private MessageId of string

[<RequireQualifiedAccess>]
module MessageId =

    [<Literal>]
    let MaxLength = 64

    let private allowed (c: char) =
        Char.IsAsciiLetterOrDigit c || c = '_' || c = '-'

    let tryCreate (text: string) =
        if
            not (String.IsNullOrEmpty text)
            && text.Length <= MaxLength
            && String.forall allowed text
        then
            Some(MessageId text)
        else
            None

    let value (MessageId id) = id

/// Standard Webhooks signing (standardwebhooks.com, v1): an HMAC-SHA256 over `{id}.{timestamp}.{body}`,
/// the exact bytes sent, one `v1,<base64>` per secret so a receiver can roll its secret over.
[<RequireQualifiedAccess>]
module Signature =

    [<Literal>]
    let IdHeader = "webhook-id"

    [<Literal>]
    let TimestampHeader = "webhook-timestamp"

    [<Literal>]
    let SignatureHeader = "webhook-signature"

    /// `webhook-timestamp`: whole seconds since the Unix epoch.
    let timestamp (sentAt: DateTimeOffset) = string (sentAt.ToUnixTimeSeconds())

    let private signOne (id: MessageId) (timestamp: string) (body: ReadOnlyMemory<byte>) (secret: WebhookSecret) =
        use hmac =
            IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, WebhookSecret.key secret)

        hmac.AppendData(Encoding.UTF8.GetBytes $"{MessageId.value id}.{timestamp}.")
        hmac.AppendData body.Span
        "v1," + Convert.ToBase64String(hmac.GetHashAndReset())

    /// `webhook-signature` for a body sent at `sentAt`: each secret's signature, separated by spaces.
    let sign (secrets: WebhookSecret list) (id: MessageId) (sentAt: DateTimeOffset) (body: ReadOnlyMemory<byte>) =
        let timestamp = timestamp sentAt

        secrets |> List.map (signOne id timestamp body) |> String.concat " "

    /// The three headers of one delivery, names as the specification writes them.
    let headers (secrets: WebhookSecret list) (id: MessageId) (sentAt: DateTimeOffset) (body: ReadOnlyMemory<byte>) = [
        IdHeader, MessageId.value id
        TimestampHeader, timestamp sentAt
        SignatureHeader, sign secrets id sentAt body
    ]
