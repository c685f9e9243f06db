/// Webhooks through the whole app: settings read at start-up, the outbox on the app's store, the
/// delivery as one of its hosted services, its series on `/metrics`.
module Callback.Tests.WebhookSidecarTests

open System
open System.IO
open System.Text.Json
open System.Threading.Tasks
open Expecto
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Time.Testing
open Callback.Webhooks
open Callback.Tests.FakeAmi
open Callback.Tests.TestSidecar
open Callback.Tests.WebhookReceiver

let private secret = WebhookSecret.generate ()

let private webhooks (url: string) = [ "Webhooks:Url", url; "Webhooks:Secret", secret ]

/// Waits, at most 10 s of real time, for something the app does over loopback.
let private until (condition: unit -> bool) =
    let deadline = DateTime.UtcNow.AddSeconds 10.0

    while not (condition ()) && DateTime.UtcNow < deadline do
        Task.Delay(20).Wait()

[<Tests>]
let tests =
    testList "Webhooks in the sidecar" [
        // Catches webhooks not wired in Program (no hook on the store, or no delivery service), or a
        // payload that is not the call the POST answered.
        test "a spooled callback's call.queued reaches the receiver, signed, and is counted on /metrics" {
            use receiver = new Receiver(secret)
            use server = new Server(script asterisk, Some pki.Value.Server)
            use sidecar = new Sidecar(fakeAmiConfig (webhooks receiver.Url) server.Port)

            let _, body =
                sidecar.Post(form [ "phoneNumber", TestNumbers.Allowed; "language", "en" ])

            let callId = JsonDocument.Parse(body).RootElement.GetProperty("callId").GetString()
            // The real clock: the row is due at once.
            until (fun () -> not receiver.Accepted.IsEmpty)

            let payload = receiver.Accepted |> Seq.exactlyOne |> _.Value
            let root = JsonDocument.Parse(payload).RootElement
            Expect.equal (root.GetProperty("type").GetString()) "call.queued" "type"
            Expect.equal (root.GetProperty("data").GetProperty("callId").GetString()) callId "the call posted"
            Expect.equal (receiver.Received |> List.map _.Verified) [ Some true ] "verified by the package"

            // The receiver has the event before the sidecar has read its answer and counted it.
            let delivered = "callback_webhook_deliveries_total{result=\"delivered\"} 1"

            let metrics () =
                sidecar.Client.GetStringAsync("/metrics").Result

            until (fun () -> (metrics ()).Contains delivered)
            Expect.stringContains (metrics ()) delivered "counted"

            Expect.isFalse
                (sidecar.Log
                 |> List.exists (fun line -> line.Contains(secret.Substring 6) || line.Contains "/hooks"))
                "neither the secret nor the URL's path in the log"
        }

        // Catches pending rows forgotten by a restart, a failure taken for a delivery, or a retry with
        // another webhook-id (the receiver could not drop it).
        test "through a receiver failure and a sidecar restart, the call's event is delivered once, same id" {
            use receiver = new Receiver(secret)
            receiver.Then [ Status 500 ]
            use server = new Server(script asterisk, Some pki.Value.Server)
            let clock = FakeTimeProvider()
            let data = Directory.CreateTempSubdirectory("callback-data-").FullName

            let config =
                fakeAmiConfig (("Data:Path", data) :: webhooks receiver.Url) server.Port

            let withClock (services: IServiceCollection) =
                services.AddSingleton<TimeProvider> clock |> ignore

            let callId =
                use first = new Sidecar(config, withClock)

                let _, body =
                    first.Post(form [ "phoneNumber", TestNumbers.Allowed; "language", "fr" ])

                // The row is due at the system's time of the POST; the delivery's clock moves past it.
                clock.SetUtcNow(DateTimeOffset.UtcNow.AddSeconds 1.0)
                // Until the answer is recorded: stopped before, the row would wait for its lease instead.
                let retried () =
                    first.Client.GetStringAsync("/metrics").Result.Contains "result=\"retry\"} 1"

                until retried
                JsonDocument.Parse(body).RootElement.GetProperty("callId").GetString()

            Expect.equal (receiver.Received |> List.map _.Answered) [ Some 500 ] "failed once"
            // Past the first retry's wait (5 s, at most 10% more), while the sidecar is down.
            clock.Advance(TimeSpan.FromSeconds 6.0)
            use _restarted = new Sidecar(config, withClock)
            until (fun () -> not receiver.Accepted.IsEmpty)

            let payload = receiver.Accepted |> Seq.exactlyOne |> _.Value
            let data = JsonDocument.Parse(payload).RootElement.GetProperty "data"
            Expect.equal (data.GetProperty("callId").GetString()) callId "the call posted"
            Expect.equal (receiver.Received |> List.map _.Answered) [ Some 500; Some 204 ] "retried once"
            Expect.equal (receiver.Received |> List.map _.Id |> List.distinct |> List.length) 1 "one webhook-id"
        }

        // Catches a bad webhook setting that lets the sidecar start unsigned, or prints the secret.
        test "a bad Webhooks__Secret stops start-up, with a message that never prints it" {
            let bad = "whsec_tooShortToBeAKey"

            let result =
                Callback.Program.createApp [||] (fun builder ->
                    Microsoft.Extensions.Configuration.MemoryConfigurationBuilderExtensions.AddInMemoryCollection(
                        builder.Configuration,
                        fakeAmiConfig [ "Webhooks:Url", "https://crm.example.com/hooks"; "Webhooks:Secret", bad ] 1
                        |> List.map Collections.Generic.KeyValuePair
                    )
                    |> ignore)

            match result with
            | Ok _ -> failtest "started with a bad secret"
            | Error errors ->
                Expect.exists errors (fun e -> e.StartsWith "Webhooks__Secret must") "names the setting"
                Expect.all errors (fun e -> not (e.Contains "tooShort")) "never the secret"
        }
    ]
