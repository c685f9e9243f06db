namespace Callback.Ami

open System.Threading
open System.Threading.Tasks

/// The AMI password. It prints as `***`, so a log line, an exception or a debugger view cannot leak it.
[<Sealed>]
type Secret(value: string) =
    /// The clear text, for the one place that needs it: the Login action.
    member _.Reveal() = value
    override _.ToString() = "***"

/// Why an action got no usable Response.
type ActionError =
    /// The action could not be encoded; nothing was sent.
    | Unencodable of EncodeError
    /// `Response: Error`, with Asterisk's `Message:` text.
    | Rejected of message: string
    /// A Response that is neither Error nor the one that means success (`Failure`, `Follows`, garbage,
    /// none at all), with Asterisk's words: not knowing what happened is not success.
    | Unexpected of response: string * message: string
    /// No Response with our ActionID before the deadline.
    | NoResponse
    | LinkFailed of LinkError

[<RequireQualifiedAccess>]
module ActionError =
    /// For the log: what went wrong in words. An unencodable action names only the key.
    let describe error =
        match error with
        | Unencodable(ForbiddenCharacter key) -> $"not sent: CR, LF or NUL in {key}"
        | Unencodable(InvalidKey key) -> $"not sent: invalid key '{key}'"
        | Unencodable(LineTooLong key) -> $"not sent: the {key} line is too long"
        | Unencodable(TooManyLines count) -> $"not sent: {count} lines"
        | Rejected message -> $"Asterisk answered Error: {message}"
        | Unexpected("", message) -> $"Asterisk's answer has no Response line: {message}"
        | Unexpected(response, message) -> $"Asterisk answered '{response}' instead of Success: {message}"
        | NoResponse -> "no response before the deadline"
        | LinkFailed link -> LinkError.describe link

/// The actions this program sends, in AMI's own words.
[<RequireQualifiedAccess>]
module Actions =

    /// A fresh ActionID: a version-7 GUID, unique across threads, processes and restarts.
    let newActionId () =
        System.Guid.CreateVersion7().ToString "N"

    /// Login for a short-lived session: `Events: off`, so no event can delay the responses we wait for.
    let login (username: string) (secret: Secret) = {
        Name = "Login"
        ActionId = newActionId ()
        Headers = [ "Username", username; "Secret", secret.Reveal(); "Events", "off" ]
    }

    let logoff () = {
        Name = "Logoff"
        ActionId = newActionId ()
        Headers = []
    }

/// Sends actions on an open connection and matches their responses by ActionID.
[<RequireQualifiedAccess>]
module Client =

    let private isResponseTo (actionId: string) (message: Message) =
        Message.kind message = Response && Message.actionId message = Some actionId

    /// Reads until the Response carrying `actionId`. Events and other responses are skipped: this session
    /// sends one action at a time, so no one else is waiting for them. An event that carries our
    /// ActionID (OriginateResponse) is still an event and is skipped too.
    let private awaitResponse (connection: Connection) actionId ct =
        task {
            let mutable answer = None

            while answer.IsNone do
                match! connection.Receive ct with
                | Ok message when not (isResponseTo actionId message) -> ()
                | received -> answer <- Some received

            return answer.Value
        }

    let private named (expected: string) (actual: string) =
        System.String.Equals(actual, expected, System.StringComparison.OrdinalIgnoreCase)

    /// What `Response:` says the action did: `Success`, or `Goodbye` for a Logoff (Asterisk 22 says
    /// Goodbye, some versions Success). Anything else is a failure: `Follows` is a command's output,
    /// `Failure` and unknown words say nothing we can rely on, and a missing line says nothing at all.
    let private judge (action: Action) (response: Message) =
        let said = Message.tryFind "Response" response |> Option.defaultValue ""
        let message = Message.tryFind "Message" response |> Option.defaultValue ""

        if named "Success" said || named "Logoff" action.Name && named "Goodbye" said then
            Ok response
        elif named "Error" said then
            Error(Rejected message)
        else
            Error(Unexpected(said, message))

    /// Sends `action` and returns its Response when it says the action succeeded (`Success`; `Goodbye`
    /// for Logoff), or why not, all within `timeout`. Never retries: an action that may have reached
    /// Asterisk is not sent twice.
    let send (connection: Connection) (timeout: System.TimeSpan) (action: Action) (ct: CancellationToken) =
        task {
            match Action.encode action with
            | Error e -> return Error(Unencodable e)
            | Ok bytes ->
                use deadline = CancellationTokenSource.CreateLinkedTokenSource ct
                deadline.CancelAfter timeout

                let! sent = connection.Send(bytes, deadline.Token)

                let! answer =
                    match sent with
                    | Ok() -> awaitResponse connection action.ActionId deadline.Token
                    | Error e -> Task.FromResult(Error e)

                return
                    match answer with
                    | Ok response -> judge action response
                    | Error Cancelled -> Error NoResponse
                    | Error e -> Error(LinkFailed e)
        }
