namespace Callback.Webhooks

open Prometheus

/// The webhook delivery's series, in the app's own registry beside the other metrics.
[<Sealed>]
type WebhookMetrics(registry: CollectorRegistry) =
    let factory = Metrics.WithCustomRegistry registry

    let deliveries =
        factory.CreateCounter(
            "callback_webhook_deliveries_total",
            "Webhook deliveries by result: delivered (2xx), retry (failed, tried again later), failed (its last attempt failed), disabled (the endpoint answered 410 Gone).",
            CounterConfiguration(LabelNames = [| "result" |])
        )

    let pending =
        factory.CreateGauge(
            "callback_webhook_pending",
            "Webhook deliveries waiting for their time, to the configured endpoints."
        )

    let disabled =
        factory.CreateGauge(
            "callback_webhook_endpoints_disabled",
            "Webhook endpoints that answered 410 Gone since the start: they are sent nothing more until a restart."
        )

    do
        // Each result's series exists from the start at 0, so a rate() or an alert sees its first one.
        for result in [ "delivered"; "retry"; "failed"; "disabled" ] do
            deliveries.WithLabels result |> ignore

    member _.Count(result: string) = deliveries.WithLabels(result).Inc()

    member _.Of(result: string) = deliveries.WithLabels(result).Value

    member _.SetPending(count: int64) = pending.Set(float count)

    member _.SetDisabled(count: int) = disabled.Set(float count)

    member _.Pending = pending.Value

    member _.Disabled = disabled.Value
