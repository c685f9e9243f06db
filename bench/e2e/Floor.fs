/// The protocol floor: the least a client must do to place one callback over AMI/TLS.
/// TCP connect, TLS handshake (chain checked against the dev CA, as the sidecar does), greeting,
/// Login, Originate (Async), Logoff, each response read up to its blank line. No HTTP, no framework.
module Bench.Floor

open System
open System.IO
open System.Net.Security
open System.Net.Sockets
open System.Security.Authentication
open System.Security.Cryptography.X509Certificates
open System.Text
open System.Threading
open System.Threading.Tasks

/// The same settings the sidecar reads, from the same environment variables.
type AmiTarget = {
    Host: string
    Port: int
    Username: string
    Secret: string
    CaCertificate: X509Certificate2 option
    Channel: string
    Context: string
    Exten: string
    Priority: string
    CallerId: string option
}

let private env name fallback =
    match Environment.GetEnvironmentVariable name with
    | null
    | "" -> fallback
    | v -> v

let fromEnvironment () =
    let required name =
        match env name "" with
        | "" -> failwithf "%s is not set (export the output of asterisk.sh env)" name
        | v -> v

    {
        Host = required "Ami__Host"
        Port = int (env "Ami__Port" "5039")
        Username = required "Ami__Username"
        Secret = required "Ami__Secret"
        CaCertificate =
            match env "Ami__CaCertificate" "" with
            | "" -> None
            | path -> Some(X509Certificate2.CreateFromPem(File.ReadAllText path))
        Channel = required "Originate__Channel"
        Context = env "Originate__Context" "callback-{language}"
        Exten = env "Originate__Exten" "s"
        Priority = env "Originate__Priority" "1"
        CallerId =
            match env "Originate__CallerId" "" with
            | "" -> None
            | v -> Some v
    }

/// Distinct valid North American numbers: 555-0200 … 555-0999 in area codes 514, 438, 450, 613
/// (3,200 numbers; libphonenumber accepts all of them, none is N11, premium rate or in the fictional
/// 555-0100 … 0199 range the destination policy refuses).
let numberFor (index: int) =
    let areas = [| "514"; "438"; "450"; "613" |]
    let i = ((index % 3200) + 3200) % 3200
    $"1{areas[i / 800]}555{200 + i % 800:D4}"

/// `en` for even indexes, `fr` for odd ones, on both sides of the comparison.
let languageFor (index: int) = if index % 2 = 0 then "en" else "fr"

let private ascii (s: string) = Encoding.ASCII.GetBytes s

let private action (name: string) (headers: (string * string) list) =
    let id = Guid.NewGuid().ToString "N"
    let sb = StringBuilder()

    sb.Append("Action: ").Append(name).Append("\r\n").Append("ActionID: ").Append(id).Append("\r\n")
    |> ignore

    for k, v in headers do
        sb.Append(k).Append(": ").Append(v).Append("\r\n") |> ignore

    sb.Append("\r\n") |> ignore
    id, ascii (sb.ToString())

let private tlsOptions (target: AmiTarget) =
    let options =
        SslClientAuthenticationOptions(
            TargetHost = target.Host,
            EnabledSslProtocols = (SslProtocols.Tls12 ||| SslProtocols.Tls13),
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck
        )

    target.CaCertificate
    |> Option.iter (fun root ->
        let policy =
            new X509ChainPolicy(
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                RevocationMode = X509RevocationMode.NoCheck
            )

        policy.CustomTrustStore.Add root |> ignore
        options.CertificateChainPolicy <- policy)

    options

/// Bytes read from the stream and not yet consumed.
type private Inbox(stream: Stream) =
    let buffer = Array.zeroCreate<byte> 65536
    let mutable filled = 0

    let indexOf (pattern: byte[]) =
        let span = ReadOnlySpan(buffer, 0, filled)
        span.IndexOf(ReadOnlySpan pattern)

    /// The text up to (not including) the first `separator`, consumed with it.
    member _.ReadUntil(separator: byte[], ct: CancellationToken) : Task<string> =
        task {
            let mutable at = indexOf separator

            while at < 0 do
                if filled = buffer.Length then
                    failwith "message over 64 KiB"

                let! n = stream.ReadAsync(buffer.AsMemory(filled), ct)

                if n = 0 then
                    raise (EndOfStreamException "Asterisk closed the connection")

                filled <- filled + n
                at <- indexOf separator

            let text = Encoding.ASCII.GetString(buffer, 0, at)
            let consumed = at + separator.Length
            Buffer.BlockCopy(buffer, consumed, buffer, 0, filled - consumed)
            filled <- filled - consumed
            return text
        }

