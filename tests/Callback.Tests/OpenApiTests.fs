/// `GET /openapi.json` is the contract the server keeps: every status `POST /callback` answers is
/// documented, and every real answer validates against the schema documented for its status.
module Callback.Tests.OpenApiTests

open System
open System.IO
open System.Net.Http
open System.Text.Json.Nodes
open System.Threading
open Microsoft.Extensions.DependencyInjection
open Callback.Calls
open Callback.Domain
open Callback.Http
open Expecto
open global.Json.Schema
open Callback.Tests.FakeAmi
open Callback.Tests.Loopback
open Callback.Tests.Programs
open Callback.Tests.TestSidecar

/// A real answer: its status, its headers (response and content, by lower-case name), its media type and
/// its body.
type Answer = {
    Status: int
    Headers: Set<string>
    MediaType: string
    Body: string
}

let private answerOf (response: HttpResponseMessage) = {
    Status = int response.StatusCode
    Headers =
        Seq.append response.Headers response.Content.Headers
        |> Seq.map (fun h -> h.Key.ToLowerInvariant())
        |> Set.ofSeq
    MediaType =
        match response.Content.Headers.ContentType with
        | null -> ""
        | t -> t.MediaType
    Body = response.Content.ReadAsStringAsync().Result
}

/// The sidecar on a fake Asterisk that answers with `answer`, or on `port` where nothing listens.
let private sidecarOn (port: int) =
    new Sidecar(fakeAmiConfig [ "Ami:ResponseTimeout", "400" ] port)

let private against (answer: ReceivedAction -> Reply) (send: HttpClient -> HttpResponseMessage) =
    use server = new Server(script answer, Some pki.Value.Server)
    use sidecar = sidecarOn server.Port
    answerOf (send sidecar.Client)

let private post (content: HttpContent) (client: HttpClient) =
    client.PostAsync("/callback", content).Result

let private valid = [ "phoneNumber", "5145550234"; "language", "en" ]

/// The sidecar with `extra` settings on a well-behaved fake Asterisk, given to `send`.
let private configured (extra: (string * string) list) (send: HttpClient -> HttpResponseMessage) =
    use server = new Server(script asterisk, Some pki.Value.Server)
    use sidecar = new Sidecar(fakeAmiConfig extra server.Port)
    answerOf (send sidecar.Client)

/// The sidecar with opening hours, closed at the time of its clock, and a scheduler answering `kept`.
let private booked (kept: Result<unit, string>) (send: HttpClient -> HttpResponseMessage) =
    use server = new Server(script asterisk, Some pki.Value.Server)

    let scheduler =
        BookingTests.FakeScheduler(
            BookingTests.BookingClock(DateTimeOffset(2026, 12, 7, 19, 0, 0, TimeSpan.Zero)),
            0,
            kept
        )

    use sidecar = BookingTests.sidecarAt BookingTests.officeHours server scheduler
    answerOf (send sidecar.Client)

/// One real request per status `POST /callback` can answer.
let realAnswers: (string * (unit -> Answer)) list = [
    "another site's page",
    (fun () ->
        configured [ "Callback:AllowedOrigins", "https://shop.example.org" ] (fun client ->
            use request =
                new HttpRequestMessage(HttpMethod.Post, "/callback", Content = form valid)

            request.Headers.Add("Origin", "https://evil.example.net")
            client.SendAsync(request).Result))
    "a client over its minute",
    (fun () ->
        configured [ "Callback:PerClientPerMinute", "1" ] (fun client ->
            (post (form [ "phoneNumber", "911"; "language", "en" ]) client).Dispose()
            post (form valid) client))
    "a spooled callback", (fun () -> against asterisk (post (form valid)))
    "a callback while closed", (fun () -> booked (Ok()) (post (form valid)))
    "a callback that cannot be kept for later", (fun () -> booked (Result.Error "full") (post (form valid)))
    "broken JSON", (fun () -> against asterisk (post (jsonBody "{")))
    "another path", (fun () -> against asterisk (fun c -> c.PostAsync("/nowhere", form valid).Result))
    "GET /callback", (fun () -> against asterisk (fun c -> c.GetAsync("/callback").Result))
    "a body over 8 KiB",
    (fun () -> against asterisk (post (form [ "phoneNumber", String('5', 9000); "language", "en" ])))
    "text/plain", (fun () -> against asterisk (post (new StringContent("phoneNumber=5145550234"))))
    "invalid fields", (fun () -> against asterisk (post (form [ "phoneNumber", "911"; "language", "de" ])))
    "an unexpected exception",
    (fun () ->
        let mutable answer = None

        HttpContractTests.throwing (InvalidOperationException "boom") (fun client _ ->
            answer <- Some(answerOf (client.PostAsync("/boom", form valid).Result)))

        answer.Value)
    "a refused Login", (fun () -> against (refusing "Login" "Authentication failed") (post (form valid)))
    "an unreachable Asterisk",
    (fun () ->
        use sidecar = sidecarOn (freePort ())
        answerOf (post (form valid) sidecar.Client))
]

