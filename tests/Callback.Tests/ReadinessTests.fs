module Callback.Tests.ReadinessTests

open System
open System.Net
open System.Threading
open System.Threading.Tasks
open Expecto
open Microsoft.Extensions.Diagnostics.HealthChecks
open Callback
open Callback.Ami
open Callback.Callbacks
open Callback.Tests.FakeAmi
open Callback.Tests.Loopback
open Callback.Tests.TestSidecar

/// A clock that moves only when told to.
type private ManualClock() =
    inherit TimeProvider()
    member val Now = DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero) with get, set
    override this.GetUtcNow() = this.Now

let private endpointFor port = {
    Host = "127.0.0.1"
    Port = port
    Transport = Tls [ pki.Value.Ca ]
    ConnectTimeout = TimeSpan.FromSeconds 2.0
}

let private check (readiness: AsteriskReadiness) =
    ((readiness :> IHealthCheck).CheckHealthAsync(HealthCheckContext(), CancellationToken.None)).Result.Status

let private readyz (sidecar: Sidecar) =
    sidecar.Client.GetAsync("/readyz").Result.StatusCode

[<Tests>]
let tests =
    testList "Readiness" [
        test "/readyz is 200 when Asterisk's manager answers its greeting, and it never logs in" {
            use server = new Server(script asterisk, Some pki.Value.Server)
            use sidecar = new Sidecar(fakeAmiConfig [] server.Port)
            Expect.equal (readyz sidecar) HttpStatusCode.OK "ready"
            Expect.equal server.Sessions 1 "one probe"
            Expect.isEmpty server.ActionNames "no Login, no action at all"
        }

        test "/readyz is 503 when nothing listens on the manager port, while /healthz stays 200" {
            use sidecar = new Sidecar(fakeAmiConfig [] (freePort ()))
            Expect.equal (readyz sidecar) HttpStatusCode.ServiceUnavailable "not ready"
            Expect.equal (sidecar.Client.GetAsync("/healthz").Result.StatusCode) HttpStatusCode.OK "alive"
        }

        test "/readyz is 503 when the port answers something that is not Asterisk" {
            use server =
                new Server(
                    {
                        script asterisk with
                            Greeting = Some "SSH-2.0-OpenSSH_9.6\r\n"
                    },
                    Some pki.Value.Server
                )

            use sidecar = new Sidecar(fakeAmiConfig [] server.Port)
            Expect.equal (readyz sidecar) HttpStatusCode.ServiceUnavailable "a wrong greeting"
        }

        test "/healthz never touches AMI, even with the readiness check registered" {
            use server = new Server(script asterisk, Some pki.Value.Server)
            use sidecar = new Sidecar(fakeAmiConfig [] server.Port)

            for _ in 1..3 do
                Expect.equal (sidecar.Client.GetAsync("/healthz").Result.StatusCode) HttpStatusCode.OK "alive"

            Expect.equal server.Sessions 0 "no connection"
        }

        test "many /readyz within 5 s open one AMI connection" {
            use server = new Server(script asterisk, Some pki.Value.Server)
            use sidecar = new Sidecar(fakeAmiConfig [] server.Port)

            for _ in 1..5 do
                Expect.equal (readyz sidecar) HttpStatusCode.OK "ready"

            Expect.equal server.Sessions 1 "one probe for all five"
        }

        test "an answer is kept for the interval, then Asterisk is asked again" {
            let server = new Server(script asterisk, Some pki.Value.Server)
            let clock = ManualClock()

            use readiness =
                new AsteriskReadiness(endpointFor server.Port, TimeSpan.FromSeconds 5.0, CallbacksInFlight(), clock)

            Expect.equal (check readiness) HealthStatus.Healthy "ready"
            (server :> IDisposable).Dispose()
            clock.Now <- clock.Now.AddSeconds 4.0
            // Mutation caught: no cache would see the stopped server now; a cache kept forever never would.
            Expect.equal (check readiness) HealthStatus.Healthy "the kept answer"
            Expect.equal readiness.Probes 1 "not asked again"
            clock.Now <- clock.Now.AddSeconds 2.0
            Expect.equal (check readiness) HealthStatus.Unhealthy "asked again: gone"
            Expect.equal readiness.Probes 2 "a second probe"
        }

        test "concurrent checks share one probe" {
            use server = new Server(script asterisk, Some pki.Value.Server)

            use readiness =
                new AsteriskReadiness(
                    endpointFor server.Port,
                    TimeSpan.FromSeconds 5.0,
                    CallbacksInFlight(),
                    TimeProvider.System
                )

            let statuses =
                [ for _ in 1..10 -> Task.Run(fun () -> check readiness) ]
                |> Task.WhenAll
                |> _.Result

            Expect.all statuses ((=) HealthStatus.Healthy) "all ready"
            Expect.equal readiness.Probes 1 "one probe"
            Expect.equal server.Sessions 1 "one connection"
        }

        test "not ready once shutdown has begun, without asking Asterisk" {
            use server = new Server(script asterisk, Some pki.Value.Server)
            let inFlight = CallbacksInFlight()

            use readiness =
                new AsteriskReadiness(endpointFor server.Port, TimeSpan.FromSeconds 5.0, inFlight, TimeProvider.System)

            inFlight.StopAccepting() |> ignore
            Expect.equal (check readiness) HealthStatus.Unhealthy "draining"
            Expect.equal server.Sessions 0 "no probe"
        }
    ]
