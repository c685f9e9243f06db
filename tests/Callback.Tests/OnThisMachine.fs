/// The rule for the tests that run real programs on this machine (Docker, nginx): skipped, loudly, where
/// they cannot run, failed for that in CI (CI=true).
module Callback.Tests.OnThisMachine

open System
open Expecto

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
