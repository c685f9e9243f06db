/// Start-to-ready time and idle RSS of the published sidecar.
///
///   CallbackStartupBench --variant 'LABEL|PATH/Callback.dll|K=V K=V' ...   (or PATH/Callback, an executable) [--runs N] [--rss-runs M]
///                        [--idle-seconds S] [--out FILE]
///
/// For each run, every variant is started once, in turn (so a change in the machine's load falls on all
/// variants alike): `dotnet Callback.dll` in the DLL's directory, with the current environment plus the
/// variant's; the clock starts just before the process is created and stops at the first `200` from
/// `GET /healthz`, polled about every millisecond over a fresh loopback connection. In the first
/// `--rss-runs` runs the process then stays idle `--idle-seconds` before VmRSS is read from /proc.
/// Every process is stopped with SIGTERM (SIGKILL after 10 s) before the next one starts.
module Bench.Startup

open System
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Sockets
open System.Text
open System.Threading

type Variant = {
    Label: string
    Dll: string
    Env: (string * string) list
}

type Sample = {
    ReadyMs: float
    CpuMsAtReady: float
    RssMiB: float option
    RssAnonMiB: float option
    RssFileMiB: float option
}

let private freePort () =
    use listener = new TcpListener(IPAddress.Loopback, 0)
    listener.Start()
    (listener.LocalEndpoint :?> IPEndPoint).Port

let private request (port: int) =
    Encoding.ASCII.GetBytes $"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"

/// One probe: true when /healthz answered 200. Connection refused (not listening yet) is false at once.
let private probe (port: int) (bytes: byte[]) (buffer: byte[]) =
    try
        use socket =
            new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp, NoDelay = true)

        socket.ReceiveTimeout <- 2000
        socket.SendTimeout <- 2000
        socket.Connect(IPAddress.Loopback, port)
        socket.Send bytes |> ignore
        let mutable read = 0
        let mutable fin = false

        while not fin && read < 12 do
            let n = socket.Receive(buffer, read, buffer.Length - read, SocketFlags.None)
            if n = 0 then fin <- true else read <- read + n

        read >= 12 && Encoding.ASCII.GetString(buffer, 0, 12) = "HTTP/1.1 200"
    with _ ->
        false

let private status (pid: int) (key: string) =
    try
        File.ReadAllLines $"/proc/{pid}/status"
        |> Array.tryFind (fun l -> l.StartsWith(key + ":", StringComparison.Ordinal))
        |> Option.map (fun l -> float (int64 (l.Substring(key.Length + 1).Trim().Split(' ').[0])) / 1024.0)
    with _ ->
        None

/// utime + stime of the process so far, in ms (clock ticks of 10 ms).
let private cpuMs (pid: int) =
    try
        let stat = File.ReadAllText $"/proc/{pid}/stat"
        let fields = stat.Substring(stat.LastIndexOf ')' + 2).Split ' '
        // fields[0] is the state (field 3); utime and stime are fields 14 and 15.
        float (int64 fields[11] + int64 fields[12]) * 10.0
    with _ ->
        nan

[<Runtime.InteropServices.DllImport("libc", SetLastError = true)>]
extern int kill(int pid, int signal)

let private stop (p: Process) =
    if not p.HasExited then
        kill (p.Id, 15) |> ignore

        if not (p.WaitForExit 10000) then
            p.Kill true
            p.WaitForExit 5000 |> ignore

let private startOnce (v: Variant) (idle: TimeSpan option) : Sample =
    let port = freePort ()
    let bytes = request port
    let buffer = Array.zeroCreate<byte> 64
    // A DLL runs on the shared runtime (`dotnet Callback.dll`); anything else is an executable (apphost,
    // self-contained).
    let info =
        if v.Dll.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) then
            ProcessStartInfo("dotnet", [ v.Dll ])
        else
            ProcessStartInfo(Path.GetFullPath v.Dll)

    info.UseShellExecute <- false
    info.WorkingDirectory <- Path.GetDirectoryName(Path.GetFullPath v.Dll)
    info.RedirectStandardOutput <- true
    info.RedirectStandardError <- true
    info.Environment["ASPNETCORE_URLS"] <- $"http://127.0.0.1:{port}"

    for k, value in v.Env do
        info.Environment[k] <- value

    // Warm the probe path in this process before the clock starts (nothing listens yet).
    probe port bytes buffer |> ignore
    let errors = StringBuilder()
    let started = Stopwatch.GetTimestamp()
    use p = Process.Start info
    p.OutputDataReceived.Add ignore

    p.ErrorDataReceived.Add(fun e ->
        if not (isNull e.Data) && errors.Length < 4000 then
            lock errors (fun () -> errors.AppendLine e.Data |> ignore))

    p.BeginOutputReadLine()
    p.BeginErrorReadLine()
    let deadline = started + 30L * Stopwatch.Frequency
    let mutable ready = false

    try
        while not ready && not p.HasExited && Stopwatch.GetTimestamp() < deadline do
            if probe port bytes buffer then
                ready <- true
            else
                Thread.Sleep 1

        let readyMs =
            float (Stopwatch.GetTimestamp() - started) * 1000.0 / float Stopwatch.Frequency

        if not ready then
            failwithf "%s: no 200 from /healthz within 30 s (exited: %b)\n%s" v.Label p.HasExited (errors.ToString())

        let cpu = cpuMs p.Id

        let rss, anon, file =
            match idle with
            | Some wait ->
                Thread.Sleep wait
                status p.Id "VmRSS", status p.Id "RssAnon", status p.Id "RssFile"
            | None -> None, None, None

        {
            ReadyMs = readyMs
            CpuMsAtReady = cpu
            RssMiB = rss
            RssAnonMiB = anon
            RssFileMiB = file
        }
    finally
        stop p

