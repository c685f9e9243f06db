module Callback.Tests.PipelineTests

open System
open System.Diagnostics
open System.Threading
open Expecto
open Callback
open Callback.Ami
open Callback.Domain
open Callback.Tests.FakeAmi
open Callback.Tests.Loopback

/// A gate that never makes these tests wait: the session limit has tests of its own.
let roomyGate = new SessionGate(64)

let settingsFor (port: int) (transport: Transport) : Settings = {
    Ami = {
        Endpoint = {
            Host = "127.0.0.1"
            Port = port
            Transport = transport
            ConnectTimeout = TimeSpan.FromSeconds 2.0
        }
        Username = "callback"
        Secret = Secret "s3cret-Value"
        ResponseTimeout = TimeSpan.FromMilliseconds 400.0
        MaxSessions = 8
        MaxQueued = 32
        MaxMessageBytes = FrameReader.DefaultMaxMessageBytes
    }
    Originate = {
        Channel = "PJSIP/{number}@trunk"
        Context = "callback-{language}"
        Exten = "s"
        Priority = 1
        CallerId = Some "Web callback <5145550000>"
        Timeout = TimeSpan.FromSeconds 30.0
    }
    Proxy = {
        KnownProxies = []
        KnownNetworks = []
    }
    Protection = {
        AllowedOrigins = []
        PerClientPerMinute = 5
        GlobalPerMinute = 20
        PerNumberInterval = TimeSpan.FromMinutes 2.0
        PerNumberPerDay = 5
    }
    Destination = DestinationPolicy.defaults
    DemoEnabled = false
    Monitor = None
}

let withEndpoint (change: Endpoint -> Endpoint) (s: Settings) = {
    s with
        Ami = {
            s.Ami with
                Endpoint = change s.Ami.Endpoint
        }
}

let trustedTls () = Tls [ pki.Value.Ca ]

let frenchCallback =
    match
        CallbackRequest.validate {
            PhoneNumber = Some TestNumbers.Allowed
            Language = Some "fr"
        }
    with
    | Ok request -> request
    | Error e -> failwithf "test request is invalid: %A" e

/// Runs one callback against a fake server speaking `script` over TLS with a CA the client trusts, with
/// the settings `change` makes.
let runWith (change: Settings -> Settings) (script: Script) =
    use server = new Server(script, Some pki.Value.Server)

    let outcome =
        Pipeline.run (change (settingsFor server.Port (trustedTls ()))) roomyGate frenchCallback CancellationToken.None

    outcome.Result, server.ActionNames, server.Received

/// Runs one callback against a fake server speaking `script` over TLS with a CA the client trusts.
let runAgainst (script: Script) = runWith id script

let stagesOf (s: bool * bool * bool * bool * bool) =
    let socket, login, orig, logoff, spooled = s

    {
        Socket = socket
        AmiLogin = login
        AmiOrig = orig
        AmiLogoff = logoff
        CallSpooled = spooled
    }

let answering name (reply: ReceivedAction -> Reply) = script (asteriskExcept name reply)

/// Runs one callback with a tracking that records, in order, what the pipeline told it and how many
/// actions the server had received at that moment.
let private runRecorded (recorded: bool) (script: Script) =
    use server = new Server(script, Some pki.Value.Server)
    let heard = Collections.Concurrent.ConcurrentQueue<string * int>()

    let tracking: Callback.Calls.CallTracking = {
        Spooling =
            fun callId attempt _ _ ->
                heard.Enqueue($"spooling {ChannelId.format callId attempt}", server.Actions.Length)
                Threading.Tasks.Task.FromResult recorded
        Refused =
            fun callId attempt ->
                heard.Enqueue($"refused {ChannelId.format callId attempt}", server.Actions.Length)
                Threading.Tasks.Task.CompletedTask
    }

    let outcome =
        (Pipeline.runTracked
            tracking
            (settingsFor server.Port (trustedTls ()))
            roomyGate
            frenchCallback
            CancellationToken.None)
            .Result

    outcome, List.ofSeq heard, server.ActionNames

let private runTracked script =
    let outcome, heard, _ = runRecorded true script
    outcome, heard

