/// The sidecar as a black box: a child process started from its published DLL, called over HTTP.
module Bench.Sidecar

open System
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Http
open System.Net.Sockets
open System.Text
open System.Threading
open System.Threading.Tasks

/// A port the kernel says is free now.
let freePort () =
    use listener = new TcpListener(IPAddress.Loopback, 0)
    listener.Start()
    (listener.LocalEndpoint :?> IPEndPoint).Port

/// One `key: value kB` line of /proc/<pid>/status, in MiB.
let procStatusMiB (pid: int) (key: string) =
    try
        File.ReadAllLines $"/proc/{pid}/status"
        |> Array.tryFind (fun l -> l.StartsWith(key + ":", StringComparison.Ordinal))
        |> Option.map (fun l ->
            let kb = l.Substring(key.Length + 1).Trim().Split(' ').[0]
            float (int64 kb) / 1024.0)
    with _ ->
        None

/// Resets the process's peak RSS (VmHWM) so that the next reading is the peak from now on.
let resetPeakRss (pid: int) =
    try
        File.WriteAllText($"/proc/{pid}/clear_refs", "5")
        true
    with _ ->
        false

type Running = {
    Process: Process
    Port: int
    BaseUri: Uri
    Log: string
    /// Milliseconds from Process.Start to the first 200 from /healthz.
    ReadyMs: float
}

let private healthy (client: HttpClient) (uri: Uri) =
    task {
        try
            use! response = client.GetAsync(Uri(uri, "/healthz"))
            return response.StatusCode = HttpStatusCode.OK
        with _ ->
            return false
    }

/// Starts `dotnet <dll>` in the DLL's directory (as the image's WORKDIR /app: appsettings.json is read
/// from the working directory) with the current environment plus `extraEnv`, stdout and stderr to `log`,
/// and waits (at most `timeout`) for /healthz to answer 200.
let start (dll: string) (extraEnv: (string * string) list) (log: string) (timeout: TimeSpan) =
    task {
        let port = freePort ()
        let uri = Uri $"http://127.0.0.1:{port}"

        let info =
            if dll.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) then
                ProcessStartInfo("dotnet", [ dll ])
            else
                ProcessStartInfo(Path.GetFullPath dll) // an executable: apphost or self-contained

        info.UseShellExecute <- false
        info.WorkingDirectory <- Path.GetDirectoryName(Path.GetFullPath dll)
        info.RedirectStandardOutput <- true
        info.RedirectStandardError <- true
        info.Environment["ASPNETCORE_URLS"] <- string uri

        for k, v in extraEnv do
            info.Environment[k] <- v

        let writer = new StreamWriter(log, false, Encoding.UTF8, AutoFlush = true)
        let gate = obj ()

        let sink (e: DataReceivedEventArgs) =
            if not (isNull e.Data) then
                lock gate (fun () -> writer.WriteLine e.Data)

        let started = Stopwatch.GetTimestamp()
        let proc = Process.Start info
        proc.OutputDataReceived.Add sink
        proc.ErrorDataReceived.Add sink
        proc.BeginOutputReadLine()
        proc.BeginErrorReadLine()
        proc.Exited.Add(fun _ -> lock gate (fun () -> writer.Flush()))

        use probe = new HttpClient(Timeout = TimeSpan.FromSeconds 2.0)
        let deadline = DateTime.UtcNow + timeout
        let mutable ready = false

        while not ready && not proc.HasExited && DateTime.UtcNow < deadline do
            let! ok = healthy probe uri

            if ok then ready <- true else do! Task.Delay 5

        if not ready then
            try
                proc.Kill true
            with _ ->
                ()

            failwithf "the sidecar did not answer /healthz within %O (exited: %b); see %s" timeout proc.HasExited log

        return {
            Process = proc
            Port = port
            BaseUri = uri
            Log = log
            ReadyMs = Stats.elapsedMs started
        }
    }

[<System.Runtime.InteropServices.DllImport("libc", SetLastError = true)>]
extern int kill(int pid, int signal)

/// SIGTERM (graceful), then SIGKILL after `grace`.
let stop (running: Running) (grace: TimeSpan) =
    if not running.Process.HasExited then
        kill (running.Process.Id, 15) |> ignore

        if not (running.Process.WaitForExit grace) then
            running.Process.Kill true
            running.Process.WaitForExit 5000 |> ignore

/// An HTTP client like a reverse proxy's: keep-alive connections, as many as the load needs.
let client () =
    let handler =
        new SocketsHttpHandler(
            UseProxy = false,
            MaxConnectionsPerServer = 1024,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes 5.0
        )

    new HttpClient(handler, Timeout = TimeSpan.FromSeconds 30.0)

/// `GET /healthz`: the HTTP round trip alone (Kestrel, routing, no AMI). Ok on 200.
let health (http: HttpClient) (baseUri: Uri) (_: int) : Task<Result<unit, string>> =
    task {
        use! response = http.GetAsync(Uri(baseUri, "/healthz"))
        let! _ = response.Content.ReadAsStringAsync()

        if response.StatusCode = HttpStatusCode.OK then
            return Ok()
        else
            return Error $"healthz: {int response.StatusCode}"
    }

/// `POST /callback` with a well-formed number the sidecar must refuse after the full validation
/// (a Jamaican +1 876 number: libphonenumber runs, then "not US or Canada"): bind + validate + JSON,
/// no AMI. Ok on 422.
let refused (http: HttpClient) (baseUri: Uri) (index: int) : Task<Result<unit, string>> =
    task {
        use content =
            new FormUrlEncodedContent(
                [
                    Collections.Generic.KeyValuePair("phoneNumber", $"1876555{100 + index % 900:D4}")
                    Collections.Generic.KeyValuePair("language", Floor.languageFor index)
                ]
            )

        use! response = http.PostAsync(Uri(baseUri, "/callback"), content)
        let! body = response.Content.ReadAsStringAsync()

        if int response.StatusCode = 422 then
            return Ok()
        else
            return Error $"refused: {int response.StatusCode} {body}"
    }

/// One `POST /callback` (form-encoded, as the demo page sends it). Ok on 200 with all five booleans true.
let call (http: HttpClient) (baseUri: Uri) (index: int) : Task<Result<unit, string>> =
    task {
        let number = Floor.numberFor index
        let lang = Floor.languageFor index

        use content =
            new FormUrlEncodedContent(
                [
                    Collections.Generic.KeyValuePair("phoneNumber", number)
                    Collections.Generic.KeyValuePair("language", lang)
                ]
            )

        try
            use! response = http.PostAsync(Uri(baseUri, "/callback"), content)
            let! body = response.Content.ReadAsStringAsync()

            let allTrue =
                [ "socket"; "amiLogin"; "amiOrig"; "amiLogoff"; "callSpooled" ]
                |> List.forall (fun k -> body.Contains($"\"{k}\":true"))

            if response.StatusCode = HttpStatusCode.OK && allTrue then
                return Ok()
            else
                return Error $"sidecar: {int response.StatusCode} {body}"
        with
        | :? TaskCanceledException -> return Error "sidecar: timed out"
        | e -> return Error("sidecar: " + e.GetType().Name + ": " + e.Message)
    }
