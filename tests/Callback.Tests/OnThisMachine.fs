/// What the tests that run real programs on this machine (Docker, nginx) share: the skip-or-fail rule,
/// running a program to its end or launching one we stop by its pid, and the local Asterisk's
/// settings and log.
module Callback.Tests.OnThisMachine

open System
open System.Collections.Concurrent
open System.Diagnostics
open System.IO
open System.Text.RegularExpressions
open System.Threading
open Expecto
open Callback.Tests.RealAsteriskTests

/// Why programs cannot be run here as these tests need (root on Linux), if they cannot.
let private unavailable () =
    if not (OperatingSystem.IsLinux()) then
        Some "it needs Linux"
    elif Environment.UserName <> "root" then
        Some "it needs root (the real Asterisk, the Docker engine, installing packages)"
    else
        None

/// A test that runs real programs: skipped with a loud reason where it cannot run, failed in CI (CI=true),
/// where nothing may be skipped.
let onThisMachine (what: string) name (body: unit -> unit) =
    test name {
        match unavailable () with
        | Some reason when Environment.GetEnvironmentVariable "CI" = "true" ->
            failtestf "CI must run the %s tests, but %s" what reason
        | Some reason ->
            eprintfn "SKIPPED %s test '%s': %s" what name reason
            skiptestf "SKIPPED %s: %s" what reason
        | None -> body ()
    }

/// What a program did: its exit code and its output (standard output, then standard error).
type Ran = { Code: int; Output: string }

/// Runs `file args` in the repository root with `env` added, to its end or at most `timeout`.
let run (env: (string * string) list) (timeout: TimeSpan) (file: string) (args: string list) =
    let info =
        ProcessStartInfo(
            file,
            args,
            WorkingDirectory = repoRoot,
            RedirectStandardOutput = true,
            RedirectStandardError = true
        )

    for key, value in env do
        info.Environment[key] <- value

    use proc = Process.Start info
    let out = proc.StandardOutput.ReadToEndAsync()
    let err = proc.StandardError.ReadToEndAsync()

    if proc.WaitForExit timeout then
        proc.WaitForExit()

        {
            Code = proc.ExitCode
            Output = out.Result + err.Result
        }
    else
        proc.Kill true
        proc.WaitForExit()

        {
            Code = -1
            Output = $"{out.Result}{err.Result}\n(stopped after {timeout.TotalSeconds} s)"
        }

/// Stops a process we started: SIGTERM to its pid (graceful: nginx's master stops its workers), then SIGKILL.
let stop (proc: Process) =
    if not proc.HasExited then
        run [] (TimeSpan.FromSeconds 5.0) "kill" [ "-TERM"; string proc.Id ] |> ignore

        if not (proc.WaitForExit(TimeSpan.FromSeconds 10.0)) then
            proc.Kill true

/// Starts `file args` in the repository root with `env` added, its output lines collected; it is stopped
/// (by its pid) when the test program ends.
let launch (env: (string * string) list) (file: string) (args: string list) =
    let lines = ConcurrentQueue<string>()

    let info =
        ProcessStartInfo(
            file,
            args,
            WorkingDirectory = repoRoot,
            RedirectStandardOutput = true,
            RedirectStandardError = true
        )

    for key, value in env do
        info.Environment[key] <- value

    let proc = new Process(StartInfo = info)

    proc.OutputDataReceived.Add(fun e ->
        if not (isNull e.Data) then
            lines.Enqueue e.Data)

    proc.ErrorDataReceived.Add(fun e ->
        if not (isNull e.Data) then
            lines.Enqueue e.Data)

    proc.Start() |> ignore
    proc.BeginOutputReadLine()
    proc.BeginErrorReadLine()
    AppDomain.CurrentDomain.ProcessExit.Add(fun _ -> stop proc)
    proc, lines

/// The last `n` lines of `text`, for a failure message.
let tail n (text: string) =
    text.TrimEnd().Split('\n')
    |> Array.rev
    |> Array.truncate n
    |> Array.rev
    |> String.concat "\n"

/// Polls `check` every 200 ms until it is true or `within` has passed; whether it became true.
let eventually (within: TimeSpan) (check: unit -> bool) =
    let watch = Stopwatch.StartNew()
    let mutable ok = check ()

    while not ok && watch.Elapsed < within do
        Thread.Sleep 200
        ok <- check ()

    ok

/// Starts the local Asterisk if it is not running (someone else's test may have stopped it) and returns
/// its settings from `asterisk.sh env`: `Ami__Host`, …, `ASTERISK_FULL_LOG`.
let localAsterisk () =
    let started, _ = asteriskScript "start"

    if not started then
        failtest "asterisk/dev/asterisk.sh start failed (its messages are above)"

    let _, env = asteriskScript "env"

    env.Split('\n', StringSplitOptions.RemoveEmptyEntries)
    |> Array.map (fun line -> line.Substring(0, line.IndexOf '='), line.Substring(line.IndexOf '=' + 1))
    |> List.ofArray

/// One setting from `asterisk.sh env`.
let setting (env: (string * string) list) key =
    env |> List.find (fst >> (=) key) |> snd

/// The sidecar's own settings (`Ami__…`, `Originate__…`) among `asterisk.sh env`'s lines.
let sidecarSettings (env: (string * string) list) =
    env |> List.filter (fun (key, _) -> key.Contains "__")

/// Where Asterisk's full log ends now: what a call logs after this is read from here.
let logLength env =
    FileInfo(setting env "ASTERISK_FULL_LOG").Length

/// Waits up to 20 s (the announcement alone takes about 3 s) until Asterisk's log since `offset` matches.
let asteriskLogs env (offset: int64) (pattern: string) =
    let since () =
        use stream =
            new FileStream(setting env "ASTERISK_FULL_LOG", FileMode.Open, FileAccess.Read, FileShare.ReadWrite)

        stream.Seek(offset, SeekOrigin.Begin) |> ignore
        use reader = new StreamReader(stream)
        reader.ReadToEnd()

    eventually (TimeSpan.FromSeconds 20.0) (fun () -> Regex.IsMatch(since (), pattern))

/// The pattern of the visitor's channel for `digits` (11 digits) in Asterisk's log,
/// `Local/1NXXNXXXXXX@demo-visitor-<id>;1`.
let visitorChannel (digits: string) =
    Regex.Escape $"Local/{digits}@demo-visitor-" + "[0-9a-f]+;1"