[<Tests>]
let tests =
    testList "Pipeline" [
        // Catches a call registered after its Originate (its first events could be missed) or never.
        test "the monitor hears of each attempt just before its Originate is sent, with its ChannelId" {
            let outcome, heard = runTracked (script asterisk)
            let callId = Expect.wantSome outcome.CallId "spooled"
            Expect.equal heard [ $"spooling {callId}-1", 1 ] "after Login, before the Originate"
        }

        // Catches a refused Originate left queued in the store, or followed until it is declared lost.
        test "an Originate Asterisk refuses is reported as refused, for that attempt" {
            let outcome, heard = runTracked (script (refusing "Originate" "Permission denied"))
            Expect.isNone outcome.CallId "not spooled"

            match heard with
            | [ spooling, 1; refused, 2 ] ->
                Expect.stringStarts spooling "spooling " "first"
                Expect.equal refused ("refused " + spooling.Substring 9) "the same attempt"
            | other -> failtestf "unexpected: %d messages" other.Length
        }

        // Catches a call declared refused when Asterisk may have placed it (no answer is not a refusal).
        test "an Originate left without an answer is not reported as refused" {
            let outcome, heard = runTracked (answering "Originate" (fun _ -> Silent))
            Expect.equal outcome.Failure (Some(OriginateFailed NoResponse)) "no answer"
            Expect.equal (heard |> List.map fst |> List.filter (fun h -> h.StartsWith "refused")) [] "not refused"
        }

        // Catches an Originate sent for a call the store could not record: nobody could read its status.
        test "a call that could not be recorded gets no Originate, and its stage fails" {
            let outcome, heard, actions = runRecorded false (script asterisk)
            Expect.equal heard.Length 1 "asked once"
            Expect.equal actions [ "Login"; "Logoff" ] "no Originate, Logoff still sent"
            Expect.equal outcome.Failure (Some NotRecorded) "the failure"

            Expect.equal
                outcome.Stages
                (stagesOf (true, true, false, true, false))
                "amiOrig and callSpooled false, the session logged off"

            Expect.isNone outcome.CallId "no call id"
        }

        test "a well-behaved Asterisk gets Login, Originate, Logoff and every stage is true" {
            let outcome, actions, _ = runAgainst (script asterisk)
            Expect.equal outcome.Stages (stagesOf (true, true, true, true, true)) "all five stages"
            Expect.equal actions [ "Login"; "Originate"; "Logoff" ] "the three actions, in order"
            Expect.isNone outcome.Failure "no failure"
        }

        test "the Originate on the wire is exactly the configured call, its ChannelId and one line per Variable" {
            let outcome, _, received = runAgainst (script asterisk)
            let callId = Expect.wantSome outcome.CallId "a spooled call has its id"

            let expected =
                $"Action: Originate\r\nActionID: {callId}-1\r\nChannel: PJSIP/{TestNumbers.AllowedDigits}@trunk\r\n"
                + "Context: callback-fr\r\nExten: s\r\nPriority: 1\r\nCallerID: Web callback <5145550000>\r\n"
                + $"Timeout: 30000\r\nAsync: true\r\nChannelId: {callId}-1\r\nVariable: CALLBACK_LANGUAGE=fr\r\n"
                + $"Variable: __CALLBACK_ID={callId}\r\n\r\n"

            Expect.stringContains received expected "Originate bytes"
        }

        test "Login asks for no events and carries the secret only inside the TLS session" {
            let _, _, received = runAgainst (script asterisk)
            let login = received.Substring(0, received.IndexOf "\r\n\r\n" + 4)
            Expect.stringStarts login "Action: Login\r\nActionID: " "Login first"
            Expect.stringContains login "\r\nUsername: callback\r\nSecret: s3cret-Value\r\nEvents: off\r\n" "fields"
        }

        test "every action has its own ActionID" {
            use server = new Server(script asterisk, Some pki.Value.Server)
            let settings = settingsFor server.Port (trustedTls ())

            for _ in 1..3 do
                Pipeline.run settings roomyGate frenchCallback CancellationToken.None
                |> _.Result
                |> ignore

            let ids = server.Actions |> List.map _.ActionId
            Expect.equal ids.Length 9 "three sessions of three actions"
            Expect.equal (List.distinct ids).Length 9 "no ActionID repeats"
        }

        test "an Originate answered with anything but Success is not spooled, and Logoff still goes out" {
            for kind in [ "Failure"; "Follows" ] do
                let outcome, actions, _ =
                    runAgainst (answering "Originate" (fun a -> Send(response kind a.ActionId "odd")))

                Expect.equal outcome.Stages (stagesOf (true, true, false, true, false)) kind
                Expect.equal outcome.Failure (Some(OriginateFailed(Unexpected(kind, "odd")))) "why"
                Expect.equal actions [ "Login"; "Originate"; "Logoff" ] "Logoff sent"
        }

        test "a Login answered with anything but Success stops the train" {
            let outcome, actions, _ =
                runAgainst (answering "Login" (fun a -> Send(response "Follows" a.ActionId "odd")))

            Expect.equal outcome.Stages (stagesOf (true, false, false, false, false)) "socket only"
            Expect.equal actions [ "Login" ] "nothing after Login"
        }

        test "a refused Login stops the train: nothing but Login is sent" {
            let outcome, actions, _ =
                runAgainst (script (refusing "Login" "Authentication failed"))

            Expect.equal outcome.Stages (stagesOf (true, false, false, false, false)) "socket only"
            Expect.equal outcome.Failure (Some(LoginFailed(Rejected "Authentication failed"))) "why"
            Expect.equal actions [ "Login" ] "no Originate, no Logoff"
        }

        test "a refused Originate still logs off" {
            let outcome, actions, _ =
                runAgainst (script (refusing "Originate" "Originate failed"))

            Expect.equal outcome.Stages (stagesOf (true, true, false, true, false)) "Logoff true"
            Expect.equal actions [ "Login"; "Originate"; "Logoff" ] "Logoff sent"
            Expect.isNone outcome.CallId "no call id without a spooled call"
        }

        test "a connection closed after Login fails Originate and Logoff, and nothing is retried" {
            let outcome, actions, _ = runAgainst (answering "Originate" (fun _ -> Close))
            Expect.equal outcome.Stages (stagesOf (true, true, false, false, false)) "login only"
            Expect.equal (actions |> List.filter ((=) "Originate")).Length 1 "one Originate"

            match outcome.Failure with
            | Some(OriginateFailed(LinkFailed _)) -> ()
            | other -> failtestf "expected the link to fail at Originate, got %A" other
        }

        test "a server silent after Login ends the request within the configured budget" {
            let watch = Stopwatch.StartNew()

            let outcome, actions, _ =
                runAgainst (script (fun a -> if a.Name = "Login" then asterisk a else Silent))
            // Connecting is instant here; then two response deadlines of 400 ms (Originate, Logoff).
            Expect.isLessThan watch.Elapsed (TimeSpan.FromSeconds 1.5) "bounded by the deadlines"
            Expect.equal outcome.Stages (stagesOf (true, true, false, false, false)) "no answers"
            Expect.equal outcome.Failure (Some(OriginateFailed NoResponse)) "why"
            Expect.equal actions [ "Login"; "Originate"; "Logoff" ] "one Originate, then Logoff anyway"
        }

        test "an Originate left unanswered is not retried, and Logoff still goes out" {
            let outcome, actions, _ = runAgainst (answering "Originate" (fun _ -> Silent))
            Expect.equal outcome.Stages (stagesOf (true, true, false, true, false)) "Logoff answered"
            Expect.equal actions [ "Login"; "Originate"; "Logoff" ] "exactly one Originate"
        }

        test "a Logoff failure alone keeps the call spooled" {
            let outcome, _, _ = runAgainst (answering "Logoff" (fun _ -> Close))
            Expect.equal outcome.Stages (stagesOf (true, true, true, false, true)) "spooled, Logoff false"
            Expect.isSome outcome.CallId "call id"
        }

        test "events before a response, one carrying our ActionID, do not pass for the response" {
            let eventsThen (a: ReceivedAction) =
                "Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"
                + $"Event: OriginateResponse\r\nActionID: {a.ActionId}\r\nResponse: Failure\r\nReason: 0\r\n\r\n"
                + response "Error" "someone-else" "Not yours"
                + response "Success" a.ActionId "Originate successfully queued"

            let outcome, _, _ = runAgainst (answering "Originate" (eventsThen >> Send))
            Expect.equal outcome.Stages (stagesOf (true, true, true, true, true)) "the real response counted"
        }

        // The issue's case: with the old 64 KiB cap this callback failed with amiLogin false.
        test "a 120-variable event before the Login response, and one over the cap, do not stop the callback" {
            let variables =
                String.concat "" [ for i in 1..120 -> $"ChanVariable: VAR_{i}=" + String('v', 600) + "\r\n" ]

            let bigEventsFirst (a: ReceivedAction) =
                $"Event: VarSet\r\n{variables}\r\n"
                + $"Event: Huge\r\nData: {String('x', FrameReader.DefaultMaxMessageBytes)}\r\n\r\n"
                + response "Success" a.ActionId "Authentication accepted"

            // About 140 KB before the Login response: a loaded machine takes longer than 400 ms over TLS.
            let roomy (s: Settings) = {
                s with
                    Ami.ResponseTimeout = TimeSpan.FromSeconds 10.0
            }

            let outcome, _, _ = runWith roomy (answering "Login" (bigEventsFirst >> Send))
            Expect.equal outcome.Stages (stagesOf (true, true, true, true, true)) "every stage"
            Expect.equal outcome.SkippedMessages 1L "the one over the cap skipped, and reported"
        }

        test "with every session slot taken for the connect timeout, the callback is refused unsent" {
            use server = new Server(script asterisk, Some pki.Value.Server)

            let settings =
                settingsFor server.Port (trustedTls ())
                |> withEndpoint (fun e -> {
                    e with
                        ConnectTimeout = TimeSpan.FromMilliseconds 200.0
                })

            use gate = new SessionGate(1)
            use release = new ManualResetEventSlim()

            let occupied =
                gate.Run(
                    TimeSpan.FromSeconds 1.0,
                    CancellationToken.None,
                    fun () ->
                        Tasks.Task.Run(fun () ->
                            release.Wait()
                            0)
                )

            let outcome =
                (Pipeline.run settings gate frenchCallback CancellationToken.None).Result

            release.Set()
            occupied.Wait()
            Expect.equal outcome.Stages StageResults.None "nothing done"
            Expect.equal outcome.Failure (Some NoFreeSession) "why"
            Expect.equal server.Sessions 0 "no connection opened"
        }

        test "an answer with bare LF line ends is understood" {
            let bareLf (a: ReceivedAction) =
                Send((response "Success" a.ActionId "Authentication accepted").Replace("\r\n", "\n"))

            let outcome, _, _ = runAgainst (answering "Login" bareLf)
            Expect.isTrue outcome.Stages.AmiLogin "login understood"
        }
    ]
