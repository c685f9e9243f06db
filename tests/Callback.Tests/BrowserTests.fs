/// The demo page as a visitor uses it: Debian's headless Chromium (driven by tests/browser/demo-page.mjs)
/// against the real sidecar program and the real local Asterisk, with Asterisk's own log as the proof.
module Callback.Tests.BrowserTests

open System
open System.IO
open System.Net.Http
open System.Text.Json
open System.Text.RegularExpressions
open System.Threading
open Expecto
open Callback.Tests.OnThisMachine
open Callback.Tests.Programs
open Callback.Tests.LocalAsterisk
open Callback.Tests.TestSidecar

let private browserDir = Path.Combine(repoRoot, "tests", "browser")
let private chromium = "/usr/bin/chromium"

/// Kept beside the test program (not committed), to be looked at after a run.
let private screenshots = Path.Combine(AppContext.BaseDirectory, "screenshots")

/// Installs Debian's chromium package if it is missing; what went wrong is printed, and seen by its absence.
let private installChromium () =
    if not (File.Exists chromium) then
        eprintfn "Browser tests: installing Debian's chromium package…"

        let install =
            "-o DPkg::Lock::Timeout=600 install -y --no-install-recommends chromium".Split ' '

        let ran =
            run [ "DEBIAN_FRONTEND", "noninteractive" ] (TimeSpan.FromMinutes 20.0) "apt-get" (List.ofArray install)

        if ran.Code <> 0 then
            eprintfn "%s" ran.Output

/// Chromium (installed from Debian's packages when missing), Node.js 20+ and playwright-core (`npm ci`).
let private browserTools =
    lazy
        (rootOnLinux "running a real Asterisk (chroot) and installing Chromium"
         |> Result.bind (fun () ->
             installChromium ()
             let node = runIn browserDir [] (TimeSpan.FromSeconds 30.0) "node" [ "--version" ]
             let nodeVersion = node.Output.Trim()

             let nodeMajor =
                 Regex.Match(node.Output, @"^v(\d+)\.")
                 |> fun m -> if m.Success then int m.Groups[1].Value else 0

             if not (File.Exists chromium) then
                 Error(Unavailable $"{chromium} is missing and `apt-get install chromium` did not install it")
             elif node.Code <> 0 then
                 Error(Unavailable $"Node.js is not on PATH ({nodeVersion})")
             elif nodeMajor < 20 then
                 Error(Unavailable $"playwright-core needs Node.js 20 or later, this is {nodeVersion}")
             elif Directory.Exists(Path.Combine(browserDir, "node_modules", "playwright-core")) then
                 Ok()
             else
                 match runIn browserDir [] (TimeSpan.FromMinutes 5.0) "npm" [ "ci"; "--no-audit"; "--no-fund" ] with
                 | { Code = 0 } -> Ok()
                 | ran -> Error(Broken $"npm ci in tests/browser failed:\n{ran.Output}")))

/// The real sidecar program for the local Asterisk (the `Ami__…`/`Originate__…` lines of `asterisk.sh env`)
/// with the demo page on, healthy.
let private startSidecar (env: (string * string) list) =
    let sidecar =
        SidecarProgram.start (sidecarSettings env @ [ "Demo__Enabled", "true" ])

    if not (sidecar.AwaitHealthy()) then
        (sidecar :> IDisposable).Dispose()
        failtestf "the sidecar did not answer /healthz within 30 s:\n%s" sidecar.Program.Output

    sidecar

/// What the visitor saw after clicking "Call me back".
type private PageSeen = {
    Status: int
    Message: string
    Stages: (string * string) list
    PageErrors: string list
}

/// One visit with demo-page.mjs: number typed, language picked, button clicked, screenshot saved.
let private visit (url: string) (number: string) (language: string) (screenshot: string) =
    Directory.CreateDirectory screenshots |> ignore

    let arguments = [
        "demo-page.mjs"
        url
        number
        language
        Path.Combine(screenshots, screenshot)
    ]

    let ran = runIn browserDir [] (TimeSpan.FromSeconds 90.0) "node" arguments

    if ran.Code <> 0 then
        failtestf "demo-page.mjs exited with %d:\n%s" ran.Code ran.Output

    let line = ran.Output.Split('\n') |> Array.findBack (fun l -> l.StartsWith "{")
    use doc = JsonDocument.Parse line
    let root = doc.RootElement

    {
        Status = root.GetProperty("status").GetInt32()
        Message = root.GetProperty("message").GetString()
        Stages = [
            for p in root.GetProperty("stages").EnumerateObject() -> p.Name, p.Value.GetString()
        ]
        PageErrors = [ for e in root.GetProperty("pageErrors").EnumerateArray() -> e.GetString() ]
    }

let private stageNames = [ "socket"; "amiLogin"; "amiOrig"; "amiLogoff"; "callSpooled" ]

/// A browser test: skipped loudly where Chromium, Node.js or root are missing, failed for that in CI; its
/// body gets the local Asterisk's settings, (re)started: other tests stop and start it.
let private withBrowser name (body: (string * string) list -> unit) =
    onThisMachine "browser" browserTools name (fun () -> body (running ()))

[<Tests>]
let tests =
    testSequenced
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
    ]
