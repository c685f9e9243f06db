/// The product against a real Asterisk 22 (Debian's package, in a chroot started by asterisk/dev/asterisk.sh):
/// proof that our Originate is accepted, that the shipped dialplan announces in the right language and
/// dials the owner, and that our TLS settings match Asterisk's.
module Callback.Tests.RealAsteriskTests

open System
open System.Diagnostics
open System.Net
open System.Text.RegularExpressions
open System.Threading
open Expecto
open Callback.Tests.OnThisMachine
open Callback.Tests.LocalAsterisk
open Callback.Tests.TestSidecar

/// The local Asterisk, started once, and its settings.
let private asterisk =
    lazy
        (rootOnLinux "a real Asterisk (debootstrap, chroot and mount)"
         |> Result.bind (start >> Result.mapError Broken))

/// A test that needs the real Asterisk: skipped with the reason where it cannot run, failed in CI.
let private withAsterisk = onThisMachine "real-Asterisk" asterisk

/// The in-process sidecar configured for the local Asterisk from `asterisk.sh env`, changed by `change`.
let private sidecarFor (env: (string * string) list) (change: (string * string) list -> (string * string) list) =
    sidecarSettings env
    |> List.map (fun (k, v) -> k.Replace("__", ":"), v)
    |> change
    |> fun config -> new Sidecar(config)

let private replace key value config =
    (key, value) :: (config |> List.filter (fst >> (<>) key))

/// One callback through the sidecar, then the proof in Asterisk's own log that the visitor was rung,
/// heard the announcement in their language and was put through to the owner.
let private callbackIsPlaced (number: string) (language: string) (env: (string * string) list) =
    use sidecar = sidecarFor env id
    let offset = logLength env

    let status, body =
        sidecar.Post(form [ "phoneNumber", number; "language", language.ToUpperInvariant() ])

    Expect.equal status HttpStatusCode.OK $"200: {body}"
    Expect.equal (stages body) [ true; true; true; true; true ] "five true booleans"

    let digits =
        Regex.Replace(number, "[^0-9]", "")
        |> fun d -> if d.Length = 10 then "1" + d else d

    let visitor = visitorChannel digits

    Expect.isTrue (awaitCallback env offset language digits) $"callback-{language} runs for the visitor's channel"

    Expect.isTrue (awaitAnnouncement env offset language digits) $"the announcement is played in '{language}'"

    Expect.isTrue (awaitLog env offset ($@"Dial\(""{visitor}"", ""Local/owner@demo-owner")) "the owner's leg is dialled"

    Expect.isTrue (awaitLog env offset ($@"Channel {visitor} joined")) "the visitor is bridged"

/// A callback for `number` through the sidecar with its configuration changed by `change`: the status and
/// the five stage booleans.
let private answerWith change (number: string) env =
    use sidecar = sidecarFor env change
    let status, body = sidecar.Post(form [ "phoneNumber", number; "language", "en" ])
    status, stages body

[<Tests>]
let tests =
    // Not while the Real SIP list runs: one of these tests stops Asterisk.
    testSequencedGroup "the local Asterisk"
    <| testList "Real Asterisk 22" [
        withAsterisk "an English callback rings the visitor, announces in English and dials the owner"
        <| callbackIsPlaced (TestNumbers.distinct 42).Typed "en"

        withAsterisk "a French callback runs callback-fr and plays the French announcement"
        <| callbackIsPlaced (TestNumbers.distinct 43).Typed "fr"

        withAsterisk "a wrong AMI secret answers 502 with amiLogin false"
        <| fun env ->
            let status, booleans =
                answerWith (replace "Ami:Secret" "not-the-secret") (TestNumbers.distinct 44).Typed env

            Expect.equal status HttpStatusCode.BadGateway "502"
            Expect.equal booleans [ true; false; false; false; false ] "socket only"

        withAsterisk "without the dev CA, Asterisk's certificate is not trusted: 503, socket false"
        <| fun env ->
            let status, booleans =
                answerWith (List.filter (fst >> (<>) "Ami:CaCertificate")) (TestNumbers.distinct 45).Typed env

            Expect.equal status HttpStatusCode.ServiceUnavailable "503"
            Expect.equal booleans [ false; false; false; false; false ] "socket false"

        withAsterisk "25 concurrent callbacks place exactly 25 calls, one per number"
        <| fun env ->
            use sidecar = sidecarFor env id
            let offset = logLength env
            let numbers = [ for i in 0..24 -> (TestNumbers.distinct i).Digits ]

            let statuses =
                numbers
                |> List.map (fun n ->
                    Tasks.Task.Run(fun () -> sidecar.Post(form [ "phoneNumber", n; "language", "en" ])))
                |> List.map _.Result

            Expect.all statuses (fun (s, _) -> s = HttpStatusCode.OK) "25 × 200"

            let answered n =
                Regex.Matches(logSince env offset, Regex.Escape $"Executing [{n}@demo-visitor:1] Answer(").Count

            Expect.isTrue
                (awaitLog env offset (Regex.Escape $"Executing [{List.last numbers}@demo-visitor:1]"))
                "the last call reached Asterisk"

            Thread.Sleep 1000
            Expect.equal (numbers |> List.map answered) (List.replicate 25 1) "each number rung exactly once"

        withAsterisk "with Asterisk stopped: 503, socket false, within the connect timeout"
        <| fun env ->
            let stopped, _ = asteriskScript "stop"
            Expect.isTrue stopped "asterisk.sh stop"

            try
                use sidecar = sidecarFor env (replace "Ami:ConnectTimeout" "2000")
                let watch = Stopwatch.StartNew()

                let status, body =
                    sidecar.Post(form [ "phoneNumber", (TestNumbers.distinct 46).Typed; "language", "en" ])

                Expect.equal status HttpStatusCode.ServiceUnavailable "503"
                Expect.equal (stages body) [ false; false; false; false; false ] "socket false"
                Expect.isLessThan watch.Elapsed (TimeSpan.FromSeconds 2.5) "within the connect timeout"
            finally
                asteriskScript "start" |> ignore
    ]
