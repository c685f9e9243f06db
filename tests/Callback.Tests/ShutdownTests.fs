module Callback.Tests.ShutdownTests

open System
open System.Net
open System.Threading
open System.Threading.Tasks
open Expecto
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Hosting
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
    member val Disposed = false with get, set

    interface IDisposable with
        member this.Dispose() = this.Disposed <- true

[<Tests>]
let tests =
    testList "Shutdown" [
        test "a callback in flight at shutdown finishes with Logoff; a new one gets 503; the host waits for it" {
            use release = new ManualResetEventSlim()
            use server = new Server(script (holdingOriginate release), Some pki.Value.Server)

            use sidecar =
                new Sidecar(fakeAmiConfig [ "Ami:ResponseTimeout", "10000" ] server.Port)

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

        test "the shutdown timeout covers the longest callback: 2 × ConnectTimeout + 3 × ResponseTimeout + 5 s" {
            use server = new Server(script asterisk, Some pki.Value.Server)

            use sidecar =
                new Sidecar(fakeAmiConfig [ "Ami:ConnectTimeout", "3000"; "Ami:ResponseTimeout", "2000" ] server.Port)

            let options = sidecar.App.Services.GetRequiredService<IOptions<HostOptions>>()
            Expect.equal options.Value.ShutdownTimeout (TimeSpan.FromSeconds 17.0) "6 s + 6 s + 5 s"
        }

        test "the drain ends only when the last callback leaves, and disposes the gate only after that" {
            let inFlight = CallbacksInFlight()
            let gate = new Flag()

            let drain =
                new ShutdownDrain(inFlight, TimeSpan.FromSeconds 10.0, [ gate ]) :> IHostedLifecycleService

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
    ]
