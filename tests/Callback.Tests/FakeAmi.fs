/// An AMI server that misbehaves on purpose: a greeting and an answer per action chosen by each test,
/// over plain TCP or real TLS, recording every byte it receives. It shares no code with the client, so
/// it cannot hide the client's mistakes.
module Callback.Tests.FakeAmi

open System
open System.IO
open System.Net
open System.Net.Security
open System.Net.Sockets
open System.Security.Cryptography
open System.Security.Cryptography.X509Certificates
open System.Text
open System.Threading
open System.Threading.Tasks

/// An action as the fake server saw it: its lines in order.
type ReceivedAction = {
    Lines: (string * string) list
} with

    member this.Get key =
        this.Lines
        |> List.tryFind (fun (k, _) -> k = key)
        |> Option.map snd
        |> Option.defaultValue ""

    member this.Name = this.Get "Action"
    member this.ActionId = this.Get "ActionID"

/// What the server does with one action.
type Reply =
    /// Writes these bytes (any number of messages, events included), then waits for the next action.
    | Send of string
    /// Writes these bytes, then closes the connection.
    | SendThenClose of string
    /// Says nothing and keeps the connection open.
    | Silent
    /// Closes the connection at once.
    | Close

type Script = {
    Greeting: string option
    Answer: ReceivedAction -> Reply
}

let response kind (actionId: string) message =
    $"Response: {kind}\r\nActionID: {actionId}\r\nMessage: {message}\r\n\r\n"

/// What Asterisk 22 answers to a well-behaved session (see tests/fixtures for the real transcripts).
let asterisk (action: ReceivedAction) =
    match action.Name with
    | "Login" -> Send(response "Success" action.ActionId "Authentication accepted")
    | "Originate" -> Send(response "Success" action.ActionId "Originate successfully queued")
    | "Logoff" -> SendThenClose(response "Goodbye" action.ActionId "Thanks for all the fish.")
    | _ -> Send(response "Error" action.ActionId "Invalid/unknown command")

/// What Asterisk 22 answers, except `reply` to the action named `name`.
let asteriskExcept (name: string) (reply: ReceivedAction -> Reply) (action: ReceivedAction) =
    if action.Name = name then reply action else asterisk action

/// What Asterisk 22 answers, except an Error response saying `message` to the action named `name`.
let refusing (name: string) (message: string) =
    asteriskExcept name (fun action -> Send(response "Error" action.ActionId message))

let greeting = "Asterisk Call Manager/11.0.0\r\n"

let script answer = {
    Greeting = Some greeting
    Answer = answer
}

/// A test certificate authority, a server certificate it signed for `localhost` and 127.0.0.1, and one it
/// signed for `other.example` only (a name mismatch that only the TLS handshake can find).
type TestPki = {
    Ca: X509Certificate2
    Server: X509Certificate2
    OtherHost: X509Certificate2
} with

    /// Writes the CA certificate as PEM, as a user would give it in `Ami__CaCertificate`.
    member this.WriteCaPem() =
        let path = Path.Combine(Path.GetTempPath(), $"fake-ami-ca-{Guid.NewGuid():N}.pem")
        File.WriteAllText(path, this.Ca.ExportCertificatePem())
        path

/// A TLS server certificate signed by `ca` for the host name `name` (its subject and its only DNS name)
/// and the addresses `addresses`.
let private serverCertificate (ca: X509Certificate2) (now: DateTimeOffset) (name: string) addresses =
    use serverKey = ECDsa.Create(ECCurve.NamedCurves.nistP256)

    let serverRequest =
        CertificateRequest($"CN={name}", serverKey, HashAlgorithmName.SHA256)

    let san = SubjectAlternativeNameBuilder()
    san.AddDnsName name

    for (address: IPAddress) in addresses do
        san.AddIpAddress address

    serverRequest.CertificateExtensions.Add(san.Build())
    serverRequest.CertificateExtensions.Add(X509BasicConstraintsExtension(false, false, 0, false))

    let serverAuth = OidCollection()
    serverAuth.Add(Oid "1.3.6.1.5.5.7.3.1") |> ignore
    serverRequest.CertificateExtensions.Add(X509EnhancedKeyUsageExtension(serverAuth, false))

    use signed =
        serverRequest.Create(ca, now.AddMinutes -5.0, now.AddDays 1.0, RandomNumberGenerator.GetBytes 8)

    use withKey = signed.CopyWithPrivateKey serverKey
    // A PKCS#12 round trip gives the platform a key it can use in a TLS server on every OS.
    X509CertificateLoader.LoadPkcs12(withKey.Export X509ContentType.Pkcs12, null)


