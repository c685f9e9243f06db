/// The demo page driven in Debian's headless Chromium by tests/browser/demo-page.mjs (playwright-core): the
/// tools it needs, installed where missing, and what one visit saw, from the script's JSON line.
module Callback.Tests.DemoBrowser

open System
open System.IO
open System.Text.Json
open System.Text.RegularExpressions
open Expecto
open Callback.Tests.OnThisMachine
open Callback.Tests.Programs

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
let browserTools =
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

/// What the page's live status showed of one call, from its POST to its final state (demo-page.mjs `live`).
type LiveCall = {
    /// Each state and sentence the status line showed, in order.
    Seen: (string * string) list
    /// The states of the history list at the end.
    History: string list
    State: string
    Outcome: string
    Text: string
    /// The `lang` of the call's section.
    Lang: string
    /// The retry button's label when it is offered.
    Retry: string option
    /// The paths the page opened an event stream on (a second one would be EventSource reconnecting).
    EventStreams: string list
}

/// What the visitor saw after clicking "Call me back", and of the call when followed.
type PageSeen = {
    Status: int
    Message: string
    Stages: (string * string) list
    Live: LiveCall option
    /// With `retry`: the second POST's status and its call.
    Retried: (int * LiveCall) option
    /// With `twice`: the second POST's status, its `Retry-After`, and the message the page then showed.
    Again: (int * string * string) option
    PageErrors: string list
    /// With `at=YYYY-MM-DD`: the slots the picker offered (their values).
    Slots: string list
    /// What a 202 said the call is scheduled for, as the page kept it.
    ScheduledFor: string option
}

let text (e: JsonElement) (name: string) =
    match e.GetProperty name with
    | v when v.ValueKind = JsonValueKind.String -> v.GetString()
    | _ -> null

let private liveCall (e: JsonElement) = {
    Seen = [
        for s in e.GetProperty("seen").EnumerateArray() -> text s "state", text s "text"
    ]
    History = [ for h in e.GetProperty("history").EnumerateArray() -> h.GetString() ]
    State = text e "state"
    Outcome = text e "outcome"
    Text = text e "text"
    Lang = text e "lang"
    Retry = Option.ofObj (text e "retry")
    EventStreams = [ for p in e.GetProperty("eventStreams").EnumerateArray() -> p.GetString() ]
}

let private optional (e: JsonElement) (name: string) (read: JsonElement -> 'T) =
    match e.GetProperty name with
    | v when v.ValueKind = JsonValueKind.Null -> None
    | v -> Some(read v)

/// One visit with demo-page.mjs: number typed, language picked, button clicked, screenshot saved; `mode`
/// `post` stops at the POST's answer, `follow` waits for the call's final state, `retry` then retries once.
let visitIn (mode: string) (url: string) (number: string) (language: string) (screenshot: string) =
    Directory.CreateDirectory screenshots |> ignore

    let arguments = [
        "demo-page.mjs"
        url
        number
        language
        Path.Combine(screenshots, screenshot)
        mode
    ]

    let ran = runIn browserDir [] (TimeSpan.FromSeconds 140.0) "node" arguments

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
        Live = optional root "live" liveCall
        Retried = optional root "retried" (fun r -> r.GetProperty("status").GetInt32(), liveCall (r.GetProperty "live"))
        Again =
            optional root "again" (fun a -> a.GetProperty("status").GetInt32(), text a "retryAfter", text a "message")
        PageErrors = [ for e in root.GetProperty("pageErrors").EnumerateArray() -> e.GetString() ]
        Slots =
            optional root "slots" (fun s -> [ for v in s.EnumerateArray() -> v.GetString() ])
            |> Option.defaultValue []
        ScheduledFor = Option.ofObj (text root "scheduledFor")
    }

let visit = visitIn "post"
