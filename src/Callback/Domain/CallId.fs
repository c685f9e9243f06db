namespace Callback.Domain

open System
open System.Security.Cryptography

/// A call's identity and its only capability: whoever holds it may read that call's status. 128 bits from
/// the system's CSPRNG as 32 lower-case hex digits, so it can be neither guessed nor enumerated, and it says
/// nothing about when it was made (a version-7 GUID has 74 random bits after a millisecond clock).
[<Struct>]
type CallId = private CallId of string

/// One dial of a call: 1 for the first Originate, 2 for the retry after it, and so on.
[<Struct>]
type Attempt = private Attempt of int

[<RequireQualifiedAccess>]
module CallId =

    /// How many random bytes a call id carries (128 bits).
    [<Literal>]
    let RandomBytes = 16

    /// A fresh, unguessable call id.
    let create () =
        CallId(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes RandomBytes))

    let private isLowerHex (c: char) =
        Char.IsAsciiDigit c || (c >= 'a' && c <= 'f')

    /// A call id as `create` writes it (32 lower-case hex digits); anything else is not one of ours.
    let tryParse (text: string) =
        if
            not (isNull text)
            && text.Length = 2 * RandomBytes
            && String.forall isLowerHex text
        then
            Some(CallId text)
        else
            None

    let value (CallId id) = id

    /// The first 8 hex digits (32 bits): enough to find a call's lines in the log, far too few to read its
    /// status, so the log never holds the capability itself.
    let short (CallId id) = id.Substring(0, 8)

[<RequireQualifiedAccess>]
module Attempt =

    let first = Attempt 1

    let next (Attempt n) = Attempt(n + 1)

    let tryCreate n =
        if n >= 1 then Some(Attempt n) else None

    let number (Attempt n) = n

/// The Uniqueid Asterisk gives the first channel of one attempt (Originate's `ChannelId`), which every other
/// leg carries as its Linkedid: `<callId>-<attempt>`, at most 149 characters of `[A-Za-z0-9._-]`.
[<RequireQualifiedAccess>]
module ChannelId =

    let format callId attempt =
        $"{CallId.value callId}-{Attempt.number attempt}"

    /// The call and attempt a Uniqueid or Linkedid names, or None for a channel that is not ours. A Local
    /// channel's second half (`<ChannelId>;2`) names the same attempt.
    let tryParse (uniqueId: string) =
        if isNull uniqueId then
            None
        else
            let id =
                match uniqueId.IndexOf ';' with
                | -1 -> uniqueId
                | semicolon -> uniqueId.Substring(0, semicolon)

            match id.LastIndexOf '-' with
            | -1 -> None
            | dash ->
                match CallId.tryParse (id.Substring(0, dash)), Int32.TryParse(id.AsSpan(dash + 1)) with
                | Some callId, (true, n) when n >= 1 && id.Substring(dash + 1) = string n -> Some(callId, Attempt n)
                | _ -> None
