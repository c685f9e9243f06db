namespace Callback.Ami

open System
open System.Collections.Generic
open System.Threading.Tasks

/// The answer to a list action (`CoreShowChannels`, `Status`, …): the acknowledging Response, one event
/// per item, and the `…Complete` event that ended the list (null when Asterisk answered without a list).
type ListResponse = {
    Response: Message
    Items: IReadOnlyList<Message>
    Completion: Message
}

/// An action that did not succeed, for callers that prefer exceptions (C#): `Error` says why.
type AmiException(error: ActionError) =
    inherit Exception(ActionError.describe error)
    member _.Error = error

/// How a session waits: for each answer, and between keep-alive Pings (zero: no keep-alive).
[<Sealed; AllowNullLiteral>]
type SessionOptions() =
    member val ResponseTimeout = TimeSpan.FromSeconds 5.0 with get, set
    member val KeepAliveInterval = TimeSpan.Zero with get, set

/// An action sent and not answered yet. A list action collects its items once its Response said
/// `EventList: start`, until the event that says `EventList: Complete`.
[<Sealed>]
type internal PendingAction(action: Callback.Ami.Action, isList: bool) =
    let answer =
        TaskCompletionSource<Result<ListResponse, ActionError>>(TaskCreationOptions.RunContinuationsAsynchronously)

    member _.Action = action
    member _.IsList = isList
    member val Ack: Message option = None with get, set
    member val Items = ResizeArray<Message>()
    member _.Answer = answer.Task
    member _.Complete result = answer.TrySetResult result |> ignore

[<RequireQualifiedAccess>]
module internal Dispatch =

    let private said (key: string) (expected: string) (message: Message) =
        String.Equals(message.Get key, expected, StringComparison.OrdinalIgnoreCase)

    let isListStart = said "EventList" "start"
    let isListComplete = said "EventList" "Complete"

    /// The Response ends a plain action, starts a list, or ends a list that will not come.
    let response (pending: PendingAction) (message: Message) =
        match Client.judge pending.Action message with
        | Ok ack when pending.IsList && isListStart ack ->
            pending.Ack <- Some ack
            None
        | Ok ack ->
            Some(
                Ok {
                    Response = ack
                    Items = [||]
                    Completion = Unchecked.defaultof<_>
                }
            )
        | Error(Rejected _) when message.GetAll("Output").Length > 0 ->
            Some(Error(Rejected(String.Join(" / ", message.GetAll "Output"))))
        | Error e -> Some(Error e)

    /// An event carrying the ActionID of a list whose Response came: an item, or the list's end.
    let listEvent (pending: PendingAction) (ack: Message) (message: Message) =
        if isListComplete message then
            Some(
                Ok {
                    Response = ack
                    Items = pending.Items.ToArray()
                    Completion = message
                }
            )
        else
            pending.Items.Add message
            None