let private median (xs: float list) =
    match xs |> List.filter (Double.IsNaN >> not) |> List.sort with
    | [] -> nan
    | sorted ->
        let n = sorted.Length

        if n % 2 = 1 then
            sorted[n / 2]
        else
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0

let private f0 (x: float) =
    if Double.IsNaN x then
        "–"
    else
        x.ToString("0", Globalization.CultureInfo.InvariantCulture)

let private f1 (x: float) =
    if Double.IsNaN x then
        "–"
    else
        x.ToString("0.0", Globalization.CultureInfo.InvariantCulture)

let rec private parse (variants, runs, rssRuns, idle, out) args =
    match args with
    | [] -> List.rev variants, runs, rssRuns, idle, out
    | "--variant" :: (v: string) :: rest ->
        let parts = v.Split('|')

        let env =
            if parts.Length > 2 then
                parts[2].Split(' ', StringSplitOptions.RemoveEmptyEntries)
                |> Array.map (fun kv ->
                    let i = kv.IndexOf '='
                    kv.Substring(0, i), kv.Substring(i + 1))
                |> List.ofArray
            else
                []

        parse
            ({
                Label = parts[0]
                Dll = parts[1]
                Env = env
             }
             :: variants,
             runs,
             rssRuns,
             idle,
             out)
            rest
    | "--runs" :: v :: rest -> parse (variants, int v, rssRuns, idle, out) rest
    | "--rss-runs" :: v :: rest -> parse (variants, runs, int v, idle, out) rest
    | "--idle-seconds" :: v :: rest -> parse (variants, runs, rssRuns, float v, out) rest
    | "--out" :: v :: rest -> parse (variants, runs, rssRuns, idle, Some v) rest
    | other :: _ -> failwithf "unknown argument %s" other

[<EntryPoint>]
let main argv =
    let variants, runs, rssRuns, idleSeconds, out =
        parse ([], 10, 3, 5.0, None) (List.ofArray argv)

    if variants.IsEmpty then
        failwith "give at least one --variant 'LABEL|DLL|K=V ...'"

    let samples = Collections.Generic.Dictionary<string, Sample list>()

    for v in variants do
        samples[v.Label] <- []

    // One start of each variant, not measured: the DLLs and the runtime are then in the page cache.
    for v in variants do
        startOnce v None |> ignore

    for run in 1..runs do
        for v in variants do
            let idle =
                if run <= rssRuns then
                    Some(TimeSpan.FromSeconds idleSeconds)
                else
                    None

            let s = startOnce v idle
            samples[v.Label] <- samples[v.Label] @ [ s ]

            let rss =
                match s.RssMiB with
                | Some r -> $", idle RSS {f1 r} MiB"
                | None -> ""

            eprintfn "run %d/%d %-40s ready %6.1f ms%s" run runs v.Label s.ReadyMs rss

    let md = StringBuilder()
    let line (s: string) = md.AppendLine s |> ignore

    line
        $"| variant | environment | start → 200 median (ms) | min | max | CPU ms at ready (median) | idle RSS median (MiB, after {f0 idleSeconds} s) | of which anon / file | starts / RSS samples |"

    line "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"

    for v in variants do
        let ss = samples[v.Label]
        let ready = ss |> List.map _.ReadyMs
        let pick f = ss |> List.choose f
        let rss = pick _.RssMiB

        let env =
            if v.Env.IsEmpty then
                "–"
            else
                v.Env |> List.map (fun (k, x) -> $"`{k}={x}`") |> String.concat " "

        line
            $"| {v.Label} | {env} | {f1 (median ready)} | {f1 (List.min ready)} | {f1 (List.max ready)} | {f0 (median (ss |> List.map _.CpuMsAtReady))} | {f1 (median rss)} | {f1 (median (pick _.RssAnonMiB))} / {f1 (median (pick _.RssFileMiB))} | {ss.Length} / {rss.Length} |"

    let text = md.ToString()

    match out with
    | Some path -> File.WriteAllText(path, text)
    | None -> printf "%s" text

    0
