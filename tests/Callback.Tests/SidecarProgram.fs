/// The real sidecar program (the Release build) as a deployment runs it: configured through environment
/// variables, listening on a loopback port, stopped by its pid.
module Callback.Tests.SidecarProgram

open System
open System.IO
open System.Net.Http
open Expecto
open Callback.Tests.Loopback
open Callback.Tests.Programs

/// The sidecar program, running: where it listens and what it has written.
type RunningSidecar = {
    Port: int
    Program: Launched
} with

    member this.Url = $"http://127.0.0.1:{this.Port}/"

    /// Waits (up to 30 s) until `/healthz` answers 200; false if the program exits or never answers.
    member this.AwaitHealthy() =
        use client = new HttpClient(Timeout = TimeSpan.FromSeconds 2.0)

        let healthy () =
            try
                client.GetAsync(this.Url + "healthz").Result.IsSuccessStatusCode
            with _ ->
                false

        eventually (TimeSpan.FromSeconds 30.0) (fun () -> this.Program.Process.HasExited || healthy ())
        && not this.Program.Process.HasExited

    interface IDisposable with
        member this.Dispose() = (this.Program :> IDisposable).Dispose()

/// Starts the Release build of the sidecar with `settings` (`Ami__Host`, …) on a free port of 127.0.0.1.
let start (settings: (string * string) list) =
    let dll =
        Path.Combine(repoRoot, "src", "Callback", "bin", "Release", "net10.0", "Callback.dll")

    if not (File.Exists dll) then
        failtestf "%s is missing: build the tests in Release first (dotnet fsi build.fsx build)" dll

    let port = freePort ()

    let data =
        if settings |> List.exists (fst >> (=) "Data__Path") then
            []
        else
            [ "Data__Path", Directory.CreateTempSubdirectory("callback-data-").FullName ]

    {
        Port = port
        Program = launch (settings @ data @ [ "ASPNETCORE_URLS", $"http://127.0.0.1:{port}" ]) "dotnet" [ dll ]
    }

/// A `Data__Path` directory whose store already holds one call, queued now, and that call's id: a call for
/// the program's status routes to serve before the program has placed any.
let dataWithQueuedCall () =
    let dir = Directory.CreateTempSubdirectory("callback-data-").FullName
    let callId = Callback.Domain.CallId.create ()

    let store =
        match Callback.Calls.SqliteCallStore.Open(dir, Threading.CancellationToken.None).Result with
        | Ok store -> store
        | Error message -> failtestf "the store did not open: %s" message

    use _ = store

    let call: Callback.Calls.NewCall = {
        CallId = callId
        Attempt = Callback.Domain.Attempt.first
        Language = Callback.Domain.English
        MaskedNumber = "1514*****34"
        CreatedAt = DateTimeOffset.UtcNow
    }

    Expect.isTrue
        ((store :> Callback.Calls.ICallStore).Create(call, Threading.CancellationToken.None).Result)
        "the call is stored"

    dir, Callback.Domain.CallId.value callId
