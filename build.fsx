// The project's build script, a plain F# script (FAKE cannot restore from our feed):
//   dotnet fsi build.fsx build   compile everything
//   dotnet fsi build.fsx test    every test: unit, fake-AMI faults, HTTP, real Asterisk, Docker, nginx
//   dotnet fsi build.fsx demo    a real local Asterisk, SIPp phones, the sidecar, the demo page (Ctrl-C stops all)
//   dotnet fsi build.fsx format  format with Fantomas; `format-check` fails on unformatted code
// Extra arguments after the target go to the test runner (Expecto), e.g. `test --filter-test-list Pipeline`.

open System
open System.Diagnostics
open System.IO
open System.Text.RegularExpressions

let root = __SOURCE_DIRECTORY__

/// Runs a command in the repository, its output passed through; `onLine` sees each stdout line.
let runWith (onLine: string -> unit) (file: string) (args: string list) =
    let info =
        ProcessStartInfo(file, args, WorkingDirectory = root, RedirectStandardOutput = true)

    use proc = Process.Start info

    let rec pump () =
        match proc.StandardOutput.ReadLine() with
        | null -> ()
        | line ->
            printfn "%s" line
            onLine line
            pump ()

    pump ()
    proc.WaitForExit()
    proc.ExitCode

let run file args = runWith ignore file args

let dotnet args =
    match run "dotnet" args with
    | 0 -> ()
    | code -> failwithf "dotnet %s failed with exit code %d" (String.Join(" ", args)) code

let build () =
    dotnet [ "tool"; "restore" ]

    dotnet [
        "build"
        "tests/Callback.Tests"
        "-c"
        "Release"
        "-nologo"
        "-clp:ErrorsOnly"
    ]

let asteriskScript = "asterisk/dev/asterisk.sh"
let postgresScript = "postgres/dev/postgres.sh"

let closingLine = Regex(@"(\d+) passed, (\d+) failed, (\d+) skipped")

/// Runs the test program and ends with the plain `N passed, N failed` line CI reads.
let test (extra: string list) =
    build ()
    // The real-Asterisk tests start the local Asterisk when they need it; stop it afterwards unless it
    // was already running (someone's demo, say).
    let asteriskWasRunning = run "bash" [ asteriskScript; "status" ] = 0
    // Likewise the local PostgreSQL of the PostgreSQL store's tests.
    let postgresWasRunning = run "bash" [ postgresScript; "status" ] = 0
    let mutable counts = None

    let code =
        runWith
            (fun line ->
                let m = closingLine.Match line

                if m.Success then
                    counts <- Some(m.Groups[1].Value, m.Groups[2].Value, m.Groups[3].Value))
            "dotnet"
            ([
                "run"
                "--no-build"
                "-c"
                "Release"
                "--project"
                "tests/Callback.Tests"
                "--"
             ]
             @ extra)

    if not asteriskWasRunning then
        run "bash" [ asteriskScript; "stop" ] |> ignore

    if not postgresWasRunning then
        run "bash" [ postgresScript; "stop" ] |> ignore

    match counts with
    | Some(passed, failed, skipped) -> printfn "%s passed, %s failed, %s skipped" passed failed skipped
    | None -> printfn "0 passed, 1 failed (the test program ended before its summary, exit code %d)" code

    code

/// Runs a command and returns its standard output (for `asterisk.sh env`).
let capture (file: string) (args: string list) =
    let info =
        ProcessStartInfo(file, args, WorkingDirectory = root, RedirectStandardOutput = true)

    use proc = Process.Start info
    let output = proc.StandardOutput.ReadToEnd()
    proc.WaitForExit()

    if proc.ExitCode <> 0 then
        failwithf "%s %s failed with exit code %d" file (String.Join(" ", args)) proc.ExitCode

    output

/// The settings `asterisk.sh <command>` prints for the local Asterisk (`env`, `env-sip`): `KEY=VALUE` lines.
let asteriskEnv (command: string) =
    capture "bash" [ asteriskScript; command ]
    |> fun text -> text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
    |> Array.map (fun line -> line.Substring(0, line.IndexOf '='), line.Substring(line.IndexOf '=' + 1))

/// SIPp, from Debian's `sip-tester`: installed when missing (the demo runs as root for Asterisk anyway).
let ensureSipp () =
    let present () =
        try
            capture "sh" [ "-c"; "command -v sipp" ] <> ""
        with _ ->
            false

    if not (present ()) then
        printfn "Installing SIPp (Debian package sip-tester) for the demo's phones"

        if
            run "apt-get" [ "install"; "-y"; "-qq"; "--no-install-recommends"; "sip-tester" ]
            <> 0
        then
            failwith "SIPp is missing and `apt-get install sip-tester` failed"

/// One SIPp phone of the demo: `scenario` on 127.0.0.1:`port`, echoing RTP on `port + 30000`, taking calls
/// until stopped; its SIP messages go to `log`, its screen nowhere (exec keeps SIPp's own pid).
let startPhone (scenario: string) (port: int) (variables: string list) (log: string) =
    let media = string (port + 30000)

    let command =
        [
            "exec sipp -sf tests/sip/" + scenario + ".xml -i 127.0.0.1 -p " + string port
            "-mi 127.0.0.1 -mp " + media + " -rtp_echo -key rtp_port " + media
            "-ci 127.0.0.1 -cp "
            + string (port + 3000)
            + " -nostdin -trace_msg -message_file "
            + log
            String.concat " " variables
            ">/dev/null 2>&1"
        ]
        |> String.concat " "

    Process.Start(ProcessStartInfo("bash", [ "-c"; command ], WorkingDirectory = root))

