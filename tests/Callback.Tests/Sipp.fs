/// SIPp (Debian's `sip-tester`) playing the phones of a real SIP call: the carrier trunk that is the visitor's
/// phone, the owner's phone, an inbound caller. One scenario of tests/sip/ per phone, started on its SIP port
/// of 127.0.0.1, with its message trace, exit status and the RTP its media side heard and sent.
module Callback.Tests.Sipp

open System
open System.Collections.Concurrent
open System.IO
open System.Net
open System.Net.Sockets
open System.Text.RegularExpressions
open System.Threading
open Callback.Tests.Programs

/// The media side of a test phone: on a free UDP port of 127.0.0.1 (the port its SDP offers), it sends a
/// 20 ms PCMU packet every 20 ms to every address that sent it RTP (symmetric RTP, as Asterisk does), each
/// payload filled with its own `voice` byte, and counts what it hears. A payload filled with `peerVoice` is
/// the other phone's, carried through Asterisk's bridge; any other payload is a prompt Asterisk played.
type RtpPhone(voice: byte, peerVoice: byte) =
    let socket = new UdpClient(IPEndPoint(IPAddress.Loopback, 0))
    let remotes = ConcurrentDictionary<IPEndPoint, int>()
    let stop = new CancellationTokenSource()
    let mutable sent = 0
    let mutable fromPeer = 0
    let mutable prompt = 0
    let mutable promptBeforePeer = 0

    let hear (packet: byte array) =
        let payload = packet.AsSpan(min 12 packet.Length)

        if payload.Length > 0 && payload.IndexOfAnyExcept peerVoice < 0 then
            Interlocked.Increment &fromPeer |> ignore
        else
            Interlocked.Increment &prompt |> ignore

            if Volatile.Read &fromPeer = 0 then
                Interlocked.Increment &promptBeforePeer |> ignore

    let receive () =
        try
            while not stop.IsCancellationRequested do
                let result = socket.ReceiveAsync(stop.Token).AsTask().Result
                remotes.TryAdd(result.RemoteEndPoint, 0) |> ignore
                hear result.Buffer
        with _ ->
            ()

    let packet (sequence: int) =
        let bytes = Array.create (12 + 160) voice
        bytes[0] <- 0x80uy // RTP version 2, payload type 0 (PCMU) in the next byte
        bytes[1] <- 0uy

        BitConverter.TryWriteBytes(bytes.AsSpan(2, 2), IPAddress.HostToNetworkOrder(int16 sequence))
        |> ignore

        BitConverter.TryWriteBytes(bytes.AsSpan(4, 4), IPAddress.HostToNetworkOrder(sequence * 160))
        |> ignore

        BitConverter.TryWriteBytes(bytes.AsSpan(8, 4), IPAddress.HostToNetworkOrder(int voice))
        |> ignore

        bytes

    let speak () =
        let mutable sequence = 0

        while not stop.IsCancellationRequested do
            Thread.Sleep 20
            sequence <- sequence + 1

            for remote in remotes.Keys do
                try
                    socket.Send(packet sequence, remote) |> ignore
                    Interlocked.Increment &sent |> ignore
                with
                | :? SocketException
                | :? ObjectDisposedException -> ()

    do
        Thread(receive, IsBackground = true).Start()
        Thread(speak, IsBackground = true).Start()

    member _.Port = (socket.Client.LocalEndPoint :?> IPEndPoint).Port
    /// RTP packets sent to Asterisk.
    member _.Sent = Volatile.Read &sent
    /// Packets carrying the other phone's voice: it reached this phone through the bridge.
    member _.FromPeer = Volatile.Read &fromPeer
    /// Packets of a prompt Asterisk played (the announcement, the whisper).
    member _.Prompt = Volatile.Read &prompt
    /// Prompt packets heard before the first packet of the other phone: what was played before the bridge.
    member _.PromptBeforePeer = Volatile.Read &promptBeforePeer

    interface IDisposable with
        member _.Dispose() =
            stop.Cancel()
            socket.Dispose()

/// One SIP message of SIPp's trace: whether SIPp sent or received it, and its text.
type Message = { Sent: bool; Text: string }

/// The first line of a message (`INVITE sip:… SIP/2.0`, `SIP/2.0 486 Busy Here`).
let firstLine (message: Message) = (message.Text.Split('\n')[0]).Trim()

/// The value of header `name` in a message ("" when absent).
let header (name: string) (message: Message) =
    let m =
        Regex.Match(
            message.Text,
            $@"^{Regex.Escape name}:\s*(.*?)\r?$",
            RegexOptions.Multiline ||| RegexOptions.IgnoreCase
        )

    if m.Success then m.Groups[1].Value else ""

/// SIPp's message trace (`-trace_msg`): messages separated by lines of dashes and a timestamp, each headed
/// `UDP message sent (N bytes):` or `UDP message received [N] bytes :`.
let parseTrace (text: string) =
    Regex.Split(text, @"^-{20,}.*$", RegexOptions.Multiline)
    |> Array.choose (fun block ->
        let m =
            Regex.Match(block, @"^\s*UDP message (sent|received)[^\n]*\n(.*)$", RegexOptions.Singleline)

        if m.Success then
            Some {
                Sent = m.Groups[1].Value = "sent"
                Text = m.Groups[2].Value.Trim()
            }
        else
            None)
    |> List.ofArray

