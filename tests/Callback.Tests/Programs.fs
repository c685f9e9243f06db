/// Real programs run by the tests on this machine: run to their end, or launched and stopped by their pid;
/// and what such tests wait on (a condition, a listening port) and read (a script's `KEY=VALUE` lines).
module Callback.Tests.Programs

open System
open System.Collections.Concurrent
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Sockets
open System.Threading

/// The repository's root, found from the test program's folder.
let repoRoot =
    let rec up (dir: DirectoryInfo) =
        if isNull dir then
            failwith "asterisk/dev/asterisk.sh not found above the test program"
        elif File.Exists(Path.Combine(dir.FullName, "asterisk", "dev", "asterisk.sh")) then
            dir.FullName
        else
            up dir.Parent

    up (DirectoryInfo AppContext.BaseDirectory)

/// `file args` to start in `directory` with `env` added, both output streams redirected.
let private startInfo (directory: string) (env: (string * string) list) (file: string) (args: string list) =
    let info =
        ProcessStartInfo(
            file,
            args,
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true
        )

    for key, value in env do
        info.Environment[key] <- value

    info

/// What a program did: its exit code and its output (standard output, then standard error).
type Ran = { Code: int; Output: string }

/// Runs `file args` in `directory` with `env` added, to its end or at most `timeout`; a program that cannot
/// be started (not installed) is exit code -1 with the reason as its output.
let runIn (directory: string) (env: (string * string) list) (timeout: TimeSpan) (file: string) (args: string list) =
    try
        use proc = Process.Start(startInfo directory env file args)
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
    with :? ComponentModel.Win32Exception as e -> {
        Code = -1
        Output = $"{file}: {e.Message}"
    }

/// Runs `file args` in the repository root with `env` added, to its end or at most `timeout`.
let run env timeout file args = runIn repoRoot env timeout file args

/// Stops a process we started: SIGTERM to its pid (graceful: nginx's master stops its workers), then SIGKILL.
let stop (proc: Process) =
    if not proc.HasExited then
        run [] (TimeSpan.FromSeconds 5.0) "kill" [ "-TERM"; string proc.Id ] |> ignore

        if not (proc.WaitForExit(TimeSpan.FromSeconds 10.0)) then
            proc.Kill true

/// A program we launched and the lines it has written so far (both streams); disposing it stops it.
type Launched = {
    Process: Process
    Lines: ConcurrentQueue<string>
} with

    /// Everything it has written so far, for a failure message.
    member this.Output = String.concat "\n" this.Lines

    interface IDisposable with
        member this.Dispose() = stop this.Process

/// Starts `file args` in the repository root with `env` added, its output lines collected; it is stopped
/// (by its pid) when disposed, or else when the test program ends.
let launch (env: (string * string) list) (file: string) (args: string list) =
    let lines = ConcurrentQueue<string>()
    let proc = new Process(StartInfo = startInfo repoRoot env file args)

    let keep (e: DataReceivedEventArgs) =
        if not (isNull e.Data) then
            lines.Enqueue e.Data

    proc.OutputDataReceived.Add keep
    proc.ErrorDataReceived.Add keep
    proc.Start() |> ignore
    proc.BeginOutputReadLine()
    proc.BeginErrorReadLine()
    AppDomain.CurrentDomain.ProcessExit.Add(fun _ -> stop proc)
    { Process = proc; Lines = lines }

/// The last `n` lines of `text`, for a failure message.
let tail n (text: string) =
    text.TrimEnd().Split('\n')
    |> Array.rev
    |> Array.truncate n
    |> Array.rev
    |> String.concat "\n"

/// The `KEY=VALUE` lines of a script's output (`asterisk.sh env`, `engine.sh env`) as pairs, in order;
/// other lines are passed over.
let keyValues (output: string) =
    output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
    |> Array.filter (fun line -> line.Contains '=')
    |> Array.map (fun line -> line.Substring(0, line.IndexOf '='), line.Substring(line.IndexOf '=' + 1))
    |> List.ofArray

/// Polls `check` every 200 ms until it is true or `within` has passed; whether it became true.
let eventually (within: TimeSpan) (check: unit -> bool) =
    let watch = Stopwatch.StartNew()
    let mutable ok = check ()

    while not ok && watch.Elapsed < within do
        Thread.Sleep 200
        ok <- check ()

    ok

/// Waits (up to 20 s) until something accepts connections on 127.0.0.1:`port`.
let listening port =
    eventually (TimeSpan.FromSeconds 20.0) (fun () ->
        use client = new TcpClient()

        try
            client.Connect(IPAddress.Loopback, port)
            true
        with :? SocketException ->
            false)
