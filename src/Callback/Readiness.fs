namespace Callback

open System
open System.Threading
open System.Threading.Tasks
open Microsoft.Extensions.Diagnostics.HealthChecks
open Callback.Ami
open Callback.Callbacks

/// `GET /readyz`: ready while callbacks are taken and Asterisk's manager port answers a greeting (TCP, TLS
/// as configured, `Asterisk Call Manager/`), without logging in. The answer is kept for `interval`, and
/// concurrent checks share one probe, so a busy load balancer never opens more than one AMI connection per
/// interval.
[<Sealed>]
type AsteriskReadiness(endpoint: Endpoint, interval: TimeSpan, inFlight: CallbacksInFlight, time: TimeProvider) =
    let probing = new SemaphoreSlim(1, 1)
    let mutable last: (DateTimeOffset * HealthCheckResult) option = None
    let mutable probes = 0

    let fresh () =
        match last with
        | Some(at, result) when time.GetUtcNow() - at < interval -> Some result
        | _ -> None

    let probe (ct: CancellationToken) =
        task {
            Interlocked.Increment &probes |> ignore

            match! Connection.Open(endpoint, ct) with
            | Ok connection ->
                (connection :> IDisposable).Dispose()
                return HealthCheckResult.Healthy "Asterisk's manager answered."
            | Error e -> return HealthCheckResult.Unhealthy $"Asterisk's manager: {ConnectError.describe e}."
        }

    let cachedProbe (ct: CancellationToken) : Task<HealthCheckResult> =
        task {
            match fresh () with
            | Some result -> return result
            | None ->
                do! probing.WaitAsync ct

                try
                    match fresh () with
                    | Some result -> return result
                    | None ->
                        let! result = probe ct
                        last <- Some(time.GetUtcNow(), result)
                        return result
                finally
                    probing.Release() |> ignore
        }

    /// How many times Asterisk was actually probed (for the tests of the caching).
    member _.Probes = probes

    interface IHealthCheck with
        member _.CheckHealthAsync(_, ct) =
            if inFlight.Accepting then
                cachedProbe ct
            else
                Task.FromResult(HealthCheckResult.Unhealthy "Shutting down: new callbacks are refused.")

    interface IDisposable with
        member _.Dispose() = probing.Dispose()
