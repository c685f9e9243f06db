namespace Callback.Ami

open System
open System.Collections.Generic
open System.Security.Cryptography.X509Certificates
open System.Threading
open System.Threading.Channels
open System.Threading.Tasks
open Microsoft.Extensions.Logging
open Microsoft.Extensions.Logging.Abstractions

/// Where a supervised link stands.
type LinkState =
    /// Not started, or stopped.
    | Stopped = 0
    /// Opening TCP/TLS, reading the greeting, logging in.
    | Connecting = 1
    /// Logged in: actions are sent.
    | Ready = 2
    /// The link was lost or could not be made; a reconnection is scheduled.
    | Disconnected = 3

/// One change of state, when it happened, and why for `Disconnected` (null otherwise).
type LinkStateChange = {
    State: LinkState
    At: DateTimeOffset
    Reason: string
}

/// Everything a supervisor needs, as settable properties (C#: an object initializer).
[<Sealed; AllowNullLiteral>]
type SupervisorOptions() =
    member val Host = "127.0.0.1" with get, set
    member val Port = 5039 with get, set
    /// Off only when TLS is really unavailable; then Login uses the MD5 challenge, never the clear secret.
    member val UseTls = true with get, set
    /// The roots trusted for a self-signed Asterisk; empty: the system's roots.
    member val TrustedRoots: X509Certificate2[] = [||] with get, set
    member val ConnectTimeout = TimeSpan.FromSeconds 5.0 with get, set
    member val Username = "" with get, set
    member val Secret: string = null with get, set
    member val Events = EventMask.On with get, set
    member val ResponseTimeout = TimeSpan.FromSeconds 5.0 with get, set
    /// A Ping this often while ready; zero turns the keep-alive off.
    member val KeepAliveInterval = TimeSpan.FromSeconds 20.0 with get, set
    member val InitialBackoff = TimeSpan.FromSeconds 1.0 with get, set
    member val MaxBackoff = TimeSpan.FromSeconds 30.0 with get, set

    member o.Endpoint: Endpoint = {
        Host = o.Host
        Port = o.Port
        Transport =
            if o.UseTls then
                Tls(List.ofArray o.TrustedRoots)
            else
                PlainTcp
        ConnectTimeout = o.ConnectTimeout
    }

