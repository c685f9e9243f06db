/// The demo page as a visitor uses it: Debian's headless Chromium (driven by tests/browser/demo-page.mjs)
/// against the real sidecar program and the real local Asterisk, with Asterisk's own log as the proof.
module Callback.Tests.BrowserTests

open System
open System.Collections.Concurrent
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Http
open System.Net.Sockets
open System.Runtime.InteropServices
open System.Text
open System.Text.Json
open System.Text.RegularExpressions
open System.Threading
open Expecto
open Callback.Tests.TestSidecar
open Callback.Tests.RealAsteriskTests

let private browserDir = Path.Combine(repoRoot, "tests", "browser")
let private chromium = "/usr/bin/chromium"

/// Kept beside the test program (not committed), to be looked at after a run.
let private screenshots = Path.Combine(AppContext.BaseDirectory, "screenshots")

/// Why the browser tests cannot run here (skip), or what went wrong preparing them (fail).
type private Blocker =
    | Unavailable of string
    | Broken of string

/// Runs a program to completion (at most `timeout`); its exit code and its output, both streams together.
let private runTool (file: string) (args: string list) (directory: string) (timeout: TimeSpan) =
    let info =
        ProcessStartInfo(
            file,
            args,
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true
        )

    info.Environment["DEBIAN_FRONTEND"] <- "noninteractive"

    try
        use proc = Process.Start info
        let out = proc.StandardOutput.ReadToEndAsync()
        let err = proc.StandardError.ReadToEndAsync()

        if proc.WaitForExit timeout then
            proc.ExitCode, out.Result + err.Result
        else
            proc.Kill true
            -1, $"{file} did not finish within {timeout.TotalSeconds} s"
    with :? ComponentModel.Win32Exception as e ->
        -1, $"{file}: {e.Message}"

/// Chromium (installed from Debian's packages when missing), Node.js 20+ and playwright-core (`npm ci`).
let private browserTools =
    lazy
        (if not (OperatingSystem.IsLinux()) then
             Error(Unavailable "a real Asterisk and Debian's Chromium need Linux")
         elif Environment.UserName <> "root" then
             Error(Unavailable "a real Asterisk (chroot) and installing Chromium need root")
         else
             if not (File.Exists chromium) then
                 eprintfn "Browser tests: installing Debian's chromium package…"

                 let install =
                     "-o DPkg::Lock::Timeout=600 install -y --no-install-recommends chromium".Split ' '

                 match runTool "apt-get" (List.ofArray install) repoRoot (TimeSpan.FromMinutes 20.0) with
                 | 0, _ -> ()
                 | _, output -> eprintfn "%s" output

             let nodeCode, nodeVersion =
                 runTool "node" [ "--version" ] browserDir (TimeSpan.FromSeconds 30.0)

             let nodeMajor =
                 Regex.Match(nodeVersion, @"^v(\d+)\.")
                 |> fun m -> if m.Success then int m.Groups[1].Value else 0

             if not (File.Exists chromium) then
                 Error(Unavailable $"{chromium} is missing and `apt-get install chromium` did not install it")
             elif nodeCode <> 0 then
                 Error(Unavailable $"Node.js is not on PATH ({nodeVersion.Trim()})")
             elif nodeMajor < 20 then
                 Error(Unavailable $"playwright-core needs Node.js 20 or later, this is {nodeVersion.Trim()}")
             elif Directory.Exists(Path.Combine(browserDir, "node_modules", "playwright-core")) then
                 Ok()
             else
                 match runTool "npm" [ "ci"; "--no-audit"; "--no-fund" ] browserDir (TimeSpan.FromMinutes 5.0) with
                 | 0, _ -> Ok()
                 | _, output -> Error(Broken $"npm ci in tests/browser failed:\n{output}"))

[<DllImport("libc", SetLastError = true)>]
extern int private kill(int pid, int signal)

let private SIGTERM = 15

/// A loopback port nobody listens on right now.
let private freePort () =
    let listener = new TcpListener(IPAddress.Loopback, 0)
    listener.Start()
    let port = (listener.LocalEndpoint :?> IPEndPoint).Port
    listener.Stop()
    port

