namespace Callback.Ami

open System
open System.Text

/// One `Key: Value` line of an AMI message.
[<Struct>]
type Header = { Key: string; Value: string }

/// A message Asterisk sent. Keys repeat (`Output`, `ChanVariable`, `Variable`), so it is the ordered list
/// of its lines, never a dictionary.
type Message = { Headers: Header[] }

/// What a message is, decided by its first key: some events (OriginateResponse) also carry `Response:`
/// and our ActionID, and must not be taken for the answer to an action.
type MessageKind =
    | Response
    | Event
    | Unknown

[<RequireQualifiedAccess>]
module Message =

    /// The value of the first header named `key` (AMI keys are case-insensitive).
    let tryFind (key: string) (message: Message) =
        message.Headers
        |> Array.tryFind (fun h -> String.Equals(h.Key, key, StringComparison.OrdinalIgnoreCase))
        |> Option.map _.Value

    /// Every value of the headers named `key`, in order.
    let findAll (key: string) (message: Message) =
        message.Headers
        |> Array.filter (fun h -> String.Equals(h.Key, key, StringComparison.OrdinalIgnoreCase))
        |> Array.map _.Value

    let kind (message: Message) =
        if message.Headers.Length = 0 then
            Unknown
        else
            match message.Headers[0].Key with
            | k when String.Equals(k, "Event", StringComparison.OrdinalIgnoreCase) -> Event
            | k when String.Equals(k, "Response", StringComparison.OrdinalIgnoreCase) -> Response
            | _ -> Unknown

    let actionId = tryFind "ActionID"

/// An action we send: its name, the ActionID its response will carry, and its other headers in order.
type Action = {
    Name: string
    ActionId: string
    Headers: (string * string) list
}

/// Why an action cannot be put on the wire. Only the key is named: values may be secrets.
type EncodeError =
    | ForbiddenCharacter of key: string
    | InvalidKey of key: string
    | LineTooLong of key: string
    | TooManyLines of count: int

/// The bytes of an action that passed every check. A connection writes nothing else, so CR, LF or NUL
/// smuggled into a value can never become a second header or a second action.
type EncodedAction =
    private
    | EncodedAction of byte[]

    member this.Bytes =
        let (EncodedAction bytes) = this
        ReadOnlyMemory bytes

[<RequireQualifiedAccess>]
module Action =

    /// Asterisk refuses a line of 1024 bytes or more ("line too long"); counted with its CRLF.
    [<Literal>]
    let MaxLineBytes = 1024

    /// Asterisk refuses an action of more than 128 lines ("Too many lines in message").
    [<Literal>]
    let MaxLines = 128

    let private hasForbidden (s: string) =
        s.AsSpan().IndexOfAny("\r\n\000".AsSpan()) >= 0

    let private checkLine (key: string, value: string) =
        if String.IsNullOrEmpty key then
            Error(InvalidKey "")
        elif hasForbidden key || isNull value || hasForbidden value then
            Error(ForbiddenCharacter key)
        elif key.Contains ':' || key.Trim() <> key then
            Error(InvalidKey key)
        elif
            Encoding.UTF8.GetByteCount key + Encoding.UTF8.GetByteCount value + 4
            >= MaxLineBytes
        then
            Error(LineTooLong key)
        else
            Ok(key, value)

    /// The wire form: `Action`, `ActionID`, the other headers, each line ending CRLF, then a blank line.
    let encode (action: Action) : Result<EncodedAction, EncodeError> =
        let lines =
            ("Action", action.Name) :: ("ActionID", action.ActionId) :: action.Headers

        if List.length lines > MaxLines then
            Error(TooManyLines(List.length lines))
        else
            let folder (acc: Result<StringBuilder, EncodeError>) line =
                acc
                |> Result.bind (fun sb ->
                    checkLine line
                    |> Result.map (fun (k, v) -> sb.Append(k).Append(": ").Append(v).Append("\r\n")))

            lines
            |> List.fold folder (Ok(StringBuilder()))
            |> Result.map (fun sb -> sb.Append("\r\n").ToString() |> Encoding.UTF8.GetBytes |> EncodedAction)