let makePki () =
    let now = DateTimeOffset.UtcNow
    use caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256)

    let caRequest =
        CertificateRequest("CN=Fake AMI test CA", caKey, HashAlgorithmName.SHA256)

    caRequest.CertificateExtensions.Add(X509BasicConstraintsExtension(true, false, 0, true))
    caRequest.CertificateExtensions.Add(X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true))
    let ca = caRequest.CreateSelfSigned(now.AddMinutes -5.0, now.AddDays 1.0)

    {
        Ca = X509CertificateLoader.LoadCertificate(ca.RawData)
        Server = serverCertificate ca now "localhost" [ IPAddress.Loopback ]
        OtherHost = serverCertificate ca now "other.example" []
    }

/// The test PKI, made once for the whole test program.
let pki = lazy (makePki ())

/// One fake server on 127.0.0.1 and a free port, serving any number of sessions until disposed.
type Server(script: Script, tls: X509Certificate2 option) =
    let listener = new TcpListener(IPAddress.Loopback, 0)
    let received = new MemoryStream()
    let actions = Collections.Concurrent.ConcurrentQueue<ReceivedAction>()
    let stop = new CancellationTokenSource()
    let mutable sessions = 0
    let mutable nextId = 0

    /// The open sessions: their client (to close it) and their stream with the lock that orders writes.
    let live =
        Collections.Concurrent.ConcurrentDictionary<int, TcpClient * Stream * SemaphoreSlim>()

    let record (bytes: byte[]) count =
        lock received (fun () -> received.Write(bytes, 0, count))

    let parse (block: string) = {
        Lines =
            block.Split("\r\n", StringSplitOptions.RemoveEmptyEntries)
            |> Array.map (fun line ->
                match line.IndexOf ": " with
                | -1 -> line, ""
                | i -> line.Substring(0, i), line.Substring(i + 2))
            |> List.ofArray
    }

    let serve (client: TcpClient) =
        task {
            use client = client
            let network = client.GetStream()

            let! (stream: Stream) =
                match tls with
                | None -> Task.FromResult(network :> Stream)
                | Some certificate ->
                    task {
                        let ssl = new SslStream(network)
                        do! ssl.AuthenticateAsServerAsync(certificate)
                        return ssl :> Stream
                    }

            use stream = stream
            use gate = new SemaphoreSlim(1, 1)
            let id = Interlocked.Increment &nextId
            live[id] <- (client, stream, gate)

            let write (text: string) =
                task {
                    do! gate.WaitAsync stop.Token

                    try
                        do! stream.WriteAsync(Encoding.UTF8.GetBytes text, stop.Token)
                    finally
                        gate.Release() |> ignore
                }

            match script.Greeting with
            | Some g -> do! write g
            | None -> ()

            let buffer = Array.zeroCreate<byte> 4096
            let pending = StringBuilder()
            let mutable openSession = true

            while openSession do
                let! n =
                    task {
                        try
                            return! stream.ReadAsync(buffer, stop.Token)
                        with _ ->
                            return 0
                    }

                if n = 0 then
                    openSession <- false
                else
                    record buffer n
                    pending.Append(Encoding.UTF8.GetString(buffer, 0, n)) |> ignore
                    let mutable text = pending.ToString()
                    let mutable cut = text.IndexOf "\r\n\r\n"

                    while openSession && cut >= 0 do
                        let action = parse (text.Substring(0, cut))
                        actions.Enqueue action
                        text <- text.Substring(cut + 4)
                        pending.Clear().Append(text) |> ignore
                        cut <- text.IndexOf "\r\n\r\n"

                        match script.Answer action with
                        | Send bytes -> do! write bytes
                        | SendThenClose bytes ->
                            do! write bytes
                            openSession <- false
                        | Silent -> ()
                        | Close -> openSession <- false

            live.TryRemove id |> ignore
        }

    do listener.Start()

    let accept =
        task {
            try
                while not stop.IsCancellationRequested do
                    let! client = listener.AcceptTcpClientAsync stop.Token
                    Interlocked.Increment &sessions |> ignore
                    // Sessions run concurrently; a failed one (a client that rejects our TLS) ends alone.
                    serve client |> ignore
            with _ ->
                ()
        }

    new(script) = new Server(script, None)

    member _.Port = (listener.LocalEndpoint :?> IPEndPoint).Port

    /// Every byte any client sent, decoded as UTF-8.
    member _.Received =
        lock received (fun () -> Encoding.UTF8.GetString(received.ToArray()))

    member _.ReceivedByteCount = lock received (fun () -> received.Length)
    member _.Actions = List.ofSeq actions
    member _.ActionNames = actions |> Seq.map _.Name |> List.ofSeq
    /// How many TCP connections were accepted.
    member _.Sessions = Volatile.Read &sessions

    /// Writes `text` (unsolicited events, say) to every open session, each write whole.
    member _.Push(text: string) =
        task {
            for KeyValue(_, (_, stream, gate)) in live do
                do! gate.WaitAsync()

                try
                    do! stream.WriteAsync(Encoding.UTF8.GetBytes text)
                finally
                    gate.Release() |> ignore
        }

    /// Closes every open session at once, as a crashed Asterisk or a cut cable would.
    member _.Kick() =
        for KeyValue(id, (client, _, _)) in live do
            live.TryRemove id |> ignore
            client.Close()

    /// How many sessions are open now.
    member _.OpenSessions = live.Count

    interface IDisposable with
        member _.Dispose() =
            stop.Cancel()
            listener.Stop()
            accept.Wait(TimeSpan.FromSeconds 2.0) |> ignore