/// The real sidecar program (the Release build), configured like a deployment through environment
/// variables, in demo mode on a free loopback port; stopped by its pid with SIGTERM when disposed.
type private SidecarProcess(settings: (string * string) list) =
    let port = freePort ()
    let output = ConcurrentQueue<string>()

    let program =
        Path.Combine(repoRoot, "src", "Callback", "bin", "Release", "net10.0", "Callback.dll")

    let info =
        ProcessStartInfo(
            "dotnet",
            [ program ],
            WorkingDirectory = repoRoot,
            RedirectStandardOutput = true,
            RedirectStandardError = true
        )

    do
        for key, value in settings do
            info.Environment[key] <- value

        info.Environment["Demo__Enabled"] <- "true"
        info.Environment["ASPNETCORE_URLS"] <- $"http://127.0.0.1:{port}"

    let proc = Process.Start info

    do
        let keep (e: DataReceivedEventArgs) =
            if not (isNull e.Data) then
                output.Enqueue e.Data

        proc.OutputDataReceived.Add keep
        proc.ErrorDataReceived.Add keep
        proc.BeginOutputReadLine()
        proc.BeginErrorReadLine()

    member _.Url = $"http://127.0.0.1:{port}/"
    member _.Output = String.Join("\n", output)

    /// Waits (up to 30 s) until `/healthz` answers 200; false if the program exits or never answers.
    member this.AwaitHealthy() =
        use client = new HttpClient(Timeout = TimeSpan.FromSeconds 2.0)
        let deadline = Stopwatch.StartNew()

        let healthy () =
            try
                client.GetAsync(this.Url + "healthz").Result.IsSuccessStatusCode
            with _ ->
                false

        let mutable ok = healthy ()

        while not ok && not proc.HasExited && deadline.Elapsed < TimeSpan.FromSeconds 30.0 do
            Thread.Sleep 200
            ok <- healthy ()

        ok

    interface IDisposable with
        member _.Dispose() =
            if not proc.HasExited then
                kill (proc.Id, SIGTERM) |> ignore

                if not (proc.WaitForExit(TimeSpan.FromSeconds 10.0)) then
                    proc.Kill()
                    proc.WaitForExit()

            proc.Dispose()

/// The sidecar for the local Asterisk (the `Ami__…`/`Originate__…` lines of `asterisk.sh env`), healthy.
let private startSidecar (env: (string * string) list) =
    let sidecar = new SidecarProcess(env |> List.filter (fun (k, _) -> k.Contains "__"))

    if not (sidecar.AwaitHealthy()) then
        (sidecar :> IDisposable).Dispose()
        failtestf "the sidecar did not answer /healthz within 30 s:\n%s" sidecar.Output

    sidecar

/// What the visitor saw after clicking "Call me back".
type private PageSeen = {
    Status: int
    Message: string
    Stages: (string * string) list
    PageErrors: string list
}

/// One visit with demo-page.mjs: number typed, language picked, button clicked, screenshot saved.
let private visit (url: string) (number: string) (language: string) (screenshot: string) =
    Directory.CreateDirectory screenshots |> ignore

    let arguments = [
        "demo-page.mjs"
        url
        number
        language
        Path.Combine(screenshots, screenshot)
    ]

    let code, output = runTool "node" arguments browserDir (TimeSpan.FromSeconds 90.0)

    if code <> 0 then
        failtestf "demo-page.mjs exited with %d:\n%s" code output

    let line = output.Split('\n') |> Array.findBack (fun l -> l.StartsWith "{")
    use doc = JsonDocument.Parse line
    let root = doc.RootElement

    {
        Status = root.GetProperty("status").GetInt32()
        Message = root.GetProperty("message").GetString()
        Stages = [
            for p in root.GetProperty("stages").EnumerateObject() -> p.Name, p.Value.GetString()
        ]
        PageErrors = [ for e in root.GetProperty("pageErrors").EnumerateArray() -> e.GetString() ]
    }

let private stageNames = [ "socket"; "amiLogin"; "amiOrig"; "amiLogoff"; "callSpooled" ]

/// The local Asterisk, (re)started: other tests stop and start it. Its `asterisk.sh env` settings.
let private asteriskEnv () =
    match asteriskScript "start" with
    | false, _ -> failtest "asterisk/dev/asterisk.sh start failed (its messages are above)"
    | true, _ ->
        let _, env = asteriskScript "env"

        env.Split('\n', StringSplitOptions.RemoveEmptyEntries)
        |> Array.map (fun line -> line.Substring(0, line.IndexOf '='), line.Substring(line.IndexOf '=' + 1))
        |> List.ofArray

