/// The status API as a visitor's page reads it, through a sidecar's test client: `GET /calls/{callId}` and
/// the `event: state` frames of `GET /calls/{callId}/events`.
module Callback.Tests.StatusClient

open System
open System.IO
open System.Net
open System.Net.Http
open System.Text.Json
open System.Threading
open System.Threading.Tasks
open Expecto
open Callback.Tests.Programs

/// A call as the contract gives it: the fields the tests compare.
type Seen = {
    State: string
    Outcome: string option
    /// The history's states, oldest first.
    History: string list
    HangupCause: int option
    SipCode: int option
    TalkSeconds: float option
    Tracking: bool
}

let private optional (name: string) (read: JsonElement -> 'T) (json: JsonElement) =
    match json.TryGetProperty name with
    | true, value when value.ValueKind <> JsonValueKind.Null -> Some(read value)
    | _ -> None

/// The body of `GET /calls/{callId}` (and of each SSE frame), read field by field.
let ofJson (json: JsonElement) = {
    State = json.GetProperty("state").GetString()
    Outcome = json |> optional "outcome" _.GetString()
    History = [
        for t in json.GetProperty("history").EnumerateArray() -> t.GetProperty("state").GetString()
    ]
    HangupCause = json |> optional "hangupCause" _.GetProperty("code").GetInt32()
    SipCode = json |> optional "sipCode" _.GetInt32()
    TalkSeconds = json |> optional "talkSeconds" _.GetDouble()
    Tracking = json.GetProperty("tracking").GetBoolean()
}

/// `GET statusUrl` now: the call, or None on 404 (any other status fails the test).
let get (client: HttpClient) (statusUrl: string) : Seen option =
    use response = client.GetAsync(statusUrl).Result
    let body = response.Content.ReadAsStringAsync().Result

    match response.StatusCode with
    | HttpStatusCode.NotFound -> None
    | HttpStatusCode.OK -> Some(ofJson (JsonDocument.Parse(body).RootElement))
    | other -> failtestf "GET %s answered %d: %s" statusUrl (int other) body

let isFinal (call: Seen) =
    call.State = "ended" || call.State = "failed"

/// Waits up to `seconds` until `GET statusUrl` satisfies `reached`; fails the test with the last answer
/// otherwise. The answer that did.
let awaitCall (client: HttpClient) (seconds: float) (what: string) (reached: Seen -> bool) (statusUrl: string) =
    let now () = get client statusUrl

    if not (eventually (TimeSpan.FromSeconds seconds) (fun () -> now () |> Option.exists reached)) then
        failtestf "the call was not %s within %.0f s: %A" what seconds (now ())

    (now ()).Value

/// Waits until the call is final.
let awaitFinal client seconds statusUrl =
    awaitCall client seconds "final" isFinal statusUrl

/// One `event: state` frame: its `id:` and its `data:` read as a call.
type Frame = { Id: int64; Call: Seen }

let private frameOf (fields: (string * string) list) =
    let value name =
        fields |> List.tryFind (fst >> (=) name) |> Option.map snd

    match value "event", value "id", value "data" with
    | Some "state", Some id, Some data ->
        Some {
            Id = int64 id
            Call = ofJson (JsonDocument.Parse(data).RootElement)
        }
    | _ -> None

/// Reads `statusUrl/events` until the server ends the stream (at most `within`): its frames, in order.
/// Comments (the heartbeat) are skipped. Fails the test if the stream is not `text/event-stream`, or if
/// it is still open after `within`.
let stateFrames (client: HttpClient) (within: TimeSpan) (statusUrl: string) : Task<Frame list> =
    task {
        use timeout = new CancellationTokenSource(within)
        use request = new HttpRequestMessage(HttpMethod.Get, $"{statusUrl}/events")

        use! response =
            client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token)

        Expect.equal response.StatusCode HttpStatusCode.OK "the stream opens"
        Expect.equal (string response.Content.Headers.ContentType.MediaType) "text/event-stream" "its type"
        use! body = response.Content.ReadAsStreamAsync timeout.Token
        use reader = new StreamReader(body)
        let frames = ResizeArray<Frame>()
        let mutable fields = []
        let mutable line = null

        try
            let! first = reader.ReadLineAsync timeout.Token
            line <- first

            while not (isNull line) do
                if line = "" then
                    frameOf (List.rev fields) |> Option.iter frames.Add
                    fields <- []
                elif not (line.StartsWith ":") then
                    match line.IndexOf ':' with
                    | -1 -> fields <- (line, "") :: fields
                    | i -> fields <- (line.Substring(0, i), line.Substring(i + 1).TrimStart ' ') :: fields

                let! next = reader.ReadLineAsync timeout.Token
                line <- next
        with :? OperationCanceledException ->
            failtestf "the stream was still open after %O; frames so far: %A" within (List.ofSeq frames)

        return List.ofSeq frames
    }

/// What the visitor's page saw on the stream agrees with `GET`: one frame per transition, numbered 1, 2, …
/// in order, each frame's state its own transition's, the last one final with the call's outcome.
let expectStreamMatches (final: Seen) (frames: Frame list) =
    Expect.equal (frames |> List.map _.Id) [ 1L .. int64 final.History.Length ] "ids 1, 2, … one per transition"
    Expect.equal (frames |> List.map _.Call.State) final.History "each frame's state, in the history's order"

    for frame in frames do
        Expect.equal
            frame.Call.History
            (List.truncate (int frame.Id) final.History)
            $"frame {frame.Id}: the history so far"

    Expect.equal (List.last frames).Call final "the last frame is the call as GET answers it"