/// A sidecar (its monitor configured, so streams stay open) holding two queued calls, at most one stream
/// per call and one in all, given to `send` with the two call paths.
let private withCalls (send: Sidecar -> string -> string -> HttpResponseMessage) =
    let options: CallStreamOptions = {
        CallStreamOptions.defaults with
            MaxOpen = 1
            MaxPerCall = 1
    }

    use sidecar =
        new Sidecar(
            fakeAmiConfig [ "Monitor:Username", "callback-monitor"; "Monitor:Secret", "m0nitor" ] (freePort ()),
            fun services -> services.AddSingleton<CallStreamOptions> options |> ignore
        )

    let store = sidecar.App.Services.GetRequiredService<ICallStore>()

    let created () =
        let call: NewCall = {
            CallId = CallId.create ()
            Attempt = Attempt.first
            Language = English
            MaskedNumber = "1514*****34"
            CreatedAt = DateTimeOffset.UtcNow
        }

        store.Create(call, CancellationToken.None).Result |> ignore
        $"/calls/{CallId.value call.CallId}"

    answerOf (send sidecar (created ()) (created ()))

/// A stream held open on `path` while `send` runs.
let private holding (sidecar: Sidecar) (path: string) (send: unit -> HttpResponseMessage) =
    use held =
        sidecar.Client.GetAsync(path + "/events", HttpCompletionOption.ResponseHeadersRead).Result

    Expect.equal (int held.StatusCode) 200 "the first stream is open"
    send ()

let private status = "/calls/{callId}", "get"
let private events = "/calls/{callId}/events", "get"
let private slots = "/slots", "get"

/// One real request per status the status routes answer.
let callAnswers: ((string * string) * string * (unit -> Answer)) list = [
    status, "a call's status", (fun () -> withCalls (fun s path _ -> s.Client.GetAsync(path).Result))
    status,
    "an unknown call",
    (fun () -> withCalls (fun s _ _ -> s.Client.GetAsync($"/calls/{CallId.value (CallId.create ())}").Result))
    status, "POST on a call", (fun () -> withCalls (fun s path _ -> s.Client.PostAsync(path, form valid).Result))
    events,
    "an event stream",
    (fun () ->
        // Without a monitor the stream sends the history and ends, so its whole body can be read.
        use sidecar = new Sidecar(fakeAmiConfig [] (freePort ()))
        let store = sidecar.App.Services.GetRequiredService<ICallStore>()
        let callId = CallId.create ()

        store
            .Create(
                {
                    CallId = callId
                    Attempt = Attempt.first
                    Language = French
                    MaskedNumber = "1514*****34"
                    CreatedAt = DateTimeOffset.UtcNow
                },
                CancellationToken.None
            )
            .Result
        |> ignore

        answerOf (sidecar.Client.GetAsync($"/calls/{CallId.value callId}/events").Result))
    events,
    "the events of an unknown call",
    (fun () -> withCalls (fun s _ _ -> s.Client.GetAsync($"/calls/{CallId.value (CallId.create ())}/events").Result))
    events,
    "POST on a call's events",
    (fun () -> withCalls (fun s path _ -> s.Client.PostAsync(path + "/events", form valid).Result))
    events,
    "a second stream on one call",
    (fun () -> withCalls (fun s path _ -> holding s path (fun () -> s.Client.GetAsync(path + "/events").Result)))
    slots, "a day's slots", (fun () -> booked (Ok()) (fun c -> c.GetAsync("/slots?date=2026-12-08").Result))
    slots, "a malformed date", (fun () -> booked (Ok()) (fun c -> c.GetAsync("/slots?date=8/12/2026").Result))
    slots, "POST on the slots", (fun () -> booked (Ok()) (fun c -> c.PostAsync("/slots", form valid).Result))
    events,
    "a stream past the open streams' bound",
    (fun () -> withCalls (fun s path other -> holding s path (fun () -> s.Client.GetAsync(other + "/events").Result)))
]

/// Statuses documented but answered only where the test server cannot reach: 408 needs a real Kestrel
/// (KestrelTests checks it is in the contract).
let private answeredElsewhere = set [ 408 ]

let private served =
    lazy
        (use server = new Server(script asterisk, Some pki.Value.Server)
         use sidecar = sidecarOn server.Port
         let response = sidecar.Client.GetAsync("/openapi.json").Result
         int response.StatusCode, response.Content.ReadAsStringAsync().Result)

let private document = lazy (JsonNode.Parse(snd served.Value))

/// The node at `keys` below `node`, `null` where one is missing.
let private at (keys: string list) (node: JsonNode) =
    keys
    |> List.fold (fun (n: JsonNode) key -> if isNull n then null else n[key]) node

let private callback = "/callback", "post"

/// The responses documented for `route` (path, method).
let private responsesOf (path: string, method: string) =
    (at [ "paths"; path; method; "responses" ] document.Value).AsObject()

let private responses () = responsesOf callback