/// Keeps one AMI session logged in: connect → greeting → login → ready; when the link is lost, pending
/// actions fail at once, and it reconnects after a capped exponential backoff with jitter, then logs in
/// again. Events go to subscriptions that live across reconnections. An action sent while not ready fails
/// at once with `NotReady`: nothing is queued to be sent blindly later.
[<Sealed>]
type Supervisor(options: SupervisorOptions, logger: ILogger) =
    let logger = Loggers.orNull logger

    let options = if isNull options then SupervisorOptions() else options

    do
        if String.IsNullOrEmpty options.Username || isNull options.Secret then
            invalidArg (nameof options) "set Username and Secret: a supervised session always logs in"

    let hub = EventHub logger
    let stop = new CancellationTokenSource()
    let watchers = List<Channel<LinkStateChange>>()
    let mutable current: Session option = None
    let mutable state = LinkState.Stopped
    let mutable running: Task = Task.CompletedTask
    let mutable reconnects = 0L

    let policy = {
        Initial = options.InitialBackoff
        Max = options.MaxBackoff
    }

    let sessionOptions =
        SessionOptions(ResponseTimeout = options.ResponseTimeout, KeepAliveInterval = options.KeepAliveInterval)

    let publish next (reason: string) =
        state <- next

        let change = {
            State = next
            At = DateTimeOffset.UtcNow
            Reason = reason
        }

        if next = LinkState.Disconnected then
            logger.LogWarning("AMI link to {Host}:{Port} lost: {Reason}", options.Host, options.Port, reason)
        else
            logger.LogInformation("AMI link to {Host}:{Port}: {State}", options.Host, options.Port, next)

        lock watchers (fun () ->
            for w in watchers do
                w.Writer.TryWrite change |> ignore)

    /// One connection and Login; the logged-in session, or why not in words.
    let connect (ct: CancellationToken) =
        task {
            match! Connection.Open(options.Endpoint, ct) with
            | Error e -> return Error(ConnectError.describe e)
            | Ok connection ->
                let session = new Session(connection, sessionOptions, hub, logger)
                let md5 = not options.UseTls
                let secret = Secret options.Secret

                match! session.Login(options.Username, secret, options.Events, md5, ct) with
                | Ok() -> return Ok session
                | Error e ->
                    let reason = $"Login: {ActionError.describe e}"
                    do! session.Close reason :> Task
                    return Error reason
        }

    /// Serves one session until it ends; returns why it ended.
    let serve (session: Session) =
        task {
            use _ =
                stop.Token.Register(fun () -> session.Close "the supervisor stopped" |> ignore)

            current <- Some session
            publish LinkState.Ready null
            let! reason = session.Closed
            current <- None
            return reason
        }

    let run () =
        task {
            let mutable failures = 0

            while not stop.IsCancellationRequested do
                publish LinkState.Connecting null

                let! attempt =
                    task {
                        try
                            return! connect stop.Token
                        with e ->
                            return Error $"unexpected {e.GetType().Name}: {e.Message}"
                    }

                match attempt with
                | Ok session ->
                    let! reason = serve session
                    failures <- 1
                    publish LinkState.Disconnected reason
                | Error reason ->
                    failures <- failures + 1
                    publish LinkState.Disconnected reason

                if not stop.IsCancellationRequested then
                    Interlocked.Increment &reconnects |> ignore
                    let wait = Backoff.delay policy failures (Random.Shared.NextDouble())

                    try
                        do! Task.Delay(wait, stop.Token)
                    with :? OperationCanceledException ->
                        ()

            publish LinkState.Stopped null
        }

    let onSession (f: Session -> Task<Result<'T, ActionError>>) =
        match current with
        | Some session -> f session
        | None -> Task.FromResult(Error(NotReady((string state).ToLowerInvariant())))

    static let orThrow (answer: Task<Result<'T, ActionError>>) =
        task {
            match! answer with
            | Ok value -> return value
            | Error e -> return raise (AmiException e)
        }

    new(options) = new Supervisor(options, NullLogger.Instance)

    member _.State = state

    /// How many times the link was (re)tried after a loss or a failed attempt.
    member _.Reconnects = Interlocked.Read &reconnects

    /// Starts the connect → login → ready loop (once; later calls do nothing).
    member _.Start() =
        if running.IsCompleted && not stop.IsCancellationRequested then
            running <- Task.Run<unit>(fun () -> run ())

    /// Stops the loop and closes the session; pending actions fail at once.
    member _.StopAsync() : Task =
        stop.Cancel()
        running

    /// The changes of state from now on, in order (a bounded channel: the oldest are dropped past 256).
    member _.WatchStates() : ChannelReader<LinkStateChange> =
        let options =
            BoundedChannelOptions(256, FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true)

        let channel = Channel.CreateBounded<LinkStateChange> options
        lock watchers (fun () -> watchers.Add channel)
        channel.Reader

    /// Events from every session of this link, at most `capacity` unread (see `EventSubscription`).
    member _.Subscribe(capacity: int) = hub.Subscribe capacity

    member _.Events = hub

    member _.Send(action: Callback.Ami.Action, ct) = onSession (fun s -> s.Send(action, ct))

    member _.SendList(action: Callback.Ami.Action, ct) =
        onSession (fun s -> s.SendList(action, ct))

    member _.Command(command: string, ct) =
        onSession (fun s -> s.Command(command, ct))

    /// For C#: the Response, or an `AmiException` (`NotReady` at once when the link is not logged in).
    member this.SendAsync(name: string, headers: KeyValuePair<string, string> seq, ct: CancellationToken) =
        orThrow (this.Send(SessionActions.ofPairs name headers, ct))

    member this.SendListAsync(name: string, headers: KeyValuePair<string, string> seq, ct: CancellationToken) =
        orThrow (this.SendList(SessionActions.ofPairs name headers, ct))

    member this.CommandAsync(command: string, ct: CancellationToken) = orThrow (this.Command(command, ct))

    interface IAsyncDisposable with
        member this.DisposeAsync() = ValueTask(this.StopAsync())

    interface IDisposable with
        member this.Dispose() = this.StopAsync().Wait()
