/// The container image as it ships: built from the repository's Dockerfile (a Native AOT executable on the
/// runtime-deps image), run read-only with host networking against the real local Asterisk, and checked
/// from the outside (docker inspect, /proc, HTTP).
module Callback.Tests.DockerTests

open System
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Http
open Expecto
open Callback.Tests.Loopback
open Callback.Tests.OnThisMachine
open Callback.Tests.Programs
open Callback.Tests.LocalAsterisk
open Callback.Tests.TestSidecar

let private tag = "callback-sidecar:test"
let private minutes (m: float) = TimeSpan.FromMinutes m

let private script (name: string) (args: string list) timeout =
    run [] timeout "bash" (Path.Combine("docker", name) :: args)

/// The engine (docker/engine.sh) and the CLI's environment for it; stopped again when the test program
/// ends if these tests started it.
let private engine =
    lazy
        (let wasRunning = (script "engine.sh" [ "status" ] (minutes 1.0)).Code = 0
         let started = script "engine.sh" [ "start" ] (minutes 5.0)

         if started.Code <> 0 then
             failtestf "docker/engine.sh start failed:\n%s" (tail 30 started.Output)

         if not wasRunning then
             AppDomain.CurrentDomain.ProcessExit.Add(fun _ -> script "engine.sh" [ "stop" ] (minutes 1.0) |> ignore)

         keyValues (script "engine.sh" [ "env" ] (minutes 1.0)).Output
         |> List.filter (fun (key, _) -> not (key.StartsWith "engine:")))

/// Debian's docker CLI (BuildKit works with it) against our engine.
let private docker timeout (args: string list) =
    run engine.Value timeout "/usr/bin/docker" args

let private dockerOk timeout args =
    let ran = docker timeout args

    if ran.Code <> 0 then
        failtestf "docker %s failed (exit %d):\n%s" (String.Join(" ", args)) ran.Code (tail 30 ran.Output)

    ran.Output.Trim()

/// The image, built once from the repository root (base images made first where no registry is reachable).
let private image =
    lazy
        (engine.Force() |> ignore
         let bases = script "base-images.sh" [] (minutes 10.0)

         if bases.Code <> 0 then
             failtestf "docker/base-images.sh failed:\n%s" (tail 30 bases.Output)

         dockerOk (minutes 10.0) [ "build"; "--network"; "host"; "-t"; tag; "." ]
         |> ignore)

/// The running container: its name, where it listens, and the local Asterisk's settings it was given.
type private Container = {
    Name: string
    Port: int
    Asterisk: (string * string) list
}

let private container =
    lazy
        (image.Force()
         let asterisk = running ()
         let name = $"callback-sidecar-test-{Environment.ProcessId}"
         let port = freePort ()
         AppDomain.CurrentDomain.ProcessExit.Add(fun _ -> docker (minutes 1.0) [ "rm"; "-f"; name ] |> ignore)

         let settings =
             sidecarSettings asterisk
             |> List.collect (fun (key, value) ->
                 match key with
                 | "Ami__CaCertificate" -> [ "-v"; $"{value}:/run/ami-ca.pem:ro"; "-e"; $"{key}=/run/ami-ca.pem" ]
                 | _ -> [ "-e"; $"{key}={value}" ])

         dockerOk
             (minutes 1.0)
             ([
                 "run"
                 "-d"
                 "--name"
                 name
                 "--network"
                 "host"
                 "--read-only"
                 "--health-interval=1s"
              ]
              @ settings
              @ [ "-e"; $"ASPNETCORE_URLS=http://127.0.0.1:{port}"; tag ])
         |> ignore

         {
             Name = name
             Port = port
             Asterisk = asterisk
         })

let private inspect (format: string) =
    dockerOk (minutes 1.0) [ "inspect"; "-f"; format; container.Value.Name ]

/// The container's log and health history, for a failure message.
let private diagnostics () =
    let logs = docker (minutes 1.0) [ "logs"; container.Value.Name ]
    let health = inspect "{{json .State.Health}}"
    $"docker logs:\n{tail 20 logs.Output}\nhealth: {health}"

let private http = new HttpClient(Timeout = TimeSpan.FromSeconds 30.0)

let private url path =
    $"http://127.0.0.1:{container.Value.Port}{path}"

let private dockerTest =
    onThisMachine "Docker" (lazy (rootOnLinux "the Docker engine"))

