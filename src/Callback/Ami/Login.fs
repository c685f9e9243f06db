namespace Callback.Ami

open System
open System.Security.Cryptography
open System.Text

/// Which events a session asks for on Login (`Events:`): none, all, or a list of classes such as
/// `call,system`. Asterisk also filters by the user's `read=` classes; this narrows it further.
[<Sealed>]
type EventMask private (value: string) =
    static let isClass (c: string) =
        not (String.IsNullOrEmpty c) && c |> Seq.forall Char.IsAsciiLetterLower

    /// `Events: off`: a short-lived session that only waits for its own answers.
    static member Off = EventMask "off"

    /// `Events: on`: every class the manager user may read.
    static member On = EventMask "on"

    /// `Events: call,system,…`: only these classes (lower-case letters, as in manager.conf).
    static member Of([<ParamArray>] classes: string[]) =
        if isNull classes || classes.Length = 0 then
            invalidArg (nameof classes) "name at least one event class, or use EventMask.Off"

        match classes |> Array.tryFind (isClass >> not) with
        | Some bad -> invalidArg (nameof classes) $"'{bad}' is not an AMI event class"
        | None -> EventMask(String.Join(",", classes))

    /// The `Events:` header's value.
    member _.Value = value
    override _.ToString() = value

/// The actions a long-lived session sends, in AMI's own words.
[<RequireQualifiedAccess>]
module SessionActions =

    let private action name headers = {
        Name = name
        ActionId = Actions.newActionId ()
        Headers = headers
    }

    /// `Action: Challenge` with `AuthType: MD5`: Asterisk answers a random `Challenge:` for this session.
    let challenge () =
        action "Challenge" [ "AuthType", "MD5" ]

    /// The Login key: the lower-case hex MD5 of the challenge followed by the secret, as manager.c computes.
    let md5Key (challenge: string) (secret: Secret) =
        MD5.HashData(Encoding.UTF8.GetBytes(challenge + secret.Reveal()))
        |> Convert.ToHexStringLower

    /// Login with the secret itself: only over TLS.
    let plainLogin (username: string) (secret: Secret) (events: EventMask) =
        action "Login" [ "Username", username; "Secret", secret.Reveal(); "Events", events.Value ]

    /// Login that proves the secret without sending it (`AuthType: MD5` and `Key:`).
    let md5Login (username: string) (key: string) (events: EventMask) =
        action "Login" [ "AuthType", "MD5"; "Username", username; "Key", key; "Events", events.Value ]

    let ping () = action "Ping" []

    /// A CLI command; Asterisk 14+ answers `Response: Success` with one `Output:` line per line of output.
    let command (text: string) = action "Command" [ "Command", text ]

    /// An action from its name and headers in order, for callers that build them as pairs (C#).
    let ofPairs (name: string) (headers: Collections.Generic.KeyValuePair<string, string> seq) =
        action name [
            if not (isNull headers) then
                for h in headers -> h.Key, h.Value
        ]
