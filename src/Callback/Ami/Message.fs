namespace Callback.Ami

open System
open System.Text

/// One `Key: Value` line of an AMI message, decoded.
[<Struct>]
type Header = { Key: string; Value: string }

/// Where one line lies in its message's bytes: the key is `[Start, KeyEnd)`, the value `[ValueStart, End)`
/// (after the colon and one optional space). A line without a colon is all key, with an empty value.
[<Struct>]
type internal Field = {
    Start: int
    KeyEnd: int
    ValueStart: int
    End: int
}

/// A message Asterisk sent: its own copy of its bytes and where each line lies in them. Keys repeat
/// (`Output`, `ChanVariable`, `Variable`), so it is the ordered list of its lines, never a dictionary.
///
/// A line becomes a string only when it is read. A client skips most of what it receives (every event
/// that is not the answer it waits for) and reads three to six headers of the rest, so decoding each value
/// as it arrives was most of the parser's time; now a message costs three allocations whatever its size.
[<Sealed>]
type Message internal (bytes: byte[], fields: Field[]) =

    member internal _.Bytes = bytes
    member internal _.Fields = fields

    /// How many lines the message has.
    member _.Count = fields.Length

    /// The key of line `i`, decoded.
    member _.Key(i: int) =
        let f = fields[i]
        Encoding.UTF8.GetString(bytes, f.Start, f.KeyEnd - f.Start)

    /// The value of line `i`, decoded.
    member _.Value(i: int) =
        let f = fields[i]

        if f.End = f.ValueStart then
            ""
        else
            Encoding.UTF8.GetString(bytes, f.ValueStart, f.End - f.ValueStart)

    /// Whether the key of line `i` is `key`, compared as AMI does (ASCII, case-insensitive), without
    /// decoding it.
    member _.KeyIs(i: int, key: string) =
        let f = fields[i]
        Ascii.EqualsIgnoreCase(ReadOnlySpan(bytes, f.Start, f.KeyEnd - f.Start), key.AsSpan())

    /// The value of the first line whose key is `key` (ASCII, case-insensitive), or null when there is
    /// none: the C# reader's `Message.tryFind`.
    member m.Get(key: string) : string =
        let mutable i = 0

        while i < fields.Length && not (m.KeyIs(i, key)) do
            i <- i + 1

        if i < fields.Length then m.Value i else null

    /// Every value of the lines whose key is `key`, in order (keys repeat: `Output`, `ChanVariable`).
    member m.GetAll(key: string) : string[] = [|
        for i in 0 .. fields.Length - 1 do
            if m.KeyIs(i, key) then
                m.Value i
    |]

    /// Every line, decoded: for tests and diagnostics. Readers on the hot path use `Message.tryFind`.
    member m.Headers =
        Array.init fields.Length (fun i -> { Key = m.Key i; Value = m.Value i })

    override m.Equals(other: obj) =
        match other with
        | :? Message as o -> m.Headers = o.Headers
        | _ -> false

    override m.GetHashCode() = hash m.Headers

    override m.ToString() =
        m.Headers |> Array.map (fun h -> $"{h.Key}: {h.Value}") |> String.concat "\n"

/// What a message is, decided by its first key: some events (OriginateResponse) also carry `Response:`
/// and our ActionID, and must not be taken for the answer to an action.
type MessageKind =
    | Response
    | Event
    | Unknown

[<RequireQualifiedAccess>]
module Message =

    /// A message with these lines, in order, as Asterisk would have sent them: for tests and fakes.
    let ofHeaders (headers: Header seq) =
        let headers = Array.ofSeq headers
        let mutable length = 0

        let fields =
            headers
            |> Array.map (fun h ->
                let start = length
                let keyEnd = start + Encoding.UTF8.GetByteCount h.Key
                let valueStart = keyEnd + 2
                length <- valueStart + Encoding.UTF8.GetByteCount h.Value + 2

                {
                    Start = start
                    KeyEnd = keyEnd
                    ValueStart = valueStart
                    End = length - 2
                })

        let text =
            headers |> Array.map (fun h -> $"{h.Key}: {h.Value}\r\n") |> String.concat ""

        Message(Encoding.UTF8.GetBytes text, fields)

    /// The value of the first header named `key` (AMI keys are case-insensitive).
    let tryFind (key: string) (message: Message) = Option.ofObj (message.Get key)

    /// Every value of the headers named `key`, in order.
    let findAll (key: string) (message: Message) = message.GetAll key

    let kind (message: Message) =
        if message.Count = 0 then Unknown
        elif message.KeyIs(0, "Event") then Event
        elif message.KeyIs(0, "Response") then Response
        else Unknown

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
