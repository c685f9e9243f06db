/// The real local Asterisk 22 (Debian's package, in a chroot run by asterisk/dev/asterisk.sh): starting it,
/// its settings from `asterisk.sh env`, and its full log, where the tests find the proof of a call.
module Callback.Tests.LocalAsterisk

open System
open System.Diagnostics
open System.IO
open System.Text.RegularExpressions
open Expecto
open Callback.Tests.Programs

/// Runs `asterisk.sh <command>`; whether it succeeded, and its standard output. Its messages (progress,
/// errors) go straight to the test output: provisioning takes minutes.
let asteriskScript (command: string) =
    let info =
        ProcessStartInfo(
            "bash",
            [ "asterisk/dev/asterisk.sh"; command ],
            WorkingDirectory = repoRoot,
            RedirectStandardOutput = true
        )

    use proc = Process.Start info
    let output = proc.StandardOutput.ReadToEnd()
    proc.WaitForExit()
    proc.ExitCode = 0, output

/// Starts the local Asterisk if it is not running (provisioned on first use: about two minutes; someone
/// else's test may have stopped it); its settings from `asterisk.sh env`: `Ami__Host`, …, `ASTERISK_FULL_LOG`.
let start () =
    match asteriskScript "start" with
    | false, _ -> Error "asterisk/dev/asterisk.sh start failed (its messages are above)"
    | true, _ -> Ok(keyValues (snd (asteriskScript "env")))

/// `start ()` with the settings of `asterisk.sh env-sip` instead: the visitor rung through the shipped
/// pjsip.conf's trunk (`PJSIP/{number}@trunk`) and the `SIP_*` addresses of the SIPp phones, plus the
/// dev-only monitor user of `asterisk.sh monitor-env`.
let startSip () =
    match asteriskScript "start" with
    | false, _ -> Error "asterisk/dev/asterisk.sh start failed (its messages are above)"
    | true, _ -> Ok(keyValues (snd (asteriskScript "env-sip")), keyValues (snd (asteriskScript "monitor-env")))

/// `start ()`, failing the test if Asterisk does not start.
let running () = start () |> Result.defaultWith failtest

/// One setting from `asterisk.sh env`.
let setting (env: (string * string) list) key =
    env |> List.find (fst >> (=) key) |> snd

/// The sidecar's own settings (`Ami__…`, `Originate__…`) among `asterisk.sh env`'s lines, with the client
/// and global rate limits raised out of the way: these tests place many calls from one address in a minute,
/// and the limits have tests of their own (LimitsTests, NginxTests).
let sidecarSettings (env: (string * string) list) =
    (env |> List.filter (fun (key, _) -> key.Contains "__"))
    @ [
        "Callback__PerClientPerMinute", "10000"
        "Callback__GlobalPerMinute", "10000"
    ]

/// Where Asterisk's full log ends now: what a call logs after this is read from here.
let logLength env =
    FileInfo(setting env "ASTERISK_FULL_LOG").Length

/// What Asterisk logged since `offset`.
let logSince env (offset: int64) =
    use stream =
        new FileStream(setting env "ASTERISK_FULL_LOG", FileMode.Open, FileAccess.Read, FileShare.ReadWrite)

    stream.Seek(offset, SeekOrigin.Begin) |> ignore
    use reader = new StreamReader(stream)
    reader.ReadToEnd()

/// Waits up to 20 s (the announcement alone takes about 3 s) until Asterisk's log since `offset` matches.
let awaitLog env offset (pattern: string) =
    eventually (TimeSpan.FromSeconds 20.0) (fun () -> Regex.IsMatch(logSince env offset, pattern))

/// The pattern of the visitor's channel for `digits` (11 digits) in Asterisk's log,
/// `Local/1NXXNXXXXXX@demo-visitor-<id>;1`.
let visitorChannel (digits: string) =
    Regex.Escape $"Local/{digits}@demo-visitor-" + "[0-9a-f]+;1"

/// Waits until the log since `offset` shows the shipped dialplan's `callback-<language>` running for the
/// visitor's channel to `digits`.
let awaitCallback env offset (language: string) digits =
    awaitLog env offset $@"Executing \[s@callback-{language}:\d+\] \w+\(""{visitorChannel digits}"""

/// Waits until the log since `offset` shows the announcement played to the visitor on `digits` in `language`.
let awaitAnnouncement env offset (language: string) digits =
    awaitLog env offset $@"<{visitorChannel digits}> Playing 'pls-hold-while-try\.gsm' \(language '{language}'\)"