/// The schema documented for `status` of `route`, as a JSON Schema 2020-12 whose `$defs` are the components.
let private schemaOf route (status: int) =
    let documented = (responsesOf route).[string status]
    let schema = at [ "content"; "application/json"; "schema" ] documented
    let reference = schema["$ref"].GetValue<string>()
    let components = at [ "components"; "schemas" ] document.Value
    let defs = components.ToJsonString().Replace("#/components/schemas/", "#/$defs/")

    let name = reference.Replace("#/components/schemas/", "")

    JsonSchema.FromText(
        $"""{{"$schema":"https://json-schema.org/draft/2020-12/schema","$defs":{defs},"$ref":"#/$defs/{name}"}}"""
    )

let private requiredHeadersOf route (status: int) = [
    match (responsesOf route).[string status]["headers"] with
    | null -> ()
    | headers ->
        for h in headers.AsObject() do
            if h.Value["required"] <> null && h.Value["required"].GetValue<bool>() then
                h.Key.ToLowerInvariant()
]

let private requiredHeaders (status: int) = requiredHeadersOf callback status

/// Checks a real answer of `route` against what the document says of its status: its media type, its
/// JSON schema and its required headers.
let private conforms route (answer: Answer) =
    let documented = (responsesOf route).[string answer.Status]
    Expect.isNotNull documented $"status {answer.Status} documented"
    let media = at [ "content" ] documented
    Expect.isNotNull media[answer.MediaType] $"{answer.MediaType} documented for {answer.Status}"

    if answer.MediaType = "application/json" then
        let result =
            (schemaOf route answer.Status)
                .Evaluate(JsonNode.Parse answer.Body, EvaluationOptions(OutputFormat = OutputFormat.List))

        let problems = [
            for d in result.Details do
                if d.Errors <> null then
                    for e in d.Errors -> $"{d.InstanceLocation}: {e.Value}"
        ]

        Expect.isTrue result.IsValid $"{answer.Body} against status {answer.Status}: {problems}"

    for header in requiredHeadersOf route answer.Status do
        Expect.contains answer.Headers header $"the {header} header"

[<Tests>]
let openApi =
    testList "OpenAPI document" [
        yield
            test "is served at GET /openapi.json, the same document as in the repository" {
                let status, body = served.Value
                Expect.equal status 200 "200"

                let inRepo =
                    File.ReadAllText(Path.Combine(repoRoot, "src", "Callback", "openapi.json"))

                Expect.equal body inRepo "the repository's openapi.json"
                let version = document.Value["openapi"]
                Expect.equal (version.GetValue<string>()) "3.1.0" "OpenAPI 3.1"
            }

        yield
            test "documents every status POST /callback answers, and no other" {
                let documented = responses () |> Seq.map (fun r -> int r.Key) |> Set.ofSeq

                Expect.equal
                    documented
                    (set [ 200; 202; 400; 403; 404; 405; 408; 413; 415; 422; 429; 500; 502; 503 ])
                    "documented statuses"
            }

        yield
            test "429 documents its Retry-After header" {
                Expect.equal (requiredHeaders 429) [ "retry-after" ] "Retry-After"
            }

        let answers = lazy [ for name, answer in realAnswers -> name, answer () ]

        yield
            test "every documented status has a real answer among the cases" {
                let answered = answers.Value |> List.map (fun (_, a) -> a.Status) |> Set.ofList
                let documented = responses () |> Seq.map (fun r -> int r.Key) |> Set.ofSeq
                Expect.equal (documented - answered) answeredElsewhere "only those answered elsewhere are missing"
            }

        for name, _ in realAnswers ->
            test $"{name}: the real answer is documented and validates against its schema" {
                let answer = answers.Value |> List.find (fun (n, _) -> n = name) |> snd
                conforms callback answer
            }

        yield
            test "documents every status GET /calls/{callId}, its events and GET /slots answer, and no other" {
                let documented route =
                    responsesOf route |> Seq.map (fun r -> int r.Key) |> Set.ofSeq

                Expect.equal (documented status) (set [ 200; 404; 405 ]) "GET /calls/{callId}"
                Expect.equal (documented events) (set [ 200; 404; 405; 429; 503 ]) "its events"
                Expect.equal (documented slots) (set [ 200; 400; 405 ]) "GET /slots"
            }

        let callAnswered =
            lazy [ for route, name, answer in callAnswers -> route, name, answer () ]

        yield
            test "every documented status of the status routes has a real answer among the cases" {
                for route in [ status; events; slots ] do
                    let answered =
                        set [
                            for r, _, a in callAnswered.Value do
                                if r = route then
                                    a.Status
                        ]

                    let documented = responsesOf route |> Seq.map (fun r -> int r.Key) |> Set.ofSeq
                    Expect.equal answered documented $"{fst route}"
            }

        for route, name, _ in callAnswers ->
            test $"{name}: the real answer is documented and validates against its schema" {
                let _, _, answer = callAnswered.Value |> List.find (fun (_, n, _) -> n = name)
                conforms route answer
            }
    ]
