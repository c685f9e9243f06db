module Callback.Tests.ShutdownTests

open System
open System.Net
open System.Net.Http
open System.Threading
open System.Threading.Tasks
open Expecto
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Hosting
open Microsoft.Extensions.Logging.Abstractions
open Microsoft.Extensions.Options
open Callback.Callbacks
open Callback.Tests.FakeAmi
open Callback.Tests.Programs
open Callback.Tests.TestSidecar

let private postFor client number (sidecar: Sidecar) =
    postFrom sidecar IPAddress.Loopback [ "X-Forwarded-For", client ] [ "phoneNumber", number; "language", "en" ]

/// A fake Asterisk that holds each Originate until `release` is set.
let private holdingOriginate (release: ManualResetEventSlim) =
    asteriskExcept "Originate" (fun action ->
        release.Wait()
        Send(response "Success" action.ActionId "Originate successfully queued"))

type private Flag() =
    member val Disposals = 0 with get, set
    member this.Disposed = this.Disposals > 0

    interface IDisposable with
        member this.Dispose() = this.Disposals <- this.Disposals + 1

let private lifetime () =
    Internal.ApplicationLifetime(NullLogger<Internal.ApplicationLifetime>.Instance)

[<Tests>]
let tests =
    // One at a time: each holds a fake Asterisk's thread mid-call, and two together starve the thread pool
    // of a 2-core machine long enough for a held call to pass its response timeout.
    testSequenced
    <| testList "Shutdown" [
        test "a callback in flight at shutdown finishes with Logoff; a new one gets 503; the host waits for it" {
            use release = new ManualResetEventSlim()
            use server = new Server(script (holdingOriginate release), Some pki.Value.Server)

            use sidecar =
                new Sidecar(fakeAmiConfig [ "Ami:ResponseTimeout", "30000" ] server.Port)

            let inFlight = Task.Run(fun () -> postFor "203.0.113.1" "5145550401" sidecar)

            Expect.isTrue
                (eventually (TimeSpan.FromSeconds 10.0) (fun () -> List.contains "Originate" server.ActionNames))
                "the callback is waiting for its Originate's answer"

            let stopping = sidecar.App.StopAsync()
            let late = postFor "203.0.113.2" "5145550402" sidecar
            Thread.Sleep 300
            // Mutation caught: without the drain the host stops at once and the call loses its Logoff.
            Expect.isFalse stopping.IsCompleted "shutdown waits for the callback in flight"
            release.Set()
            let answer = inFlight.Result
            Expect.isTrue (stopping.Wait(TimeSpan.FromSeconds 10.0)) "then the host stops"
            Expect.equal answer.Status 200 "the callback in flight completed"
            Expect.equal (stages answer.Body) [ true; true; true; true; true ] "Logoff included"
            Expect.equal server.ActionNames [ "Login"; "Originate"; "Logoff" ] "the whole session"
            Expect.equal late.Status 503 "a callback after shutdown began is refused"
            Expect.equal (stages late.Body) [ false; false; false; false; false ] "in the contract"
            Expect.equal (errorFields late.Body) [ "request" ] "with its reason"
            Expect.equal server.Sessions 1 "the late callback never reached Asterisk"
        }

        test "on SIGTERM the real program finishes the call in flight, answers a new one 503, then exits 0" {
            use release = new ManualResetEventSlim()
            use server = new Server(script (holdingOriginate release), Some pki.Value.Server)

            use sidecar =
                SidecarProgram.start [
                    "Ami__Host", "127.0.0.1"
                    "Ami__Port", string server.Port
                    "Ami__CaCertificate", pki.Value.WriteCaPem()
                    "Ami__Username", "callback"
                    "Ami__Secret", "s3cret-Value"
                    "Ami__ResponseTimeout", "30000"
                    "Originate__Channel", "PJSIP/{number}@trunk"
                ]

            Expect.isTrue (sidecar.AwaitHealthy()) $"the sidecar starts:\n{sidecar.Program.Output}"
            use client = new HttpClient()

            let post (number: string) =
                task {
                    let! r =
                        client.PostAsync(sidecar.Url + "callback", form [ "phoneNumber", number; "language", "en" ])

                    let! body = r.Content.ReadAsStringAsync()
                    return int r.StatusCode, body
                }

            let inFlight = post "5145550401"

            Expect.isTrue
                (eventually (TimeSpan.FromSeconds 10.0) (fun () -> List.contains "Originate" server.ActionNames))
                "the callback is waiting for its Originate's answer"

            run [] (TimeSpan.FromSeconds 5.0) "kill" [ "-TERM"; string sidecar.Program.Process.Id ]
            |> ignore

            Expect.isTrue
                (eventually (TimeSpan.FromSeconds 5.0) (fun () -> sidecar.Program.Output.Contains "shutting down"))
                "shutdown began"

            // A new connection: the server still listens while the call in flight finishes.
            let watch = Diagnostics.Stopwatch.StartNew()
            let lateStatus, lateBody = (post "5145550402").Result
            let lateAfter = watch.Elapsed
            release.Set()
            let status, body = inFlight.Result
            Expect.isTrue (sidecar.Program.Process.WaitForExit(TimeSpan.FromSeconds 10.0)) "then it exits"
            Expect.equal sidecar.Program.Process.ExitCode 0 "cleanly"

            Expect.equal
                (status, stages body)
                (200, [ true; true; true; true; true ])
                $"the call, Logoff included (the late one answered after {lateAfter}):\n{sidecar.Program.Output}"

            Expect.equal server.ActionNames [ "Login"; "Originate"; "Logoff" ] "the whole session"
            Expect.equal (lateStatus, errorFields lateBody) (503, [ "request" ]) "the late callback refused"
            Expect.equal server.Sessions 1 "and never sent"
        }

        // Catches event streams that outlive ApplicationStopping: Kestrel would wait for them up to the
        // shutdown timeout (30 s by default) before it exits.
        test "on SIGTERM the real program ends an open event stream and exits at once, exit code 0" {
            let data, callId = SidecarProgram.dataWithQueuedCall ()

            // No Asterisk at all: the monitor never connects, so nothing reconciles (or moves) the call.
            use sidecar =
                SidecarProgram.start [
                    "Ami__Host", "127.0.0.1"
                    "Ami__Port", string (Loopback.freePort ())
                    "Ami__CaCertificate", pki.Value.WriteCaPem()
                    "Ami__Username", "callback"
                    "Ami__Secret", "s3cret-Value"
                    "Originate__Channel", "PJSIP/{number}@trunk"
                    // A monitor is configured, so the stream of a live call stays open.
                    "Monitor__Username", "callback-monitor"
                    "Monitor__Secret", "m0nitor-Value"
                    "Data__Path", data
                ]

            Expect.isTrue (sidecar.AwaitHealthy()) $"the sidecar starts:\n{sidecar.Program.Output}"
            use client = new HttpClient()

            use response =
                client.GetAsync(sidecar.Url + $"calls/{callId}/events", HttpCompletionOption.ResponseHeadersRead).Result

            use reader = new IO.StreamReader(response.Content.ReadAsStream())
            Expect.equal (reader.ReadLine()) "event: state" "the stream is open, its first frame sent"
            let rest = reader.ReadToEndAsync()
            Thread.Sleep 300
            Expect.isFalse rest.IsCompleted "and it stays open"
            let watch = Diagnostics.Stopwatch.StartNew()

            run [] (TimeSpan.FromSeconds 5.0) "kill" [ "-TERM"; string sidecar.Program.Process.Id ]
            |> ignore

            Expect.isTrue (sidecar.Program.Process.WaitForExit(TimeSpan.FromSeconds 10.0)) "it exits"
            Expect.isLessThan watch.Elapsed (TimeSpan.FromSeconds 3.0) $"at once:\n{sidecar.Program.Output}"
            Expect.equal sidecar.Program.Process.ExitCode 0 "cleanly"
            Expect.isTrue (rest.Wait(TimeSpan.FromSeconds 2.0)) "the stream ended"
        }

        test "the shutdown timeout covers the longest callback: 2 × ConnectTimeout + 3 × ResponseTimeout + 5 s" {
            use server = new Server(script asterisk, Some pki.Value.Server)

            use sidecar =
                new Sidecar(fakeAmiConfig [ "Ami:ConnectTimeout", "3000"; "Ami:ResponseTimeout", "2000" ] server.Port)

            let options = sidecar.App.Services.GetRequiredService<IOptions<HostOptions>>()
            Expect.equal options.Value.ShutdownTimeout (TimeSpan.FromSeconds 17.0) "6 s + 6 s + 5 s"
        }

        test "callbacks are refused from the stop request itself, before the host stops its services" {
            // Mutation caught: refusing only from StoppingAsync took a callback that came in between.
            let inFlight = CallbacksInFlight()
            let stop = lifetime ()

            let drain =
                new ShutdownDrain(inFlight, TimeSpan.FromSeconds 1.0, [], stop) :> IHostedLifecycleService

            (drain.StartAsync CancellationToken.None).Wait()
            Expect.isTrue inFlight.Accepting "taken while running"
            stop.StopApplication()
            Expect.isFalse (inFlight.TryEnter()) "refused at once"
        }

        test "the drain ends only when the last callback leaves, and disposes the gate only after that" {
            let inFlight = CallbacksInFlight()
            let gate = new Flag()

            let drain =
                new ShutdownDrain(inFlight, TimeSpan.FromSeconds 10.0, [ gate ], lifetime ()) :> IHostedLifecycleService

            Expect.isTrue (inFlight.TryEnter()) "a callback in flight"
            let stopping = drain.StoppingAsync CancellationToken.None
            Thread.Sleep 100
            Expect.isFalse stopping.IsCompleted "waits for it"
            Expect.isFalse (inFlight.TryEnter()) "no new callback is taken"
            Expect.isFalse gate.Disposed "the gate is still open for it"
            inFlight.Leave()
            Expect.isTrue (stopping.Wait(TimeSpan.FromSeconds 2.0)) "done once it leaves"
            Expect.isFalse gate.Disposed "not disposed while the server stops"
            (drain.StoppedAsync CancellationToken.None).Wait()
            Expect.isTrue gate.Disposed "disposed at the very end"
        }

        test "a host disposed without a stop still disposes the resources, and a stopped one only once" {
            let unstopped = new Flag()
            (new ShutdownDrain(CallbacksInFlight(), TimeSpan.Zero, [ unstopped ], lifetime ()) :> IDisposable).Dispose()
            Expect.equal unstopped.Disposals 1 "disposed with the container"
            let stopped = new Flag()

            let drain =
                new ShutdownDrain(CallbacksInFlight(), TimeSpan.Zero, [ stopped ], lifetime ())

            ((drain :> IHostedLifecycleService).StoppedAsync CancellationToken.None).Wait()
            (drain :> IDisposable).Dispose()
            Expect.equal stopped.Disposals 1 "once"
        }
    ]
