/// Retries: the pure decision (which outcomes, how many attempts, how far apart), and the monitor applying
/// it in the save that ends an attempt, against the fake AMI and a fake clock: busy then answered is one
/// call of two attempts, `completed`; three no-answers end `failed` after the third, each spaced.
module Callback.Tests.RetriesTests

open System
open System.Threading
open Expecto
open Microsoft.Extensions.Logging.Abstractions
open Microsoft.Extensions.Time.Testing
open Callback.Calls
open Callback.Domain
open Callback.Tests.FakeAmi
open Callback.Tests.SessionTests
open Callback.Tests.MonitorTests

let private cancel = CancellationToken.None

let private policy = {
    MaxAttempts = 3
    Delay = TimeSpan.FromMinutes 2.0
    Jitter = 0.25
}

let private at = DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero)
let private attempt n = (Attempt.tryCreate n).Value

let private decisionTests =
    testList "the decision" [
        // Catches a retry after an answered call, a refusal, an unreachable number, an error or lost.
        test "only busy, no-answer and congestion are tried again" {
            let retried status =
                (Retries.next policy Attempt.first status at 0.5).IsSome

            Expect.isTrue (retried (Failed(Busy, None))) "busy"
            Expect.isTrue (retried (Failed(NoAnswer, None))) "no-answer"
            Expect.isTrue (retried (Failed(Congestion, None))) "congestion"

            for status in
                [
                    Ended(Completed(TimeSpan.FromSeconds 5.0), None)
                    Ended(VisitorHungUp, None)
                    Failed(Rejected, None)
                    Failed(Unreachable, None)
                    Failed(FailedOutcome.Error, None)
                    Failed(FailedOutcome.Lost, None)
                    Live Ringing
                ] do
                Expect.isFalse (retried status) (Names.outcome status |> Option.defaultValue "live")
        }

        // Catches an off-by-one on MaxAttempts (a fourth dial, or only two).
        test "attempts 1 and 2 of 3 get another, the third does not" {
            let next n =
                Retries.next policy (attempt n) (Failed(Busy, None)) at 0.5

            Expect.equal (next 1) (Some(at.AddMinutes 2.0)) "after 1"
            Expect.equal (next 2) (Some(at.AddMinutes 2.0)) "after 2"
            Expect.equal (next 3) None "not after 3"
        }

        testProperty "the next attempt is due within the delay ± the jitter" (fun (seed: int) ->
            let random = float (abs (seed % 1000)) / 1000.0

            let due =
                (Retries.next policy Attempt.first (Failed(NoAnswer, None)) at random).Value

            due >= at.AddSeconds 90.0 && due <= at.AddSeconds 150.0)
    ]

/// `transcript` with its call and attempt made `callId`'s attempt `n`.
let private asAttempt (transcript: string) (callId: CallId) (n: int) =
    let recorded = channelIdIn transcript
    let recordedCall = recorded.Substring(0, recorded.LastIndexOf '-')

    transcript.Replace(recorded, $"{CallId.value callId}-{n}").Replace(recordedCall, CallId.value callId)

/// One call through attempts, each replayed from `transcripts` on the fake AMI, the clock moved to each
/// next attempt's due time: the call as stored at the end, and each attempt's (ended, due) instants.
let private attempts (transcripts: string list) =
    use server = new Server(script (monitorAsterisk (fun () -> [])))
    use temp = new TestStore.TempStore()
    let requests = temp.Store :?> IRequestStore
    let clock = FakeTimeProvider(at)

    let retrying = {
        Next = fun a status ended -> Retries.next policy a status ended 0.5
        Reschedule = fun callId expected ended due -> requests.Retry(callId, expected, ended, due, cancel)
    }

    let monitor =
        new CallMonitor(
            supervisorFor server.Port,
            temp.Store,
            CallFeed(),
            OutcomeCounts(),
            timing,
            clock,
            NullLogger.Instance,
            retrying
        )

    let request = RequestStoreTests.request "15145550234" at None
    Expect.equal (requests.Accept(request, cancel).Result) Accepted "accepted"
    let callId = request.CallId
    monitor.Start()
    eventually "reconciled once" (fun () -> countOf "CoreShowChannels" server = 1)
    let spacing = ResizeArray()

    transcripts
    |> List.iteri (fun i transcript ->
        let n = attempt (i + 1)

        if i > 0 then
            let due = (temp.Find callId).ScheduledFor.Value
            clock.SetUtcNow due
            let claimed = requests.ClaimDue(clock.GetUtcNow(), 8, cancel).Result
            Expect.equal (claimed |> List.map (fun c -> c.CallId, c.Attempt)) [ callId, n ] "the next attempt claimed"

        Expect.isTrue (requests.MarkSent(callId, n, clock.GetUtcNow(), cancel).Result) "sent"
        monitor.Track(callId, n, clock.GetUtcNow())
        clock.Advance(TimeSpan.FromSeconds 20.0)
        server.Push(asAttempt transcript callId (i + 1)) |> within 5.0

        eventually "the attempt ended" (fun () ->
            let call = temp.Find callId
            call.Attempts |> List.exists (fun a -> a.Attempt = n && a.Outcome.IsSome))

        eventually "the monitor let it go" (fun () -> monitor.Live.IsEmpty)
        let call = temp.Find callId
        spacing.Add(call.UpdatedAt, call.ScheduledFor))

    monitor.StopAsync().Wait()
    temp.Find callId, List.ofSeq spacing

let private appliedTests =
    testSequenced
    <| testList "applied by the monitor" [
        // Catches a retry saved apart from the attempt's end, or a history that shows failed then queued.
        test "busy, then answered: one call of two attempts, completed, and its history never says failed" {
            let call, spacing =
                attempts [ fixture "sip-visitor-busy.txt"; fixture "sip-callback-en.txt" ]

            Expect.equal (Names.outcome call.Status) (Some "completed") "completed"
            Expect.equal (Attempt.number call.Attempt) 2 "on attempt 2"

            Expect.equal
                (call.Attempts |> List.map (fun a -> Attempt.number a.Attempt, a.Outcome))
                [ 1, Some "busy"; 2, Some "completed" ]
                "each attempt's outcome"

            let failedAt =
                call.History |> List.filter (fun t -> t.Transition.State = State.Failed)

            Expect.isEmpty failedAt "no failed in the history"
            let ended, due = spacing.Head
            Expect.equal due (Some(ended.AddMinutes 2.0)) "attempt 2 due 2 minutes after attempt 1 ended"
        }

        // Catches retries without a bound, or spaced by something else than the delay.
        test "three no-answers: failed after the third, each attempt due 2 minutes after the one before ended" {
            let noAnswer = fixture "sip-visitor-no-answer.txt"
            let call, spacing = attempts [ noAnswer; noAnswer; noAnswer ]
            Expect.equal (Names.outcome call.Status) (Some "no-answer") "failed no-answer"
            Expect.equal (Attempt.number call.Attempt) 3 "after 3 attempts"
            Expect.equal call.Attempts.Length 3 "three attempts recorded"
            Expect.equal call.ScheduledFor None "no fourth due"

            for ended, due in List.take 2 spacing do
                Expect.equal due (Some(ended.AddMinutes 2.0)) "spaced by the delay"

            Expect.equal
                ((call.History |> List.filter (fun t -> t.Transition.State = State.Failed)).Length)
                1
                "failed once, at the end"
        }
    ]

[<Tests>]
let tests = testList "Retries" [ decisionTests; appliedTests ]
