// The project's build script, a plain F# script (FAKE cannot restore from our feed):
//   dotnet fsi build.fsx build   compile everything
//   dotnet fsi build.fsx test    every test: unit, fake-AMI faults, HTTP, real Asterisk, Docker, nginx
//   dotnet fsi build.fsx demo    a real local Asterisk + the sidecar + the demo page (Ctrl-C stops all)
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

let closingLine = Regex(@"(\d+) passed, (\d+) failed, (\d+) skipped")

/// Runs the test program and ends with the plain `N passed, N failed` line CI reads.
let test (extra: string list) =
    build ()
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

    match counts with
    | Some(passed, failed, skipped) -> printfn "%s passed, %s failed, %s skipped" passed failed skipped
    | None -> printfn "0 passed, 1 failed (the test program ended before its summary, exit code %d)" code

    code

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
