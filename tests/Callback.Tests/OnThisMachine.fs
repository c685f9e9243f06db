/// The rule for tests that run real programs on this machine (the real Asterisk, Chromium, Docker, nginx):
/// where the machine cannot run them they are skipped, loudly, except in CI (CI=true), where nothing may be
/// skipped; where preparing them went wrong they fail.
module Callback.Tests.OnThisMachine

open System
open Expecto

/// Why a test list cannot run: this machine cannot run it (skip), or preparing it went wrong (fail).
type Blocker =
    | Unavailable of string
    | Broken of string

/// Root on Linux, which every test that runs real programs here needs; `who` says what needs it.
let rootOnLinux (who: string) =
    if not (OperatingSystem.IsLinux()) then
        Error(Unavailable $"{who} needs Linux")
    elif Environment.UserName <> "root" then
        Error(Unavailable $"{who} needs root")
    else
        Ok()

/// A test of the `what` list that needs `prerequisite` (worked out once, on first use) and runs `body` with
/// what it gives: skipped with the reason where this machine cannot run it, failed for that in CI.
let onThisMachine (what: string) (prerequisite: Lazy<Result<'T, Blocker>>) name (body: 'T -> unit) =
    test name {
        match prerequisite.Value with
        | Error(Unavailable reason) when Environment.GetEnvironmentVariable "CI" = "true" ->
            failtestf "CI must run the %s tests, but %s" what reason
        | Error(Unavailable reason) ->
            eprintfn "SKIPPED %s test '%s': %s" what name reason
            skiptestf "SKIPPED %s: %s" what reason
        | Error(Broken reason) -> failtest reason
        | Ok value -> body value
    }
