/// examples/csharp, a C# console program on the AMI library, built with `dotnet build` and run against the
/// real Asterisk: proof that the library's public surface is usable from C#.
module Callback.Tests.CSharpExampleTests

open System
open Expecto
open Callback.Tests.OnThisMachine
open Callback.Tests.LocalAsterisk
open Callback.Tests.Programs

/// `dotnet build examples/csharp`, once for the list.
let private built =
    lazy (run [] (TimeSpan.FromMinutes 5.0) "dotnet" [ "build"; "examples/csharp"; "-c"; "Release"; "-nologo" ])

let private example env =
    let build = built.Value
    Expect.equal build.Code 0 $"the example builds:\n{tail 20 build.Output}"

    run env (TimeSpan.FromSeconds 60.0) "dotnet" [
        "run"
        "--no-build"
        "-c"
        "Release"
        "--project"
        "examples/csharp"
    ]

/// The local Asterisk, started if needed (never restarted when it answers), and the monitor user.
let private monitor =
    lazy
        (rootOnLinux "a real Asterisk (debootstrap, chroot and mount)"
         |> Result.bind (start >> Result.mapError Broken)
         |> Result.map (fun _ -> keyValues (snd (asteriskScript "monitor-env"))))

[<Tests>]
let tests =
    testSequencedGroup "the local Asterisk"
    <| testList "C# example" [
        // Catches a C# surface that does not compile (curried or F#-only members) or a broken run.
        onThisMachine
            "real-Asterisk"
            monitor
            "the C# example logs in, originates into the demo dialplan and sees its OriginateResponse"
        <| fun env ->
            let ran =
                example [
                    "AMI_HOST", "127.0.0.1"
                    "AMI_PORT", "5038"
                    "AMI_USE_TLS", "false"
                    "AMI_USERNAME", setting env "AMI_MONITOR_USERNAME"
                    "AMI_SECRET", setting env "AMI_MONITOR_SECRET"
                    "ORIGINATE_CHANNEL", $"Local/{(TestNumbers.distinct 91).Digits}@demo-visitor"
                    "ORIGINATE_CONTEXT", "demo-owner"
                    "ORIGINATE_EXTEN", "owner"
                ]

            Expect.equal ran.Code 0 $"exit code 0:\n{tail 20 ran.Output}"
            Expect.stringContains ran.Output "link Ready" "the state changes"
            Expect.stringContains ran.Output "event Newchannel" "the events"
            Expect.stringContains ran.Output "OriginateResponse Success" "the call's outcome"
            Expect.isFalse (ran.Output.Contains(setting env "AMI_MONITOR_SECRET")) "no secret printed"

        test "the C# example without AMI_USERNAME exits 2 and names the setting" {
            let ran = example [ "AMI_USERNAME", ""; "AMI_SECRET", "x" ]
            Expect.equal ran.Code 2 (tail 5 ran.Output)
            Expect.stringContains ran.Output "set AMI_USERNAME" "names it"
        }
    ]
