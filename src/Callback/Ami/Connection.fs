namespace Callback.Ami

open System
open System.Buffers
open System.Collections.Generic
open System.IO
open System.IO.Pipelines
open System.Net.Security
open System.Net.Sockets
open System.Security.Authentication
open System.Security.Cryptography.X509Certificates
open System.Threading
open System.Threading.Tasks

/// How the manager port is reached.
type Transport =
    /// Only when TLS is explicitly turned off: the secret then crosses the network in clear.
    | PlainTcp
    /// TLS 1.2 or 1.3 with the server certificate checked, chain and host name; `trustedRoots`, when
    /// not empty, are the only roots trusted (a self-signed Asterisk), otherwise the system's roots are.
    | Tls of trustedRoots: X509Certificate2 list

/// Where Asterisk's manager listens and how long connecting (TCP, TLS, greeting) may take.
type Endpoint = {
    Host: string
    Port: int
    Transport: Transport
    ConnectTimeout: TimeSpan
}

/// Why no AMI session could be opened.
type ConnectError =
    | Refused
    | Unreachable of reason: string
    | ConnectTimedOut
    | TlsRejected of reason: string
    | NotAsterisk of greeting: string
    | ClosedBeforeGreeting

/// Why a message could not be sent or received on an open session.
type LinkError =
    | Closed
    | Cancelled
    /// The greeting did not end within its limit. (A message over the cap is skipped, not an error.)
    | Oversized
    | Broken of reason: string

[<RequireQualifiedAccess>]
module ConnectError =
    /// For the log: what went wrong in words, never a secret.
    let describe error =
        match error with
        | Refused -> "connection refused"
        | Unreachable reason -> $"unreachable ({reason})"
        | ConnectTimedOut -> "no connection and greeting within the connect timeout"
        | TlsRejected reason -> $"TLS failed ({reason})"
        | NotAsterisk greeting -> $"not an Asterisk manager (greeting '{greeting}')"
        | ClosedBeforeGreeting -> "closed before the greeting"

[<RequireQualifiedAccess>]
module LinkError =
    /// For the log: what went wrong in words.
    let describe error =
        match error with
        | Closed -> "connection closed"
        | Cancelled -> "cancelled"
        | Oversized -> "a greeting over the size limit"
        | Broken reason -> $"connection broken ({reason})"

/// Cuts one item off the front of a buffer (a delegate, because F# closures cannot take byrefs).
type internal Cut<'T> = delegate of byref<ReadOnlySequence<byte>> -> 'T voption

