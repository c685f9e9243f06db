/// The demo page as a visitor uses it: Debian's headless Chromium (driven by tests/browser/demo-page.mjs)
/// against the real sidecar program and the real local Asterisk, with Asterisk's own log as the proof; the
/// call followed live on the page from the sidecar's real event stream, with SIPp playing the phones.
module Callback.Tests.BrowserTests

open System
open System.Net.Http
open System.Text.Json
open System.Threading
open Expecto
open Callback.Tests.OnThisMachine
open Callback.Tests.Programs
open Callback.Tests.LocalAsterisk
open Callback.Tests.TestSidecar
open Callback.Tests.Sipp
open Callback.Tests.SipEvidence
open Callback.Tests.DemoBrowser

/// The real sidecar program for the local Asterisk (the `Ami__…`/`Originate__…`/`Monitor__…` lines of
/// `asterisk.sh env`) with the demo page on and `extra` settings, healthy.
let private startSidecarWith (extra: (string * string) list) (env: (string * string) list) =
    let sidecar =
        SidecarProgram.start (sidecarSettings env @ [ "Demo__Enabled", "true" ] @ extra)

    if not (sidecar.AwaitHealthy()) then
        (sidecar :> IDisposable).Dispose()
        failtestf "the sidecar did not answer /healthz within 30 s:\n%s" sidecar.Program.Output

    sidecar

let private startSidecar = startSidecarWith []

let private stageNames = [ "socket"; "amiLogin"; "amiOrig"; "amiLogoff"; "callSpooled" ]

/// A browser test: skipped loudly where Chromium, Node.js or root are missing, failed for that in CI; its
/// body gets the local Asterisk's settings, (re)started: other tests stop and start it.
let private withBrowser name (body: (string * string) list -> unit) =
    onThisMachine "browser" browserTools name (fun () -> body (running ()))

/// Chromium, Node.js and SIPp: the phones of a live call.
let private phoneTools =
    lazy (browserTools.Value |> Result.bind (available >> Result.mapError Unavailable))

/// A browser test with SIPp phones: its body gets the `env-sip` settings of the local Asterisk, (re)started.
let private withPhones name (body: (string * string) list -> unit) =
    onThisMachine "browser" phoneTools name (fun () -> body (startSip () |> Result.defaultWith failtest |> fst))

/// A SIPp phone for `calls` calls of `scenario` at the address `key` of `env-sip`.
let private phoneAt key name env scenario calls options =
    start name scenario (int ((setting env key).Split(':')[1])) calls options (0x11uy, 0x22uy)

/// The visitor's phone, behind the trunk.
let private visitorPhone = phoneAt "SIP_TRUNK" "visitor"

/// The owner's phone.
let private ownerPhone = phoneAt "SIP_OWNER" "owner"

/// The sidecar's own status of the call the page followed (`GET` on the path its event stream hung off).
let private statusOf (sidecar: SidecarProgram.RunningSidecar) (live: LiveCall) =
    use client = new HttpClient()
    let path = (List.head live.EventStreams).Replace("/events", "")

    use doc =
        JsonDocument.Parse(client.GetStringAsync(sidecar.Url + path.TrimStart '/').Result)

    text doc.RootElement "state", text doc.RootElement "outcome"

/// The states the status line showed, in order, without repeats.
let private statesSeen (live: LiveCall) =
    live.Seen |> List.map fst |> List.distinct

