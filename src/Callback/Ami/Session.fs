namespace Callback.Ami

open System
open System.Collections.Concurrent
open System.Collections.Generic
open System.Threading
open System.Threading.Tasks
open Microsoft.Extensions.Logging
open Microsoft.Extensions.Logging.Abstractions

/// A long-lived AMI session over one open connection. One reader loop owns the connection: it completes
/// each action by its ActionID (any number in flight, answered in any order), collects list items, and
/// hands every other event to the `EventHub` without ever waiting for a subscriber. An event that
/// carries our ActionID (`OriginateResponse`) is an event, never an answer. An action that times out is
/// forgotten (its late answer is dropped); the shared read is never cancelled for it. When the link ends,
/// every pending action fails at once and later ones fail without being sent.
[<Sealed>]
type Session(connection: Connection, options: SessionOptions, hub: EventHub, logger: ILogger) =
    let logger = Loggers.orNull logger

    let options = if isNull options then SessionOptions() else options
    let ownsHub = isNull hub
    let hub = if ownsHub then EventHub logger else hub
    let pending = ConcurrentDictionary<string, PendingAction>()
    let writeLock = new SemaphoreSlim(1, 1)
    let lifetime = new CancellationTokenSource()

    let closed =
        TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously)

    let mutable closeReason: string = null

    let finish (actionId: string) result =
        match pending.TryRemove actionId with
        | true, p -> p.Complete result
        | _ -> ()

    let dispatch (message: Message) =
        let id = Message.actionId message |> Option.defaultValue ""

        match Message.kind message, pending.TryGetValue id with
        | Response, (true, p) -> Dispatch.response p message |> Option.iter (finish id)
        | Response, _ -> logger.LogDebug("AMI: dropped a Response nobody waits for (timed out or foreign)")
        | Event, (true, p) when p.Ack.IsSome -> Dispatch.listEvent p p.Ack.Value message |> Option.iter (finish id)
        | Event, _ -> hub.Publish message
        | Unknown, _ -> logger.LogDebug("AMI: dropped a message that is neither a Response nor an Event")

    let failAll (reason: LinkError) =
        for id in pending.Keys do
            finish id (Error(LinkFailed reason))

    let readLoop () =
        task {
            let mutable ended = None

            while ended.IsNone do
                match! connection.Receive lifetime.Token with
                | Ok message ->
                    // A fault here (a logger that throws) must end the session, not leave waiters hanging.
                    try
                        dispatch message
                    with e ->
                        ended <- Some(Broken $"reader fault: {e.GetType().Name}")
                | Error e -> ended <- Some e

            let link = if isNull closeReason then ended.Value else Closed

            let reason =
                if isNull closeReason then
                    LinkError.describe link
                else
                    closeReason

            Volatile.Write(&closeReason, reason)
            failAll link

            if ownsHub then
                hub.Complete()

            (connection :> IDisposable).Dispose()
            closed.TrySetResult reason |> ignore
        }

    let close (reason: string) =
        if isNull (Interlocked.CompareExchange(&closeReason, reason, null)) then
            logger.LogInformation("AMI session closed: {Reason}", reason)

        lifetime.Cancel()

    /// Writes one action, one writer at a time. `ValueNone`: the deadline passed while another action was
    /// being written, and nothing of this one was.
    let write (bytes: EncodedAction) (ct: CancellationToken) =
        task {
            let! entered =
                task {
                    try
                        do! writeLock.WaitAsync ct
                        return true
                    with :? OperationCanceledException ->
                        return false
                }

            if not entered then
                return ValueNone
            else
                try
                    let! sent = connection.Send(bytes, ct)
                    return ValueSome sent
                finally
                    writeLock.Release() |> ignore
        }

    let await (p: PendingAction) (ct: CancellationToken) =
        task {
            try
                return! p.Answer.WaitAsync(options.ResponseTimeout, ct)
            with
            | :? TimeoutException ->
                pending.TryRemove p.Action.ActionId |> ignore
                return Error NoResponse
            | :? OperationCanceledException ->
                pending.TryRemove p.Action.ActionId |> ignore
                return Error(LinkFailed Cancelled)
        }

    let send (action: Callback.Ami.Action) (isList: bool) (ct: CancellationToken) =
        task {
            match Action.encode action with
            | Error e -> return Error(Unencodable e)
            | Ok bytes ->
                let p = PendingAction(action, isList)
                pending[action.ActionId] <- p

                // After registering: a close that ran before cannot have seen this action.
                if not (isNull (Volatile.Read &closeReason)) then
                    finish action.ActionId (Error(LinkFailed Closed))
                else
                    use deadline = CancellationTokenSource.CreateLinkedTokenSource ct
                    deadline.CancelAfter options.ResponseTimeout

                    match! write bytes deadline.Token with
                    | ValueSome(Ok()) -> ()
                    | ValueNone -> finish action.ActionId (Error NoResponse)
                    | ValueSome(Error e) ->
                        // A write cut short leaves half an action on the wire: the link is unusable.
                        finish action.ActionId (Error(LinkFailed e))
                        close $"write failed ({LinkError.describe e})"

                return! await p ct
        }

    let reader = readLoop ()

    /// A Ping every `KeepAliveInterval`; no answer within `ResponseTimeout` means the peer is dead.
    let keepAlive () =
        task {
            try
                while not lifetime.IsCancellationRequested do
                    do! Task.Delay(options.KeepAliveInterval, lifetime.Token)

                    match! send (SessionActions.ping ()) false lifetime.Token with
                    | Error NoResponse -> close "no answer to Ping within the response timeout: the peer is dead"
                    | _ -> ()
            with :? OperationCanceledException ->
                ()
        }

    let mutable keepingAlive = 0

    /// Starts the keep-alive once, after Login: Asterisk refuses actions before it.
    let startKeepAlive () =
        if
            options.KeepAliveInterval > TimeSpan.Zero
            && Interlocked.Exchange(&keepingAlive, 1) = 0
        then
            keepAlive () |> ignore

    static let orThrow (answer: Task<Result<'T, ActionError>>) =
        task {
            match! answer with
            | Ok value -> return value
            | Error e -> return raise (AmiException e)
        }

    new(connection) = new Session(connection, null, null, NullLogger.Instance)
    new(connection, options) = new Session(connection, options, null, NullLogger.Instance)

    /// The events nobody asked for, as this session's hub hands them out.
    member _.Events = hub

    /// Subscribes to the unsolicited events, keeping at most `capacity` unread (see `EventSubscription`).
    member _.Subscribe(capacity: int) = hub.Subscribe capacity

    member _.Options = options

    /// Completes, with the reason in words, when the session has ended.
    member _.Closed: Task<string> = closed.Task

    member _.IsClosed = not (isNull (Volatile.Read &closeReason)) || reader.IsCompleted

    /// How many actions are waiting for their answer.
    member _.PendingCount = pending.Count

    /// Sends `action` and returns its Response when it says the action succeeded, or why not, within
    /// `ResponseTimeout`. Never retried: an action that may have reached Asterisk is not sent twice.
    member _.Send(action: Callback.Ami.Action, ct: CancellationToken) : Task<Result<Message, ActionError>> =
        task {
            let! result = send action false ct
            return result |> Result.map _.Response
        }

    /// Sends a list action and returns its items and completion event, decided on the EventList headers.
    member _.SendList(action: Callback.Ami.Action, ct: CancellationToken) : Task<Result<ListResponse, ActionError>> =
        send action true ct

    /// `Challenge` then Login with its MD5 key when `md5` (the secret never crosses: for plain TCP), else
    /// Login with the secret (over TLS only). `events` is the `Events:` mask. A successful Login starts the
    /// keep-alive, if `KeepAliveInterval` asks for one.
    member this.Login(username: string, secret: Secret, events: EventMask, md5: bool, ct: CancellationToken) =
        task {
            let! answer = this.LoginOnce(username, secret, events, md5, ct)

            if Result.isOk answer then
                startKeepAlive ()

            return answer
        }

    member private this.LoginOnce(username: string, secret: Secret, events: EventMask, md5: bool, ct) =
        task {
            if not md5 then
                let! answer = this.Send(SessionActions.plainLogin username secret events, ct)
                return answer |> Result.map ignore
            else
                match! this.Send(SessionActions.challenge (), ct) with
                | Error e -> return Error e
                | Ok ack ->
                    match ack.Get "Challenge" with
                    | null
                    | "" -> return Error(Unexpected("Success", "the Challenge answer has no Challenge line"))
                    | challenge ->
                        let key = SessionActions.md5Key challenge secret
                        let! answer = this.Send(SessionActions.md5Login username key events, ct)
                        return answer |> Result.map ignore
        }

    /// `Ping`; Asterisk answers `Response: Success` and `Ping: Pong`.
    member this.Ping(ct: CancellationToken) =
        task {
            let! answer = this.Send(SessionActions.ping (), ct)
            return answer |> Result.map ignore
        }

    /// Runs a CLI command and returns its `Output:` lines (Asterisk 14+: Response Success + Output lines).
    /// An Error answer carries the CLI's words (`No such command …`) in its Output lines: they are the
    /// message of the `Rejected` error.
    member this.Command(command: string, ct: CancellationToken) : Task<Result<IReadOnlyList<string>, ActionError>> =
        task {
            let! answer = send (SessionActions.command command) false ct

            return
                match answer with
                | Ok list -> Ok(list.Response.GetAll "Output" :> IReadOnlyList<string>)
                | Error e -> Error e
        }

    /// For C#: sends the action `name` with `headers` in order; the Response, or an `AmiException`.
    member this.SendAsync(name: string, headers: KeyValuePair<string, string> seq, ct: CancellationToken) =
        orThrow (this.Send(SessionActions.ofPairs name headers, ct))

    /// For C#: a list action's items and completion, or an `AmiException`.
    member this.SendListAsync(name: string, headers: KeyValuePair<string, string> seq, ct: CancellationToken) =
        orThrow (this.SendList(SessionActions.ofPairs name headers, ct))

    /// For C#: a CLI command's `Output:` lines, or an `AmiException`.
    member this.CommandAsync(command: string, ct: CancellationToken) = orThrow (this.Command(command, ct))

    /// For C#: Login (MD5 challenge when `md5`), or an `AmiException`.
    member this.LoginAsync(username: string, secret: string, events: EventMask, md5: bool, ct: CancellationToken) =
        orThrow (this.Login(username, Secret secret, events, md5, ct)) :> Task

    /// For C#: a Ping, or an `AmiException`.
    member this.PingAsync(ct: CancellationToken) = orThrow (this.Ping ct) :> Task

    /// Ends the session: pending actions fail at once, subscriptions of an owned hub complete.
    member _.Close(reason: string) =
        close reason
        closed.Task

    interface IAsyncDisposable with
        member this.DisposeAsync() =
            ValueTask(this.Close "closed by the program" :> Task)

    interface IDisposable with
        member this.Dispose() =
            this.Close("closed by the program").Wait()