/// An open AMI session: one stream, read through a pipe and cut into messages. Nothing else in the
/// program touches sockets.
[<Sealed>]
type Connection private (stream: Stream, greeting: string, reader: PipeReader, frames: FrameReader) =

    static let greetingPrefix = "Asterisk Call Manager/"

    /// The greeting is one short line (`Asterisk Call Manager/11.0.0`); a peer sending more without a
    /// line end is not Asterisk.
    static let maxGreetingBytes = 4096L

    // Runs one synchronous cut over the buffer (byrefs cannot live inside a task) and tells the pipe
    // what was consumed (the cut may drop bytes without returning an item: a message over the cap) and
    // that everything was examined. More than `limit` bytes left uncut is an error.
    static let take (reader: PipeReader) (result: ReadResult) (limit: int64) (cut: Cut<'T>) =
        let mutable rest = result.Buffer

        match cut.Invoke(&rest) with
        | ValueSome value ->
            reader.AdvanceTo rest.Start
            ValueSome(Ok value)
        | ValueNone ->
            reader.AdvanceTo(rest.Start, result.Buffer.End)

            if result.IsCompleted then ValueSome(Error Closed)
            elif rest.Length > limit then ValueSome(Error Oversized)
            else ValueNone

    static let readUntil (reader: PipeReader) (ct: CancellationToken) limit cut =
        task {
            let mutable outcome = ValueNone

            try
                while outcome.IsNone do
                    let! result = reader.ReadAsync ct
                    outcome <- take reader result limit cut
            with
            | :? OperationCanceledException -> outcome <- ValueSome(Error Cancelled)
            | :? IOException as e -> outcome <- ValueSome(Error(Broken e.Message))
            | :? ObjectDisposedException -> outcome <- ValueSome(Error Closed)

            return outcome.Value
        }

    static let tlsOptions host (trustedRoots: X509Certificate2 list) =
        let options =
            SslClientAuthenticationOptions(
                TargetHost = host,
                EnabledSslProtocols = (SslProtocols.Tls12 ||| SslProtocols.Tls13),
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck
            )

        if not trustedRoots.IsEmpty then
            let policy =
                new X509ChainPolicy(
                    TrustMode = X509ChainTrustMode.CustomRootTrust,
                    RevocationMode = X509RevocationMode.NoCheck
                )

            for root in trustedRoots do
                policy.CustomTrustStore.Add root |> ignore

            options.CertificateChainPolicy <- policy

        options

    static let classify (e: exn) =
        match e with
        | :? SocketException as s when s.SocketErrorCode = SocketError.ConnectionRefused -> Refused
        | :? SocketException as s -> Unreachable(string s.SocketErrorCode)
        | :? OperationCanceledException -> ConnectTimedOut
        | :? AuthenticationException as a -> TlsRejected a.Message
        | :? IOException as i -> TlsRejected i.Message
        | e -> Unreachable e.Message

    static let openStream (endpoint: Endpoint) (ct: CancellationToken) : Task<Result<Stream, ConnectError>> =
        task {
            let socket = new Socket(SocketType.Stream, ProtocolType.Tcp, NoDelay = true)

            try
                do! socket.ConnectAsync(endpoint.Host, endpoint.Port, ct)
                // The NetworkStream owns the socket and the SslStream owns the NetworkStream.
                let network = new NetworkStream(socket, ownsSocket = true)

                match endpoint.Transport with
                | PlainTcp -> return Ok(network :> Stream)
                | Tls trustedRoots ->
                    let ssl = new SslStream(network, leaveInnerStreamOpen = false)
                    do! ssl.AuthenticateAsClientAsync(tlsOptions endpoint.Host trustedRoots, ct)
                    return Ok(ssl :> Stream)
            with e ->
                socket.Dispose()
                return Error(classify e)
        }

    /// Messages cut from the pipe and not yet received. Events come dozens to a read: cutting them all at
    /// once touches the pipe (TryRead, AdvanceTo) once per read instead of once per message.
    let pending = Queue<Message>()

    // One delegate for the connection's life, not one per Receive.
    let cutMessages =
        Cut(fun buffer ->
            let mutable message = Unchecked.defaultof<Message>

            while frames.TryReadMessage(&buffer, &message) do
                pending.Enqueue message

            if pending.Count > 0 then
                ValueSome(pending.Dequeue())
            else
                ValueNone)

    /// The FrameReader enforces the cap on messages itself, skipping what is over it.
    static let noLimit = Int64.MaxValue

    /// The banner Asterisk greeted us with, e.g. `Asterisk Call Manager/11.0.0`.
    member _.Greeting = greeting

    /// How many messages over the size cap were skipped on this session so far.
    member _.SkippedMessages = frames.Skipped

    /// Opens TCP (and TLS), then reads the greeting; all within `endpoint.ConnectTimeout`. Only the prefix
    /// of the greeting is checked: its version number changes between releases. A message longer than
    /// `maxMessageBytes` (default `FrameReader.DefaultMaxMessageBytes`) is skipped, not received.
    static member Open
        (endpoint: Endpoint, ct: CancellationToken, ?maxMessageBytes: int)
        : Task<Result<Connection, ConnectError>> =
        task {
            use deadline = CancellationTokenSource.CreateLinkedTokenSource ct
            deadline.CancelAfter endpoint.ConnectTimeout

            match! openStream endpoint deadline.Token with
            | Error e -> return Error e
            | Ok stream ->
                let reader = PipeReader.Create(stream, StreamPipeReaderOptions(bufferSize = 16384))

                let frames =
                    FrameReader(defaultArg maxMessageBytes FrameReader.DefaultMaxMessageBytes)

                let! line =
                    readUntil
                        reader
                        deadline.Token
                        maxGreetingBytes
                        (Cut(fun buffer ->
                            let mutable line = null

                            if frames.TryReadLine(&buffer, &line) then
                                ValueSome line
                            else
                                ValueNone))

                match line with
                | Ok g when g.StartsWith(greetingPrefix, StringComparison.Ordinal) ->
                    return Ok(new Connection(stream, g, reader, frames))
                | other ->
                    do! reader.CompleteAsync()
                    do! stream.DisposeAsync()

                    return
                        match other with
                        | Ok g -> Error(NotAsterisk(if g.Length > 80 then g.Substring(0, 80) else g))
                        | Error Cancelled -> Error ConnectTimedOut
                        | Error _ -> Error ClosedBeforeGreeting
        }

    /// Writes one encoded action and flushes it.
    member _.Send(action: EncodedAction, ct: CancellationToken) : Task<Result<unit, LinkError>> =
        task {
            try
                do! stream.WriteAsync(action.Bytes, ct)
                do! stream.FlushAsync ct
                return Ok()
            with
            | :? OperationCanceledException -> return Error Cancelled
            | :? IOException as e -> return Error(Broken e.Message)
            | :? ObjectDisposedException -> return Error Closed
        }

    /// The next whole message, response or event, in arrival order. When it is already buffered (events
    /// come many to a read) it is returned synchronously, with no `ReadAsync` and no `Task`. One caller at a
    /// time: a session is a conversation.
    member _.Receive(ct: CancellationToken) : ValueTask<Result<Message, LinkError>> =
        let mutable buffered = Unchecked.defaultof<ReadResult>

        let fromBuffer =
            if pending.Count > 0 then
                ValueSome(Ok(pending.Dequeue()))
            elif reader.TryRead(&buffered) then
                take reader buffered noLimit cutMessages
            else
                ValueNone

        match fromBuffer with
        | ValueSome outcome -> ValueTask<Result<Message, LinkError>>(outcome)
        | ValueNone -> ValueTask<Result<Message, LinkError>>(readUntil reader ct noLimit cutMessages)

    /// Closes the session's socket; a Logoff, if wanted, is the caller's to send first.
    interface IDisposable with
        member _.Dispose() =
            reader.Complete()
            stream.Dispose()