let private fullLog (env: (string * string) list) =
    env |> List.find (fst >> (=) "ASTERISK_FULL_LOG") |> snd

/// What Asterisk logged since `offset`.
let private logSince env (offset: int64) =
    use stream =
        new FileStream(fullLog env, FileMode.Open, FileAccess.Read, FileShare.ReadWrite)

    stream.Seek(offset, SeekOrigin.Begin) |> ignore
    use reader = new StreamReader(stream, Encoding.UTF8)
    reader.ReadToEnd()

/// Waits (up to 20 s) until the log since `offset` matches `pattern`.
let private awaitLog env offset (pattern: string) =
    let matches () =
        Regex.IsMatch(logSince env offset, pattern)

    let deadline = Stopwatch.StartNew()

    while not (matches ()) && deadline.Elapsed < TimeSpan.FromSeconds 20.0 do
        Thread.Sleep 200

    matches ()

/// A browser test: skipped loudly where Chromium, Node.js or root are missing, failed for that in CI.
let private withBrowser name (body: (string * string) list -> unit) =
    test name {
        match browserTools.Value with
        | Error(Unavailable reason) when Environment.GetEnvironmentVariable "CI" = "true" ->
            failtestf "CI must run the browser tests, but %s" reason
        | Error(Unavailable reason) ->
            eprintfn "Demo page in Chromium: %s: SKIPPED, %s" name reason
            skiptestf "skipped: %s" reason
        | Error(Broken reason) -> failtest reason
        | Ok() -> body (asteriskEnv ())
    }

[<Tests>]
let tests =
    testSequenced
    <| testList "Demo page in Chromium" [
        withBrowser "a visitor who picks Français is thanked in French and hears the French announcement"
        <| fun env ->
            use sidecar = startSidecar env
            let offset = FileInfo(fullLog env).Length
            let seen = visit sidecar.Url "1 514 555 0181" "fr" "demo-fr.png"

            Expect.equal seen.Status 200 $"POST /callback answers 200\n{sidecar.Output}"
            Expect.equal seen.Message "Merci ! Votre téléphone va sonner dans un instant." "the French thanks"
            Expect.equal seen.Stages (stageNames |> List.map (fun s -> s, "✔")) "five ✔ in the table"
            Expect.isEmpty seen.PageErrors "no errors in the page's console"

            let visitor = Regex.Escape "Local/15145550181@demo-visitor-" + "[0-9a-f]+;1"

            Expect.isTrue
                (awaitLog env offset $@"Executing \[s@callback-fr:\d+\] \w+\(""{visitor}""")
                "Asterisk runs callback-fr for the visitor's channel"

            Expect.isTrue
                (awaitLog env offset $@"<{visitor}> Playing 'pls-hold-while-try\.gsm' \(language 'fr'\)")
                "Asterisk plays the French announcement to the visitor"

        withBrowser "a service code (911) shows the server's reason on the page and never reaches Asterisk"
        <| fun env ->
            use sidecar = startSidecar env
            let offset = FileInfo(fullLog env).Length
            let number = "514 911 0182"
            let seen = visit sidecar.Url number "en" "demo-invalid.png"

            // The server's own sentence, asked for directly, is what the page must show.
            use client = new HttpClient()

            let answer =
                client
                    .PostAsync(sidecar.Url + "callback", jsonBody $"""{{"phoneNumber":"{number}","language":"EN"}}""")
                    .Result.Content.ReadAsStringAsync()
                    .Result

            let reasons =
                use doc = JsonDocument.Parse answer

                [
                    for e in doc.RootElement.GetProperty("errors").EnumerateArray() ->
                        e.GetProperty("message").GetString()
                ]

            Expect.equal seen.Status 422 "POST /callback answers 422"
            Expect.isNonEmpty reasons $"the 422 carries errors[].message: {answer}"
            Expect.equal seen.Message ("Please check the form: " + String.Join(" ", reasons)) "the server's reason"
            Expect.equal seen.Stages (stageNames |> List.map (fun s -> s, "✘")) "five ✘ in the table"

            Thread.Sleep 3000
            let logged = logSince env offset
            Expect.isFalse (logged.Contains "15149110182") "Asterisk never hears of the number"
    ]
