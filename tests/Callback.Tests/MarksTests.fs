module Callback.Tests.MarksTests

open System
open System.Diagnostics
open Expecto
open FsCheck
open FsCheck.FSharp
open Callback.Ami

/// The bits a byte-by-byte scan sets: what `Marks.find` must compute, whichever vectors the CPU has.
let private scanned (bytes: byte[]) =
    let mutable newlines = 0UL
    let mutable colons = 0UL

    for i in 0 .. min Marks.Block bytes.Length - 1 do
        if bytes[i] = '\n'B then
            newlines <- newlines ||| (1UL <<< i)
        elif bytes[i] = ':'B then
            colons <- colons ||| (1UL <<< i)

    struct (newlines, colons)

/// Blocks shorter than, as long as and longer than `Marks.Block`, dense in the bytes that matter.
let private blocks =
    Gen.elements [ '\n'B; ':'B; '\r'B; ' 'B; 'a'B; 0xC3uy; 0x0Auy ||| 0x80uy ]
    |> Gen.arrayOf
    |> Gen.resize 150

/// This test program, run again with the runtime told to leave out `feature`, only for the property below.
let private rerunWithout (feature: string) =
    let info =
        ProcessStartInfo(
            "dotnet",
            [
                Reflection.Assembly.GetExecutingAssembly().Location
                "--filter-test-case"
                "marks are what a byte-by-byte scan finds"
            ],
            RedirectStandardOutput = true,
            RedirectStandardError = true
        )

    // Run only the property: were the filter ever to match this test too, it must not start itself again.
    if Environment.GetEnvironmentVariable "CALLBACK_MARKS_RERUN" = "1" then
        failtest "already a rerun"

    info.Environment["CALLBACK_MARKS_RERUN"] <- "1"
    info.Environment[$"DOTNET_Enable{feature}"] <- "0"
    use child = Process.Start info
    let output = child.StandardOutput.ReadToEndAsync()
    let errors = child.StandardError.ReadToEndAsync()
    Expect.isTrue (child.WaitForExit(TimeSpan.FromMinutes 2.0)) "finished within 2 minutes"
    child.ExitCode, output.Result + errors.Result

[<Tests>]
let tests =
    testList "Marks" [
        test "a block with no newline or colon has no marks" {
            Expect.equal (Marks.find (ReadOnlySpan(Array.create 64 'a'B))) (struct (0UL, 0UL)) "none"
        }

        test "the first and the last byte of a block are marked, and nothing after it" {
            let bytes = Array.create 70 'a'B
            bytes[0] <- '\n'B
            bytes[63] <- ':'B
            bytes[64] <- '\n'B
            Expect.equal (Marks.find (ReadOnlySpan bytes)) (struct (1UL, 1UL <<< 63)) "bits 0 and 63"
        }

        testPropertyWithConfig
            {
                FsCheckConfig.defaultConfig with
                    maxTest = 500
            }
            "marks are what a byte-by-byte scan finds"
        <| Prop.forAll (Arb.fromGen blocks) (fun bytes ->
            Expect.equal (Marks.find (ReadOnlySpan bytes)) (scanned bytes) $"%A{bytes}")

        // The machine running the tests decides which vectors Marks.find uses; the runtime can be told to
        // pretend it has fewer, so that every path is tested on any machine.
        for feature in [ "AVX2"; "HWIntrinsic" ] do
            test $"without {feature} the marks are the same" {
                let code, output = rerunWithout feature
                Expect.equal code 0 $"the property, rerun with DOTNET_Enable{feature}=0:\n{output}"
                Expect.stringContains output "1 passed, 0 failed" "the property ran"
            }
    ]
