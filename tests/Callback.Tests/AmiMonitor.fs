/// A monitor session on the local Asterisk: the dev-only `callback-recorder` user (`asterisk.sh monitor-env`)
/// logged in over TLS with `Events: on`, keeping every byte Asterisk sends, so that a test proves a call from
/// Asterisk's side (hangup causes, dial statuses, OriginateResponse) and can save the stream as a fixture.
module Callback.Tests.AmiMonitor

open System
open System.IO
open System.Net.Security
open System.Net.Sockets
open System.Security.Cryptography.X509Certificates
open System.Text
open System.Threading
open Callback.Tests.Programs

/// One AMI message as its `Key: Value` lines, in order (keys repeat, e.g. `ChanVariable`).
type Event = (string * string) list

/// The value of `key` in an event ("" when absent).
let field (key: string) (event: Event) =
    event
    |> List.tryFind (fst >> (=) key)
    |> Option.map snd
    |> Option.defaultValue ""

/// Whether an event is `Event: name`.
let isEvent (name: string) (event: Event) = field "Event" event = name

/// The messages of an AMI stream's text (CRLF lines, a blank line after each message).
let parse (text: string) : Event list =
    text.Split("\r\n\r\n", StringSplitOptions.RemoveEmptyEntries)
    |> Array.map (fun message ->
        message.Split("\r\n")
        |> Array.choose (fun line ->
            match line.IndexOf ": " with
            | -1 -> None
            | i -> Some(line.Substring(0, i), line.Substring(i + 2)))
        |> List.ofArray)
    |> Array.filter (not << List.isEmpty)
    |> List.ofArray

/// The monitor session, reading on its own thread until disposed.
type Monitor(host: string, port: int, caFile: string, user: string, secret: string) =
    let tcp = new TcpClient(host, port)
    let ca = X509Certificate2.CreateFromPem(File.ReadAllText caFile)

    let validate _ (certificate: X509Certificate) (_: X509Chain) (_: SslPolicyErrors) =
        use chain = new X509Chain()
        chain.ChainPolicy.TrustMode <- X509ChainTrustMode.CustomRootTrust
        chain.ChainPolicy.CustomTrustStore.Add ca |> ignore
        chain.ChainPolicy.RevocationMode <- X509RevocationMode.NoCheck
        chain.Build(new X509Certificate2(certificate))

    let tls =
        new SslStream(tcp.GetStream(), false, RemoteCertificateValidationCallback validate)

    let received = new MemoryStream()
    let gate = obj ()

    let read () =
        let buffer = Array.zeroCreate 65536

        try
            let mutable n = tls.Read(buffer, 0, buffer.Length)

            while n > 0 do
                lock gate (fun () -> received.Write(buffer, 0, n))
                n <- tls.Read(buffer, 0, buffer.Length)
        with _ ->
            ()

    do
        tls.AuthenticateAsClient host
        Thread(read, IsBackground = true).Start()

        let login =
            $"Action: Login\r\nActionID: monitor-login\r\nUsername: {user}\r\nSecret: {secret}\r\nEvents: on\r\n\r\n"

        tls.Write(Encoding.ASCII.GetBytes login)

    /// Every byte received so far, as Asterisk sent it.
    member _.Bytes = lock gate (fun () -> received.ToArray())

    /// Every message received so far (the banner line is not one).
    member this.Events = parse (Encoding.UTF8.GetString this.Bytes)

    /// Waits up to `within` until `check` holds for the events so far.
    member this.Await (within: TimeSpan) (check: Event list -> bool) =
        eventually within (fun () -> check this.Events)

    /// Sends `Action: CoreShowChannels` and waits for its list: the channels Asterisk has now.
    member this.Channels() =
        let id = $"channels-{Guid.NewGuid():N}"
        tls.Write(Encoding.ASCII.GetBytes $"Action: CoreShowChannels\r\nActionID: {id}\r\n\r\n")

        let ofThisList () =
            this.Events |> List.filter (fun e -> field "ActionID" e = id)

        eventually (TimeSpan.FromSeconds 5.0) (fun () ->
            ofThisList () |> List.exists (isEvent "CoreShowChannelsComplete"))
        |> ignore

        ofThisList () |> List.filter (isEvent "CoreShowChannel")

    /// Logs off and ends the session; `Bytes` keeps what was received, up to Asterisk's Goodbye.
    member _.Logoff() =
        try
            tls.Write(Encoding.ASCII.GetBytes "Action: Logoff\r\nActionID: monitor-logoff\r\n\r\n")
            Thread.Sleep 300
        with _ ->
            ()

    interface IDisposable with
        member _.Dispose() =
            tls.Dispose()
            tcp.Dispose()

/// A monitor on the local Asterisk from the `asterisk.sh env` and `monitor-env` settings; waits for its login.
let connect (env: (string * string) list) (monitorEnv: (string * string) list) =
    let get (pairs: (string * string) list) key =
        pairs |> List.find (fst >> (=) key) |> snd

    let monitor =
        new Monitor(
            get env "Ami__Host",
            int (get env "Ami__Port"),
            get env "Ami__CaCertificate",
            get monitorEnv "AMI_MONITOR_USERNAME",
            get monitorEnv "AMI_MONITOR_SECRET"
        )

    if not (monitor.Await (TimeSpan.FromSeconds 5.0) (List.exists (fun e -> field "ActionID" e = "monitor-login"))) then
        failwith "the monitor's Login got no answer"

    monitor