let private crlf = ascii "\r\n"
let private blankLine = ascii "\r\n\r\n"

/// Sends one action and reads messages until the one that carries its ActionID (with `Events: off`
/// that is the next one); fails unless its first line is `expected`.
let private exchange (stream: Stream) (inbox: Inbox) (id: string, bytes: byte[]) (expected: string) ct =
    task {
        do! stream.WriteAsync(bytes, ct)
        do! stream.FlushAsync ct
        let mutable answer = null

        while isNull answer do
            let! message = inbox.ReadUntil(blankLine, ct)

            if message.Contains("ActionID: " + id) then
                answer <- message

        if not (answer.StartsWith(expected, StringComparison.Ordinal)) then
            failwithf "expected %s, got %s" expected (answer.Replace("\r\n", " | "))
    }

/// The stages of one floor call, in order; `call` can record how long each took (ms).
let stageNames = [|
    "TCP connect"
    "TLS handshake"
    "greeting"
    "Login"
    "Originate"
    "Logoff"
    "close"
|]

/// One callback placed directly over AMI. Ok when Login, Originate and Logoff all got their answers.
/// With `stages`, the duration of each stage (see `stageNames`) of a successful call is added to it.
let call
    (target: AmiTarget)
    (timeout: TimeSpan)
    (stages: Collections.Concurrent.ConcurrentQueue<float[]> option)
    (index: int)
    : Task<Result<unit, string>> =
    task {
        use cts = new CancellationTokenSource(timeout)
        let ct = cts.Token
        let number = numberFor index
        let lang = languageFor index
        let marks = Array.zeroCreate<int64>(stageNames.Length + 1)
        let mutable m = 0

        let mark () =
            marks[m] <- Diagnostics.Stopwatch.GetTimestamp()
            m <- m + 1

        try
            mark ()
            let socket = new Socket(SocketType.Stream, ProtocolType.Tcp, NoDelay = true)
            let mutable owner: IDisposable = socket

            try
                do! socket.ConnectAsync(target.Host, target.Port, ct)
                mark ()
                // As the sidecar does: the SslStream owns the NetworkStream, which owns the socket.
                let ssl =
                    new SslStream(new NetworkStream(socket, ownsSocket = true), leaveInnerStreamOpen = false)

                owner <- ssl
                do! ssl.AuthenticateAsClientAsync(tlsOptions target, ct)
                mark ()
                let inbox = Inbox ssl
                let! greeting = inbox.ReadUntil(crlf, ct)

                if not (greeting.StartsWith("Asterisk Call Manager/", StringComparison.Ordinal)) then
                    failwithf "unexpected greeting %s" greeting

                mark ()

                let login =
                    action "Login" [ "Username", target.Username; "Secret", target.Secret; "Events", "off" ]

                do! exchange ssl inbox login "Response: Success" ct
                mark ()

                let originate =
                    action "Originate" [
                        yield "Channel", target.Channel.Replace("{number}", number)
                        yield "Context", target.Context.Replace("{language}", lang)
                        yield "Exten", target.Exten
                        yield "Priority", target.Priority
                        match target.CallerId with
                        | Some c -> yield "CallerID", c
                        | None -> ()
                        yield "Timeout", "30000"
                        yield "Async", "true"
                        yield "Variable", $"CALLBACK_LANGUAGE={lang}"
                    ]

                do! exchange ssl inbox originate "Response: Success" ct
                mark ()
                do! exchange ssl inbox (action "Logoff" []) "Response: Goodbye" ct
                mark ()
            finally
                owner.Dispose()

            mark ()

            stages
            |> Option.iter (fun q ->
                q.Enqueue(
                    Array.init stageNames.Length (fun i ->
                        float (marks[i + 1] - marks[i]) * 1000.0 / float Diagnostics.Stopwatch.Frequency)
                ))

            return Ok()
        with
        | :? OperationCanceledException -> return Error "floor: timed out"
        | e -> return Error("floor: " + e.GetType().Name + ": " + e.Message)
    }
