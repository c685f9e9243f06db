/// `Callback.Bench status`: the published sidecar as its own process, configured for FakeAsterisk (plain
/// TCP, a monitor user), then for each storm rate a few untimed calls and the measured ones.
module Callback.Bench.StatusBench

open System
open System.Diagnostics
open System.IO
open System.Net.Http
open System.Net.Sockets
open System.Threading
open Callback.Bench.StatusLatency

type Options = {
    /// The sidecar to run: a `Callback.dll` (run with `dotnet`) or the Native AOT executable.
    Sidecar: string
    /// Unrelated events per second sent to the monitor, one phase each.
    Rates: float list
    Calls: int
    Warmup: int
}

/// One storm rate's results: the calls measured, the storm rate reached, the sidecar's CPU use meanwhile.
type Phase = {
    Rate: float
    Calls: CallResult list
    /// Storm events written per second during the measured calls.
    Achieved: float
    /// The sidecar's CPU time per wall-clock second during the measured calls (1.0 = one core).
    SidecarCores: float
    Seconds: float
    /// The monitor's own counts meanwhile (`/metrics`): events read, events dropped; None if not exported.
    Received: float option
    Dropped: float option
}

let private freePort () =
    use listener = new TcpListener(Net.IPAddress.Loopback, 0)
    listener.Start()
    (listener.LocalEndpoint :?> Net.IPEndPoint).Port

/// CPU seconds the process has used (user + system), from /proc.
let private cpuSeconds (pid: int) =
    let stat = File.ReadAllText $"/proc/{pid}/stat"
    let fields = stat.Substring(stat.LastIndexOf ')' + 2).Split ' '
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the command name; in clock ticks.
    float (int64 fields[11] + int64 fields[12]) / 100.0

/// The sidecar process for `server`, listening on `port`; its output kept in `log`.
let private startSidecar (sidecar: string) (server: FakeAsterisk.Server) (port: int) (data: string) (log: string) =
    let info =
        if sidecar.EndsWith ".dll" then
            ProcessStartInfo("dotnet", [ sidecar ])
        else
            ProcessStartInfo(sidecar)

    info.RedirectStandardOutput <- true
    info.RedirectStandardError <- true

    for key, value in
        [
            "ASPNETCORE_URLS", $"http://127.0.0.1:{port}"
            "Ami__Host", "127.0.0.1"
            "Ami__Port", string server.Port
            "Ami__UseTls", "false"
            "Ami__Username", "callback"
            "Ami__Secret", "bench-secret"
            "Monitor__Username", FakeAsterisk.MonitorUser
            "Monitor__Secret", "bench-monitor-secret"
            "Originate__Channel", "PJSIP/{number}@trunk"
            "Data__Path", data
            // One number, called again and again: the limits have tests of their own.
            "Callback__PerClientPerMinute", "100000"
            "Callback__GlobalPerMinute", "100000"
            "Callback__PerNumberIntervalSeconds", "1"
            "Callback__PerNumberPerDay", "1000"
            "Logging__LogLevel__Default", "Warning"
        ] do
        info.Environment[key] <- value

    let proc = Process.Start info
    let output = new StreamWriter(log, AutoFlush = true)

    proc.OutputDataReceived.Add(fun e ->
        if not (isNull e.Data) then
            lock output (fun () -> output.WriteLine e.Data))

    proc.ErrorDataReceived.Add(fun e ->
        if not (isNull e.Data) then
            lock output (fun () -> output.WriteLine e.Data))

    proc.BeginOutputReadLine()
    proc.BeginErrorReadLine()
    proc

let private awaitHealthy (client: HttpClient) (url: string) (proc: Process) =
    let deadline = DateTime.UtcNow.AddSeconds 30.0

    let healthy () =
        try
            client.GetAsync(url + "healthz").Result.IsSuccessStatusCode
        with _ ->
            false

    while not (proc.HasExited || healthy ()) && DateTime.UtcNow < deadline do
        Thread.Sleep 100

    if proc.HasExited || not (healthy ()) then
        failwith "the sidecar did not answer /healthz within 30 s"

/// A counter's value in the sidecar's `/metrics` (Prometheus text), if it exports it.
let private counter (client: HttpClient) (url: string) (name: string) =
    client.GetStringAsync(url + "metrics").Result.Split('\n')
    |> Array.tryFind (fun l -> l.StartsWith(name + " "))
    |> Option.map (fun l -> float (l.Substring(name.Length + 1)))

let private received = "callback_monitor_events_received_total"
let private dropped = "callback_monitor_events_dropped_total"

/// `after - before` of two optional readings.
let private delta before after =
    Option.map2 (fun (b: float) a -> a - b) before after

/// One phase: the storm at `rate` for 2 s, `warmup` untimed calls, then `calls` measured ones.
let private phase (options: Options) client url (server: FakeAsterisk.Server) (pid: int) (rate: float) =
    let random = Random 16
    server.Rate <- rate
    Thread.Sleep 2000

    for _ in 1 .. options.Warmup do
        (measureCall client url server random).Result |> ignore

    let watch = Stopwatch.StartNew()
    let sentBefore, cpuBefore = server.StormSent, cpuSeconds pid

    let receivedBefore, droppedBefore =
        counter client url received, counter client url dropped

    let calls = [ for _ in 1 .. options.Calls -> (measureCall client url server random).Result ]

    let seconds = watch.Elapsed.TotalSeconds
    eprintfn $"status: {rate} events/s: {calls.Length} calls in {seconds:F1} s"

    {
        Rate = rate
        Calls = calls
        Achieved = float (server.StormSent - sentBefore) / seconds
        SidecarCores = (cpuSeconds pid - cpuBefore) / seconds
        Seconds = seconds
        Received = delta receivedBefore (counter client url received)
        Dropped = delta droppedBefore (counter client url dropped)
    }

/// Runs every phase against one sidecar process; its log is kept in `work`.
let run (options: Options) (work: string) =
    // The replay must walk a call through to its end, or nothing below measures what it claims.
    let walked = steps "00000000000000000000000000000000-1" |> List.map _.State
    eprintfn $"""status: each call replays {String.concat " → " walked}"""

    if List.last walked <> "ended" then
        failwith $"the replayed recording does not end its call: %A{walked}"

    Directory.CreateDirectory work |> ignore
    let data = Directory.CreateTempSubdirectory("callback-bench-data-").FullName
    use server = new FakeAsterisk.Server(storm ())
    let port = freePort ()
    let url = $"http://127.0.0.1:{port}/"

    use proc =
        startSidecar options.Sidecar server port data (Path.Combine(work, "status-sidecar.log"))

    use client = new HttpClient(Timeout = TimeSpan.FromSeconds 30.0)

    try
        awaitHealthy client url proc

        if not (server.MonitorReady.Wait(TimeSpan.FromSeconds 15.0)) then
            failwith "the sidecar's monitor did not log in and reconcile within 15 s"

        let phases = options.Rates |> List.map (phase options client url server proc.Id)
        phases, server.MonitorLogins
    finally
        if not proc.HasExited then
            proc.Kill()
            proc.WaitForExit()

        Directory.Delete(data, true)
