module Callback.Tests.MetricsTests

open System
open System.Globalization
open System.Net
open System.Threading
open System.Threading.Tasks
open Expecto
open Callback.Tests.FakeAmi
open Callback.Tests.Programs
open Callback.Tests.TestSidecar

let private postFor client number (sidecar: Sidecar) =
    postFrom sidecar IPAddress.Loopback [ "X-Forwarded-For", client ] [ "phoneNumber", number; "language", "en" ]

/// The value of one series (`name{labels}` exactly as prometheus-net writes it) in a scrape of `/metrics`.
let private sample (sidecar: Sidecar) (series: string) =
    let text = sidecar.Client.GetStringAsync("/metrics").Result

    text.Split('\n')
    |> Array.tryPick (fun line ->
        if line.StartsWith(series + " ") then
            Some(Double.Parse(line.Substring(series.Length + 1), CultureInfo.InvariantCulture))
        else
            None)
    |> Option.defaultWith (fun () -> failtestf "%s is not in /metrics:\n%s" series text)

let private calls outcome =
    $"callback_calls_total{{outcome=\"{outcome}\"}}"

let private refusals reason =
    $"callback_refusals_total{{reason=\"{reason}\"}}"

[<Tests>]
let tests =
    testList "Metrics" [
        test "after known traffic every counter holds exactly what happened" {
            use server = new Server(script asterisk, Some pki.Value.Server)

            use sidecar =
                new Sidecar(
                    fakeAmiConfig
                        [
                            "Callback:PerClientPerMinute", "2"
                            "Callback:AllowedOrigins", "https://shop.example.org"
                            // The number again is then the number's limit, not a duplicate.
                            "Callback:DuplicateWindow", "00:00:00"
                        ]
                        server.Port
                )

            let statuses = [
                (postFor "203.0.113.1" "5145550401" sidecar).Status
                (postFor "203.0.113.1" "5145550402" sidecar).Status
                (postFor "203.0.113.1" "5145550403" sidecar).Status // the client's third: rate-limited
                (postFor "203.0.113.2" "5145550401" sidecar).Status // the number again: rate-limited
                (postFrom sidecar IPAddress.Loopback [] [ "phoneNumber", "911"; "language", "en" ]).Status
                (postFrom sidecar IPAddress.Loopback [] [ "language", "de" ]).Status
                (postFrom sidecar IPAddress.Loopback [ "Origin", "https://evil.example.net" ] []).Status
                // Valid, but in the fictional 555-0100 … 0199 range the destination policy refuses.
                (postFor "203.0.113.3" "5145550123" sidecar).Status
            ]

            Expect.equal statuses [ 200; 200; 429; 429; 422; 422; 403; 422 ] "the traffic"

            Expect.equal
                (sample sidecar "callback_callbacks_total{status=\"200\",failed_stage=\"none\"}")
                2.0
                "two calls placed"

            Expect.equal (sample sidecar (refusals "rate-limited")) 2.0 "client and number limits"
            Expect.equal (sample sidecar (refusals "invalid")) 2.0 "two invalid"
            Expect.equal (sample sidecar (refusals "origin")) 1.0 "one cross-site"
            // Mutation caught: without the policy step's mark its 422 would count as invalid (3 and 0).
            Expect.equal (sample sidecar (refusals "policy")) 1.0 "one destination refused"
            Expect.equal (sample sidecar (refusals "busy")) 0.0 "never busy"
            Expect.equal (sample sidecar "callback_ami_session_duration_seconds_count") 2.0 "two AMI sessions"
            Expect.equal (sample sidecar "callback_ami_sessions_in_use") 0.0 "none open now"
        }

        test "a failed stage is counted with its status and stage" {
            use server =
                new Server(script (refusing "Originate" "Originate failed"), Some pki.Value.Server)

            use sidecar = new Sidecar(fakeAmiConfig [] server.Port)
            Expect.equal (postFor "203.0.113.1" "5145550401" sidecar).Status 502 "Originate refused"

            Expect.equal
                (sample sidecar "callback_callbacks_total{status=\"502\",failed_stage=\"originate\"}")
                1.0
                "counted as a 502 at Originate"
        }

        test "sessions in use and queued are seen while they last; a refusal past the queue is busy" {
            use release = new ManualResetEventSlim()

            let holding =
                asteriskExcept "Originate" (fun action ->
                    release.Wait()
                    Send(response "Success" action.ActionId "Originate successfully queued"))

            use server = new Server(script holding, Some pki.Value.Server)

            use sidecar =
                new Sidecar(
                    fakeAmiConfig
                        [
                            "Ami:MaxSessions", "1"
                            "Ami:MaxQueued", "1"
                            "Ami:ResponseTimeout", "30000"
                            "Ami:ConnectTimeout", "10000"
                        ]
                        server.Port
                )

            let first = Task.Run(fun () -> postFor "203.0.113.1" "5145550401" sidecar)

            Expect.isTrue
                (eventually (TimeSpan.FromSeconds 10.0) (fun () -> List.contains "Originate" server.ActionNames))
                "the first is in its session"

            let second = Task.Run(fun () -> postFor "203.0.113.2" "5145550402" sidecar)

            Expect.isTrue
                (eventually (TimeSpan.FromSeconds 5.0) (fun () -> sample sidecar "callback_ami_sessions_queued" = 1.0))
                "the second waits"

            Expect.equal (sample sidecar "callback_ami_sessions_in_use") 1.0 "one open"
            Expect.equal (postFor "203.0.113.3" "5145550403" sidecar).Status 503 "the third: no room to wait"
            release.Set()
            Expect.equal (first.Result.Status, second.Result.Status) (200, 200) "the two complete"
            Expect.equal (sample sidecar (refusals "busy")) 1.0 "one busy refusal"
            Expect.equal (sample sidecar "callback_ami_sessions_queued") 0.0 "nobody waits now"
        }

        // Catches an outcome series that appears only once it happens (a rate() or an alert would miss the
        // first), or a refused Originate's call that the outcome counter never sees.
        test "without a monitor: every outcome's series from start-up, a refused Originate counted as error" {
            use server =
                new Server(script (refusing "Originate" "Originate failed"), Some pki.Value.Server)

            use sidecar = new Sidecar(fakeAmiConfig [] server.Port)

            for name in Callback.Calls.Names.outcomes do
                Expect.equal (sample sidecar (calls name)) 0.0 $"{name} at 0"

            Expect.equal (sample sidecar "callback_monitor_connected") 0.0 "no monitor, not connected"
            Expect.equal (postFor "203.0.113.1" "5145550401" sidecar).Status 502 "Originate refused"
            Expect.equal (sample sidecar (calls "error")) 1.0 "its call failed with error"
            Expect.equal (sample sidecar (calls "busy")) 0.0 "nothing else"
        }

        // Catches monitor series that are never fed: connected stuck at 0, events or reconnects not
        // counted, an ended call not counted by its outcome.
        test "with a monitor: connected, events received, a busy call by its outcome, a reconnect" {
            use server = Callback.Tests.MonitorTests.tlsAsterisk ()

            use sidecar =
                new Sidecar(
                    fakeAmiConfig
                        [
                            "Monitor:Username", "callback-monitor"
                            "Monitor:Secret", "monitor-s3cret"
                            // A busy call is final at once, not retried.
                            "Callback:MaxAttempts", "1"
                        ]
                        server.Port
                )

            let metric name = sample sidecar name

            let connected () =
                metric "callback_monitor_connected" = 1.0

            Expect.isTrue (eventually (TimeSpan.FromSeconds 10.0) connected) "connected"
            let answer = postFor "203.0.113.1" "5145550401" sidecar
            Expect.equal answer.Status 200 "placed"

            let channelId =
                Text.Json.JsonDocument.Parse(answer.Body).RootElement.GetProperty("callId").GetString()
                + "-1"

            server.Push(
                $"Event: Newchannel\r\nChannel: PJSIP/trunk-1\r\nUniqueid: {channelId}\r\nLinkedid: {channelId}\r\n\r\n"
                + $"Event: Hangup\r\nChannel: PJSIP/trunk-1\r\nUniqueid: {channelId}\r\nLinkedid: {channelId}\r\nCause: 17\r\nCause-txt: User busy\r\n\r\n"
            )
            |> Callback.Tests.SessionTests.within 5.0

            Expect.isTrue
                (eventually (TimeSpan.FromSeconds 10.0) (fun () -> metric (calls "busy") = 1.0))
                "the busy call counted once saved"

            Expect.isGreaterThanOrEqual (metric "callback_monitor_events_received_total") 2.0 "both events read"
            Expect.equal (metric "callback_monitor_events_dropped_total") 0.0 "none dropped"
            Expect.equal (metric "callback_monitor_reconnects_total") 0.0 "no reconnect yet"
            server.Kick()

            Expect.isTrue
                (eventually (TimeSpan.FromSeconds 10.0) (fun () ->
                    metric "callback_monitor_reconnects_total" = 1.0 && connected ()))
                "one reconnect, connected again"
        }
    ]
