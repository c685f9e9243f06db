module Callback.Tests.DeliveryTests

open System
open System.Collections.Concurrent
open System.Text
open System.Threading
open System.Threading.Tasks
open Expecto
open Microsoft.Extensions.Logging
open Microsoft.Extensions.Time.Testing
open Prometheus
open Callback.Calls
open Callback.Domain
open Callback.Webhooks
open Callback.Tests.TestOutbox
open Callback.Tests.WebhookReceiver

let private secretText = WebhookSecret.generate ()

let private secret =
    WebhookSecret.tryParse secretText |> Result.defaultWith failwith

let private timeout = TimeSpan.FromSeconds 15.0

/// Every line logged, formatted.
type private Lines() =
    let lines = ConcurrentQueue<LogLevel * string>()
    member _.All = List.ofSeq lines

    interface ILogger with
        member _.BeginScope _ = null
        member _.IsEnabled _ = true

        member _.Log(level, _, state, error, format) =
            lines.Enqueue(level, format.Invoke(state, error))

/// A store with its outbox, a delivery to `urls` and a fake clock that starts now, on a whole second
/// (so `webhook-timestamp` differences are exact).
type private Bed(urls: string list, maxAttempts: int) =
    let clock =
        FakeTimeProvider(DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.ToUnixTimeSeconds()))

    let outbox = new OutboxStore(urls, clock)
    let metrics = WebhookMetrics(Metrics.NewCustomRegistry())
    let lines = Lines()
    let client = WebhookDelivery.CreateClient()

    let settings = {
        Endpoints = urls |> List.map (WebhookEndpoint.tryParse >> Result.defaultWith failwith)
        Secrets = [ secret ]
        Timeout = timeout
        MaxAttempts = maxAttempts
    }

    let create () =
        new WebhookDelivery(
            settings,
            (fun c -> outbox.Sqlite.Connect c),
            client,
            clock,
            outbox.Signal,
            metrics,
            (fun () -> 0.5),
            lines
        )

    let mutable delivery = create ()

    member _.Clock = clock
    member _.Outbox = outbox
    member _.Store = outbox.Store
    member _.Metrics = metrics
    member _.Lines = lines.All
    member _.Delivery = delivery

    /// A restart: the store closed and opened again from its file, and a new delivery.
    member _.Restart() =
        delivery.Dispose()
        outbox.Reopen()
        delivery <- create ()

    member private _.Close() =
        delivery.Dispose()
        client.Dispose()
        (outbox :> IDisposable).Dispose()

    interface IDisposable with
        member this.Dispose() = this.Close()

    interface IAsyncDisposable with
        member this.DisposeAsync() =
            this.Close()
            ValueTask.CompletedTask

/// One round; a request the receiver leaves hanging is ended by moving the clock past the timeout.
let private round (bed: Bed) (receivers: Receiver list) =
    task {
        let hung () = receivers |> List.sumBy _.Hanging
        let mutable seen = hung ()
        let run = bed.Delivery.RunOnce cancel

        while not run.IsCompleted do
            if hung () > seen then
                seen <- hung ()
                bed.Clock.Advance timeout

            // Waits for the HTTP exchange on loopback, not for any time-related behaviour.
            let! _ = Task.WhenAny(run, Task.Delay 20)
            ()

        return! run
    }

/// Rounds until nothing waits (or `rounds` are done), moving the clock to each next due time.
let private drive (bed: Bed) (receivers: Receiver list) (rounds: int) =
    task {
        let mutable left = rounds
        let mutable next = Some(bed.Clock.GetUtcNow())

        while left > 0 && next.IsSome do
            match next with
            | Some at when at > bed.Clock.GetUtcNow() -> bed.Clock.Advance(at - bed.Clock.GetUtcNow())
            | _ -> ()

            let! due = round bed receivers
            next <- due
            left <- left - 1
    }

let private types (rows: Row list) = rows |> List.map _.Type