/// Where a client reaches the fake server on `port` without TLS, within 2 s.
let plainEndpoint port : Callback.Ami.Endpoint = {
    Host = "127.0.0.1"
    Port = port
    Transport = Callback.Ami.PlainTcp
    ConnectTimeout = TimeSpan.FromSeconds 2.0
}

/// The challenge the fake hands out on `Action: Challenge`.
[<Literal>]
let Challenge = "418253967"

/// Asterisk's MD5 login: `Challenge` answers `Challenge`; a Login passes only with `AuthType: MD5` and
/// `Key: md5(challenge + secret)` (computed here from the manager.c description, not by the client's code).
let md5Asterisk (secret: string) (action: ReceivedAction) =
    let key =
        MD5.HashData(Encoding.UTF8.GetBytes(Challenge + secret))
        |> Array.map (fun b -> b.ToString "x2")
        |> String.concat ""

    match action.Name with
    | "Challenge" when action.Get "AuthType" = "MD5" ->
        Send $"Response: Success\r\nActionID: {action.ActionId}\r\nChallenge: {Challenge}\r\n\r\n"
    | "Login" when action.Get "AuthType" = "MD5" && action.Get "Key" = key ->
        Send(response "Success" action.ActionId "Authentication accepted")
    | "Login" -> Send(response "Error" action.ActionId "Authentication failed")
    | "Ping" -> Send $"Response: Success\r\nActionID: {action.ActionId}\r\nPing: Pong\r\nTimestamp: 1.0\r\n\r\n"
    | _ -> asterisk action