[<Tests>]
let tests =
    // With the other lists that use the local Asterisk, one at a time: some of them stop and restart it.
    testSequencedGroup "the local Asterisk"
    <| testList "Demo page in Chromium" [
        withBrowser "a visitor who picks Français is thanked in French and hears the French announcement"
        <| fun env ->
            use sidecar = startSidecar env
            let offset = logLength env
            let seen = visit sidecar.Url (TestNumbers.distinct 81).Typed "fr" "demo-fr.png"

            Expect.equal seen.Status 200 $"POST /callback answers 200\n{sidecar.Program.Output}"
            Expect.equal seen.Message "Merci ! Votre téléphone va sonner dans un instant." "the French thanks"
            Expect.equal seen.Stages (stageNames |> List.map (fun s -> s, "✔")) "five ✔ in the table"
            Expect.isEmpty seen.PageErrors "no errors in the page's console"

            Expect.isTrue
                (awaitCallback env offset "fr" (TestNumbers.distinct 81).Digits)
                "Asterisk runs callback-fr for the visitor's channel"

            Expect.isTrue
                (awaitAnnouncement env offset "fr" (TestNumbers.distinct 81).Digits)
                "Asterisk plays the French announcement to the visitor"

        withBrowser "a service code (911) shows the server's reason on the page and never reaches Asterisk"
        <| fun env ->
            use sidecar = startSidecar env
            let offset = logLength env
            let number = "514 911 0182"
            let seen = visit sidecar.Url number "en" "demo-invalid.png"

            // The server's own sentence, asked for directly, is what the page must show.
            use client = new HttpClient()

            let answer =
                client
                    .PostAsync(sidecar.Url + "callback", jsonBody $"""{{"phoneNumber":"{number}","language":"EN"}}""")
                    .Result.Content.ReadAsStringAsync()
                    .Result

            let reasons =
                use doc = JsonDocument.Parse answer

                [
                    for e in doc.RootElement.GetProperty("errors").EnumerateArray() ->
                        e.GetProperty("message").GetString()
                ]

            Expect.equal seen.Status 422 "POST /callback answers 422"
            Expect.isNonEmpty reasons $"the 422 carries errors[].message: {answer}"
            Expect.equal seen.Message ("Please check the form: " + String.Join(" ", reasons)) "the server's reason"
            Expect.equal seen.Stages (stageNames |> List.map (fun s -> s, "✘")) "five ✘ in the table"

            Thread.Sleep 3000
            let logged = logSince env offset
            Expect.isFalse (logged.Contains "15149110182") "Asterisk never hears of the number"

        withPhones "a French visitor follows the call live: their phone rings, they are connected to us, the call ends"
        <| fun env ->
            use _visitor = visitorPhone env "answer" 1 (variable "ring_ms" "1500")

            use _owner =
                ownerPhone env "answer-hangup" 1 (variable "ring_ms" "300" @ variable "talk_ms" "2500")

            use sidecar = startSidecar env

            let seen =
                visitIn "follow" sidecar.Url RealSipTests.visitorNumber "fr" "demo-live-fr.png"

            let live = seen.Live.Value

            Expect.equal seen.Status 200 $"POST /callback answers 200\n{sidecar.Program.Output}"
            Expect.equal seen.Message "Merci ! Votre téléphone va sonner dans un instant." "the French thanks"
            // Each of these sentences is on the page only because an SSE frame carried that state.
            Expect.containsAll
                live.Seen
                [
                    "ringing", "Votre téléphone sonne : décrochez."
                    "bridged", "Vous êtes en ligne avec nous."
                ]
                "the status line said, in French, that the phone rang and that they were connected"

            Expect.equal
                (statesSeen live
                 |> List.filter (fun s -> List.contains s [ "ringing"; "bridged"; "ended" ]))
                [ "ringing"; "bridged"; "ended" ]
                "ringing, then connected, then ended, in that order"

            Expect.equal
                live.History
                [ "queued"; "ringing"; "answered"; "connecting"; "bridged"; "ended" ]
                "the history list: every transition"

            Expect.equal (live.State, live.Outcome) ("ended", "completed") "ended, completed"
            Expect.isMatch live.Text @"^L'appel est terminé après \d+ s\. Merci !$" "the French end, with talk time"
            Expect.equal live.Lang "fr" "the call's section is marked French for screen readers"
            Expect.isNone live.Retry "no retry after a completed call"

            Expect.equal live.EventStreams.Length 1 "one event stream, closed on the final state (no reconnect)"

            Expect.equal (statusOf sidecar live) ("ended", "completed") "GET says what the page showed"
            Expect.isEmpty seen.PageErrors "no errors in the page's console"

        withPhones "an English visitor whose line is busy is told so and offered a retry, which calls again"
        <| fun env ->
            use visitor = visitorPhone env "busy" 2 (variable "ring_ms" "800")
            // The number's interval (2 min by default) and the duplicate window (10 min) would refuse or
            // answer the retry with the first call, and the sidecar would retry the busy call itself: each
            // has tests of its own.
            use sidecar =
                startSidecarWith
                    [
                        "Callback__PerNumberIntervalSeconds", "1"
                        "Callback__DuplicateWindow", "00:00:00"
                        "Callback__MaxAttempts", "1"
                    ]
                    env

            let seen =
                visitIn "retry" sidecar.Url RealSipTests.visitorNumber "en" "demo-busy-en.png"

            let live = seen.Live.Value

            Expect.equal seen.Status 200 $"POST /callback answers 200\n{sidecar.Program.Output}"
            Expect.equal (live.State, live.Outcome) ("failed", "busy") "failed, busy"
            Expect.equal live.Text "Your line was busy." "the English reason"
            Expect.equal live.Retry (Some "Try again") "the retry button is offered"
            Expect.equal live.EventStreams.Length 1 "one event stream, closed on the final state"
            Expect.equal (statusOf sidecar live) ("failed", "busy") "GET says what the page showed"

            let retryStatus, again = seen.Retried.Value
            Expect.equal retryStatus 200 "the retry is a new POST /callback, answered 200"
            Expect.equal (again.State, again.Outcome) ("failed", "busy") "the second call is followed to its end too"
            Expect.notEqual again.EventStreams live.EventStreams "the retry follows its own, new call"
            Expect.equal (again.Seen |> List.head |> fst) "queued" "the second call starts afresh at queued"

            Expect.equal (visitor.AwaitExit(TimeSpan.FromSeconds 10.0)) (Some 0) "SIPp played both calls"
            Expect.equal (calls visitor).Length 2 "the visitor's phone got two INVITEs: the call and the retry"
            Expect.isEmpty seen.PageErrors "no errors in the page's console"

        withBrowser "without a monitor the page says the call was placed, and nothing more"
        <| fun env ->
            use sidecar =
                startSidecar (env |> List.filter (fun (key, _) -> not (key.StartsWith "Monitor__")))

            let seen =
                visitIn "follow" sidecar.Url (TestNumbers.distinct 82).Typed "en" "demo-untracked.png"

            let live = seen.Live.Value
            Expect.equal seen.Status 200 $"POST /callback answers 200\n{sidecar.Program.Output}"
            Expect.equal (live.State, live.Text) ("placed", "Your call has been placed.") "placed, in English"
            Expect.isEmpty live.History "no history: nobody follows the call"
            Expect.isNone live.Retry "nothing to retry"
            Expect.equal live.EventStreams.Length 1 "the stream, closed once it said tracking: false"
            Expect.isEmpty seen.PageErrors "no errors in the page's console"

        withBrowser "a second click within the number's interval is told in how many seconds to try again"
        <| fun env ->
            // Untracked and without the duplicate window, the second click meets the number's interval; a
            // live or recent call would answer it instead (DurableRequestsTests).
            use sidecar =
                startSidecarWith
                    [ "Callback__DuplicateWindow", "00:00:00" ]
                    (env |> List.filter (fun (key, _) -> not (key.StartsWith "Monitor__")))

            let seen =
                visitIn "twice" sidecar.Url (TestNumbers.distinct 83).Typed "fr" "demo-twice-fr.png"

            Expect.equal seen.Status 200 $"the first POST /callback answers 200\n{sidecar.Program.Output}"
            let status, retryAfter, message = seen.Again.Value
            Expect.equal status 429 "the number's interval refuses the second"
            Expect.isMatch retryAfter @"^\d+$" "the answer says when, in seconds"

            Expect.equal
                message
                $"Trop d'appels pour le moment. Réessayez dans {retryAfter} s."
                "in French, with the answer's own Retry-After"

            // Chromium logs every 4xx answer to a fetch in the console itself; nothing else may be there.
            Expect.isEmpty
                (seen.PageErrors |> List.filter (fun e -> not (e.Contains "status of 429")))
                "no other errors in the page's console"
    ]