[<Tests>]
let tests =
    testSequenced
    <| testList "Webhook delivery" [
        // Catches a lost or doubled event, an unsigned delivery, a timeout or 429 taken for success, a
        // followed redirect, and pending rows forgotten by a restart.
        testTask
            "every state change is delivered once after dedup, through failures, a timeout, 429, a redirect and a restart" {
            use receiver = new Receiver(secretText)
            use bed = new Bed([ receiver.Url ], 10)
            receiver.Then [ Status 500; Hang; RetryAfterSeconds 2; Redirect; Status 503 ]
            let call = newCall (bed.Clock.GetUtcNow())
            bed.Store.Create(call, cancel).Result |> ignore
            completedLife call.CallId bed.Store (bed.Clock.GetUtcNow())

            do! drive bed [ receiver ] 3
            bed.Restart()
            do! drive bed [ receiver ] 20

            let rows = bed.Outbox.Rows()
            Expect.equal (types rows) [ "call.queued"; "call.ringing"; "call.answered"; "call.completed" ] "four events"
            Expect.all rows (fun r -> r.State = "delivered") "all delivered"

            Expect.equal
                receiver.Accepted
                (rows |> List.map (fun r -> r.Id, r.Payload) |> Map.ofList)
                "each once after dedup, its exact bytes"

            Expect.all receiver.Received (fun r -> r.Signed) "every request signed"
            Expect.all receiver.Received (fun r -> r.Verified <> Some false) "the package's verifier agrees"
            Expect.equal receiver.Elsewhere 0 "no redirect followed"
            Expect.isGreaterThan receiver.Received.Length 4 "the failures were retried"
            Expect.equal (bed.Metrics.Of "delivered") 4.0 "delivered, counted"
            Expect.equal (bed.Metrics.Of "retry") 5.0 "retries, counted"
            Expect.equal bed.Metrics.Pending 0.0 "nothing pending"

            for _, line in bed.Lines do
                Expect.isFalse (line.Contains(secretText.Substring 6)) "no secret in the log"
                Expect.isFalse (line.Contains "/hooks") "no URL path in the log"
                Expect.isFalse (line.Contains(CallId.value call.CallId)) "no call id in the log"
        }

        // Catches a missing or wrong header, a body re-encoded on the way, or the wrong content type.
        testTask "a delivery posts the stored bytes as application/json with the three Standard Webhooks headers" {
            use receiver = new Receiver(secretText)
            use bed = new Bed([ receiver.Url ], 10)
            bed.Store.Create(newCall (bed.Clock.GetUtcNow()), cancel).Result |> ignore
            do! drive bed [ receiver ] 1

            let row = bed.Outbox.Rows() |> List.exactlyOne
            let got = receiver.Received |> List.exactlyOne
            Expect.equal got.Id row.Id "webhook-id is the row's id"
            Expect.equal got.Timestamp (bed.Clock.GetUtcNow()) "webhook-timestamp is the time sent"
            Expect.equal got.Body row.Payload "the exact bytes"
            Expect.equal got.ContentType "application/json" "content type"
            Expect.equal got.Verified (Some true) "verified by the package"
        }

        // Catches a schedule off by one attempt, no give-up, or a give-up without its count.
        testTask "failures are retried after 5 s, 5 min and 30 min, then given up at MaxAttempts" {
            use receiver = new Receiver(secretText)
            use bed = new Bed([ receiver.Url ], 4)
            receiver.Then(List.replicate 4 (Status 500))
            bed.Store.Create(newCall (bed.Clock.GetUtcNow()), cancel).Result |> ignore
            do! drive bed [ receiver ] 10

            let times = receiver.Received |> List.map _.Timestamp

            Expect.equal
                (times |> List.pairwise |> List.map (fun (a, b) -> b - a))
                [
                    TimeSpan.FromSeconds 5.0
                    TimeSpan.FromMinutes 5.0
                    TimeSpan.FromMinutes 30.0
                ]
                "the schedule"

            Expect.equal (bed.Outbox.Rows() |> List.map _.State) [ "failed" ] "given up"
            Expect.equal (bed.Metrics.Of "failed", bed.Metrics.Of "retry") (1.0, 3.0) "counted"

            Expect.exists bed.Lines (fun (level, line) -> level = LogLevel.Error && line.Contains "given up") "logged"
        }

        // Catches Retry-After ignored, or its HTTP-date form misread.
        testTask "Retry-After is honoured, in seconds and as an HTTP date" {
            use receiver = new Receiver(secretText)
            use bed = new Bed([ receiver.Url ], 10)
            let start = bed.Clock.GetUtcNow()

            receiver.Then [
                RetryAfterSeconds 120
                RetryAfterDate(start + TimeSpan.FromSeconds 120.0 + TimeSpan.FromMinutes 10.0)
            ]

            bed.Store.Create(newCall start, cancel).Result |> ignore
            do! drive bed [ receiver ] 5

            Expect.equal
                (receiver.Received |> List.map (fun r -> r.Timestamp - start))
                [ TimeSpan.Zero; TimeSpan.FromSeconds 120.0; TimeSpan.FromSeconds 720.0 ]
                "after 2 min, then at the date"
        }

        // Catches a 410 that is retried, disables every endpoint, or is logged at each row.
        testTask "410 disables that endpoint only: its rows are not sent, logged once and counted" {
            use gone = new Receiver(secretText)
            use alive = new Receiver(secretText)
            use bed = new Bed([ gone.Url; alive.Url ], 10)
            gone.Then [ Status 410 ]
            let call = newCall (bed.Clock.GetUtcNow())
            bed.Store.Create(call, cancel).Result |> ignore
            save bed.Store call.CallId (move State.Queued (Live Ringing) (bed.Clock.GetUtcNow()))
            do! drive bed [ gone; alive ] 3
            save bed.Store call.CallId (move State.Ringing (Live Answered) (bed.Clock.GetUtcNow()))
            do! drive bed [ gone; alive ] 3

            Expect.equal gone.Received.Length 1 "one request, then nothing"
            Expect.equal alive.Accepted.Count 3 "the other endpoint gets every event"

            Expect.equal
                (bed.Outbox.Rows()
                 |> List.filter (fun r -> r.Endpoint = gone.Url)
                 |> List.map _.State)
                [ "disabled"; "disabled"; "disabled" ]
                "disabled rows"

            Expect.equal bed.Metrics.Disabled 1.0 "one disabled endpoint"

            Expect.equal
                (bed.Lines |> List.filter (fun (_, line) -> line.Contains "410") |> List.length)
                1
                "logged once"
        }

        // Catches a delivery lost when the sidecar dies between its claim and its answer.
        testTask "a delivery cut short by a crash is made after its lease, with the same webhook-id" {
            use receiver = new Receiver(secretText)
            use bed = new Bed([ receiver.Url ], 10)
            let now = bed.Clock.GetUtcNow()
            bed.Store.Create(newCall now, cancel).Result |> ignore

            do!
                task {
                    use! connection = bed.Outbox.Sqlite.Connect cancel
                    let! _ = Outbox.claim connection [ receiver.Url ] now (now.AddMinutes 2.0) 10 cancel
                    ()
                }

            bed.Restart()
            let! _ = round bed [ receiver ]
            Expect.isEmpty receiver.Received "leased: not yet"
            bed.Clock.Advance(TimeSpan.FromMinutes 2.0)
            let! _ = round bed [ receiver ]

            let row = bed.Outbox.Rows() |> List.exactlyOne
            Expect.equal (receiver.Received |> List.map _.Id) [ row.Id ] "sent once, same id"
            Expect.equal (row.State, row.Attempts) ("delivered", 2) "the crashed attempt counted"
        }

        // Catches a running service that waits for its poll instead of the outbox's signal.
        testTask "the running service delivers a new event when its row is written, without the clock moving" {
            use receiver = new Receiver(secretText)
            use bed = new Bed([ receiver.Url ], 10)
            do! bed.Delivery.StartAsync cancel
            bed.Store.Create(newCall (bed.Clock.GetUtcNow()), cancel).Result |> ignore
            let deadline = DateTime.UtcNow.AddSeconds 10.0

            while receiver.Accepted.Count = 0 && DateTime.UtcNow < deadline do
                // Waits for the loop's HTTP request on loopback; the fake clock never moves.
                do! Task.Delay 20

            do! bed.Delivery.StopAsync cancel
            Expect.equal receiver.Accepted.Count 1 "delivered"
        }
    ]