/// Requests SIPp received with `method` (e.g. every INVITE Asterisk sent this phone).
let received (method: string) (messages: Message list) =
    messages
    |> List.filter (fun m -> not m.Sent && (firstLine m).StartsWith(method + " "))

/// Whether SIPp is bound to UDP `port` of 127.0.0.1 (from /proc/net/udp: local address `0100007F:<hex port>`).
let private boundUdp (port: int) =
    File.ReadAllLines "/proc/net/udp"
    |> Array.exists (fun line -> line.Contains $" 0100007F:{port:X4} ")

/// A running SIPp phone: its scenario's process, its trace file, its media side.
type Phone(name: string, sipPort: int, proc: Launched, directory: string, media: RtpPhone) =
    member _.Name = name
    member _.SipPort = sipPort
    member _.Media = media
    member _.Output = proc.Output

    /// The SIP messages it has sent and received so far.
    member _.Messages =
        let file = Path.Combine(directory, "messages.log")

        if File.Exists file then
            use stream =
                new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite)

            use reader = new StreamReader(stream)
            parseTrace (reader.ReadToEnd())
        else
            []

    /// Waits up to `within` for SIPp to end (it ends after its `-m` calls); its exit code, or None.
    member _.AwaitExit(within: TimeSpan) =
        if proc.Process.WaitForExit within then
            Some proc.Process.ExitCode
        else
            None

    interface IDisposable with
        member _.Dispose() =
            (proc :> IDisposable).Dispose()
            (media :> IDisposable).Dispose()

            try
                Directory.Delete(directory, true)
            with _ ->
                ()

/// The scenario file `tests/sip/<scenario>.xml`.
let scenarioFile (scenario: string) =
    Path.Combine(repoRoot, "tests", "sip", scenario + ".xml")

/// SIPp's options for `scenario` listening on 127.0.0.1:`sipPort`, its SDP offering `rtpPort`, its trace in
/// `directory`; `calls` calls, then it exits; `options` are the scenario's own (`set`, `key`).
let arguments scenario sipPort rtpPort directory calls (options: string list) = [
    "-sf"
    scenarioFile scenario
    "-i"
    "127.0.0.1"
    "-p"
    string sipPort
    "-mi"
    "127.0.0.1"
    // SIPp's own media port (unused: the RtpPhone answers on rtp_port) and control port, away from Asterisk's;
    // the control socket on loopback too (SIPp binds it to every address otherwise).
    "-mp"
    string (rtpPort + 1)
    "-ci"
    "127.0.0.1"
    "-cp"
    string (sipPort + 3000)
    "-key"
    "rtp_port"
    string rtpPort
    "-m"
    string calls
    "-timeout"
    "60"
    "-timeout_error"
    "-nostdin"
    "-trace_msg"
    "-message_file"
    Path.Combine(directory, "messages.log")
    "-trace_screen"
    "-screen_file"
    Path.Combine(directory, "screen.log")
    yield! options
]

/// A scenario variable (`<Global variables=…>`: ring_ms, talk_ms): `-set name value`.
let variable (name: string) (value: string) = [ "-set"; name; value ]

/// A keyword of the scenario's messages (`[status]`, `[reason]`): `-key name value`.
let keyword (name: string) (value: string) = [ "-key"; name; value ]

/// Starts `scenario` as phone `name` on 127.0.0.1:`sipPort` for `calls` calls, its media speaking with
/// `voice` and recognising `peerVoice`; waits (up to 10 s) until SIPp listens. Fails the test otherwise.
let start name scenario sipPort calls options (voice: byte, peerVoice: byte) =
    if boundUdp sipPort then
        failwithf "127.0.0.1:%d is taken before SIPp %s starts (a phone of an earlier test left running?)" sipPort name

    let directory = Directory.CreateTempSubdirectory("sipp-").FullName
    let media = new RtpPhone(voice, peerVoice)

    let proc =
        launch [] "sipp" (arguments scenario sipPort media.Port directory calls options)

    let phone = new Phone(name, sipPort, proc, directory, media)

    if
        not (eventually (TimeSpan.FromSeconds 10.0) (fun () -> proc.Process.HasExited || boundUdp sipPort))
        || proc.Process.HasExited
    then
        let output = proc.Output
        (phone :> IDisposable).Dispose()
        failwithf "SIPp %s (%s) did not listen on 127.0.0.1:%d:\n%s" name scenario sipPort (tail 20 output)

    phone

/// Is SIPp here? If not and we are root, install Debian's `sip-tester` (as .ci/install-packages.sh does).
let available () =
    let present () =
        (run [] (TimeSpan.FromSeconds 10.0) "sipp" [ "-v" ]).Output.Contains "SIPp"

    if present () then
        Ok()
    else
        let install =
            run [ "DEBIAN_FRONTEND", "noninteractive" ] (TimeSpan.FromMinutes 5.0) "apt-get" [
                "install"
                "-y"
                "-qq"
                "--no-install-recommends"
                "sip-tester"
            ]

        if present () then
            Ok()
        else
            Error $"sipp is not installed and installing sip-tester failed: {tail 5 install.Output}"