[<Tests>]
let tests =
    // With the other lists that use the local Asterisk, one at a time: some of them stop and restart it.
    testSequencedGroup "the local Asterisk"
    <| testList "Docker image" [
        dockerTest "the image builds from the repository root" (fun () -> image.Force())

        dockerTest "the health check turns healthy within 20 s" (fun () ->
            let status () = inspect "{{.State.Health.Status}}"

            let healthy =
                eventually (TimeSpan.FromSeconds 20.0) (fun () -> status () = "healthy" || status () = "unhealthy")
                && status () = "healthy"

            Expect.isTrue healthy $"health is '{status ()}', not 'healthy'\n{diagnostics ()}")

        dockerTest "the process is the native executable: no .NET runtime or JIT is loaded" (fun () ->
            Expect.equal (inspect "{{json .Config.Entrypoint}}") """["/app/Callback"]""" "the image's ENTRYPOINT"
            let pid = inspect "{{.State.Pid}}"
            // The file the kernel started, as the container sees it: the app, not `dotnet`.
            Expect.equal (FileInfo $"/proc/{pid}/exe").LinkTarget "/app/Callback" "/proc/<pid>/exe"

            let mapped =
                File.ReadAllLines $"/proc/{pid}/maps"
                |> Array.choose (fun line ->
                    match line.IndexOf '/' with
                    | -1 -> None
                    | start -> Some(Path.GetFileName(line.Substring start)))
                |> Array.distinct

            let jitRuntime = [
                "libcoreclr.so"
                "libclrjit.so"
                "libhostfxr.so"
                "System.Private.CoreLib.dll"
                "Callback.dll"
            ]

            Expect.isEmpty
                (mapped |> Array.filter (fun file -> List.contains file jitRuntime))
                "files of the JIT runtime mapped into the process"

            Expect.contains mapped "Callback" "the executable itself is mapped")

        dockerTest "the app runs as uid 1654, not root" (fun () ->
            Expect.equal (inspect "{{.Config.User}}") "1654" "the image's USER"
            let pid = inspect "{{.State.Pid}}"

            let uids =
                File.ReadAllLines $"/proc/{pid}/status"
                |> Array.find _.StartsWith("Uid:")
                |> fun line -> line.Split([| '\t'; ' ' |], StringSplitOptions.RemoveEmptyEntries)[1..]

            Expect.equal uids [| "1654"; "1654"; "1654"; "1654" |] "real, effective, saved and file-system uid")

        dockerTest "the root filesystem is read-only and the app still answers" (fun () ->
            Expect.equal (inspect "{{.HostConfig.ReadonlyRootfs}}") "true" "ReadonlyRootfs"
            let response = http.GetAsync(url "/healthz").Result
            Expect.equal response.StatusCode HttpStatusCode.OK $"GET /healthz\n{diagnostics ()}")

        // Catches a Dockerfile without the volume (the store could not write on a read-only root), or a /data
        // left to root (the app user could not create the database).
        dockerTest
            "the image declares the data volume /data, owned by the app user, and Data__Path points at it"
            (fun () ->
                let image =
                    dockerOk (minutes 1.0) [
                        "image"
                        "inspect"
                        "-f"
                        "{{json .Config.Volumes}} {{json .Config.Env}}"
                        tag
                    ]

                Expect.stringContains image "\"/data\":{}" "VOLUME /data"
                Expect.stringContains image "\"Data__Path=/data\"" "Data__Path"

                let owner =
                    docker (minutes 1.0) [ "exec"; container.Value.Name; "stat"; "-c"; "%u"; "/data" ]

                Expect.equal
                    (owner.Output.Trim())
                    "1654"
                    $"the owner of /data in the running container\n{owner.Output}")

        dockerTest "the health check is the executable's own --health-check, and it passes" (fun () ->
            Expect.equal
                (inspect "{{json .Config.Healthcheck.Test}}")
                """["CMD","/app/Callback","--health-check"]"""
                "the image's HEALTHCHECK"

            let check =
                docker (minutes 1.0) [ "exec"; container.Value.Name; "/app/Callback"; "--health-check" ]

            Expect.equal check.Code 0 $"exit code of /app/Callback --health-check\n{check.Output}")

        dockerTest "invalid fields are refused with 422, every one named, all five booleans false" (fun () ->
            let response =
                http.PostAsync(url "/callback", form [ "phoneNumber", "911"; "language", "de" ]).Result

            let body = response.Content.ReadAsStringAsync().Result
            Expect.equal response.StatusCode HttpStatusCode.UnprocessableEntity $"422: {body}\n{diagnostics ()}"
            Expect.equal (errorFields body) [ "phoneNumber"; "language" ] "the fields named in errors"
            Expect.equal (stages body) [ false; false; false; false; false ] "five false booleans")

        dockerTest
            "a callback through the container reaches Asterisk, which runs callback-en for the visitor"
            (fun () ->
                let asterisk = running ()
                let offset = logLength asterisk

                let response =
                    http
                        .PostAsync(
                            url "/callback",
                            form [ "phoneNumber", (TestNumbers.distinct 60).Typed; "language", "en" ]
                        )
                        .Result

                let body = response.Content.ReadAsStringAsync().Result
                Expect.equal response.StatusCode HttpStatusCode.OK $"200: {body}\n{diagnostics ()}"
                Expect.equal (stages body) [ true; true; true; true; true ] "five true booleans"

                Expect.isTrue
                    (awaitCallback asterisk offset "en" (TestNumbers.distinct 60).Digits)
                    "Asterisk's log shows callback-en running for Local/15145550360@demo-visitor-…;1")

        dockerTest "docker stop ends the app cleanly (exit 0) in under 10 s" (fun () ->
            let watch = Stopwatch.StartNew()
            dockerOk (minutes 1.0) [ "stop"; "-t"; "10"; container.Value.Name ] |> ignore
            watch.Stop()
            Expect.equal (inspect "{{.State.Running}}") "false" "stopped"
            Expect.equal (inspect "{{.State.ExitCode}}") "0" $"exit code\n{diagnostics ()}"
            Expect.isLessThan watch.Elapsed (TimeSpan.FromSeconds 10.0) "docker stop took under 10 s")
    ]