/// Stops a demo phone by its pid.
let stopPhone (phone: Process) =
    if not phone.HasExited then
        phone.Kill()
        phone.WaitForExit()

/// The real local Asterisk, SIPp phones for the visitor and the owner, and the sidecar configured for them
/// with the demo page, until Ctrl-C.
let demo (args: string list) =
    let port =
        match args with
        | [ "--port"; p ] -> p
        | _ -> "8080"

    dotnet [ "build"; "src/Callback"; "-c"; "Release"; "-nologo"; "-clp:ErrorsOnly" ]
    ensureSipp ()

    let asteriskWasRunning = run "bash" [ asteriskScript; "status" ] = 0
    // Likewise the local PostgreSQL of the PostgreSQL store's tests.
    let postgresWasRunning = run "bash" [ postgresScript; "status" ] = 0

    if run "bash" [ asteriskScript; "start" ] <> 0 then
        failwith "the local Asterisk did not start (see the lines above)"

    let env = asteriskEnv "env-sip"

    let setting key =
        env |> Array.find (fst >> (=) key) |> snd

    let sipPort key = int ((setting key).Split(':')[1])
    let logs = Directory.CreateTempSubdirectory("callback-demo-").FullName

    let visitorLog, ownerLog =
        Path.Combine(logs, "visitor-sip.log"), Path.Combine(logs, "owner-sip.log")
    // The visitor answers after 1 s and stays on until the owner, who answers after 1 s and hangs up 8 s
    // later (after the whisper and a few seconds of bridged, echoed audio), ends the call.
    let visitor =
        startPhone "answer" (sipPort "SIP_TRUNK") [ "-set ring_ms 1000" ] visitorLog

    let owner =
        startPhone "answer-hangup" (sipPort "SIP_OWNER") [ "-set ring_ms 1000"; "-set talk_ms 8000" ] ownerLog

    let info =
        ProcessStartInfo("dotnet", [ "src/Callback/bin/Release/net10.0/Callback.dll" ], WorkingDirectory = root)

    for key, value in env do
        if key.Contains "__" then
            info.Environment[key] <- value

    info.Environment["Demo__Enabled"] <- "true"
    // The demo's calls are kept beside the local Asterisk's state, out of the work tree.
    info.Environment["Data__Path"] <- Path.Combine(__SOURCE_DIRECTORY__, ".state", "demo-data")
    info.Environment["ASPNETCORE_URLS"] <- $"http://127.0.0.1:{port}"
    use sidecar = Process.Start info
    use stopped = new Threading.ManualResetEventSlim()

    // Ctrl-C (SIGINT) or SIGTERM: stop what the demo started, in order, instead of dying mid-way.
    let stop (context: Runtime.InteropServices.PosixSignalContext) =
        context.Cancel <- true
        stopped.Set()

    use _ =
        Runtime.InteropServices.PosixSignalRegistration.Create(Runtime.InteropServices.PosixSignal.SIGINT, stop)

    use _ =
        Runtime.InteropServices.PosixSignalRegistration.Create(Runtime.InteropServices.PosixSignal.SIGTERM, stop)

    for proc in [ sidecar; visitor; owner ] do
        Threading.Tasks.Task.Run(fun () ->
            proc.WaitForExit()
            stopped.Set())
        |> ignore

    printfn
        $"""
The demo runs. Open http://127.0.0.1:{port}/ in a browser, or:

  curl -s http://127.0.0.1:{port}/callback -d phoneNumber='(438) 555-2368' -d language=fr

Asterisk rings SIPp phones through the shipped pjsip.conf: the visitor behind the trunk
({setting "SIP_TRUNK"}), then the owner ({setting "SIP_OWNER"}), who hears the whisper and is bridged to the
visitor (both phones echo the audio) and hangs up after 8 s. Follow the calls:
  tail -f {setting "ASTERISK_FULL_LOG"}
  grep -E '^(INVITE|BYE|SIP/2.0)' {visitorLog} {ownerLog}

Ctrl-C stops the sidecar, the SIPp phones, and Asterisk unless it was already running before the demo."""

    stopped.Wait()

    if not sidecar.HasExited then
        sidecar.Kill true
        sidecar.WaitForExit()

    stopPhone visitor
    stopPhone owner

    if not asteriskWasRunning then
        run "bash" [ asteriskScript; "stop" ] |> ignore

    0

let format check =
    dotnet [ "tool"; "restore" ]
    let files = [ "src"; "tests"; "build.fsx" ]
    dotnet ([ "fantomas" ] @ (if check then [ "--check" ] else []) @ files)

let target, rest =
    match fsi.CommandLineArgs |> List.ofArray |> List.tail with
    | [] -> "test", []
    | t :: rest -> t, rest

let exitCode =
    match target with
    | "build" ->
        build ()
        0
    | "test" -> test rest
    | "demo" -> demo rest
    | "format" ->
        format false
        0
    | "format-check" ->
        format true
        0
    | other ->
        eprintfn "Unknown target '%s'. Targets: build, test, demo, format, format-check." other
        2

exit exitCode
