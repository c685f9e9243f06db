/// The proof of durable requests against the real thing: the sidecar program SIGKILLed again and again while
/// visitors post callbacks, started again each time on the same data directory, and then every accepted
/// call counted from SIPp's side and from Asterisk's: none dialled twice, none lost without a cause.
module Callback.Tests.RealCrashTests

open System
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Http
open System.Text.Json
open System.Text.RegularExpressions
open System.Threading
open Expecto
open Microsoft.Data.Sqlite

open Callback.Tests.Programs
open Callback.Tests.LocalAsterisk
open Callback.Tests.TestSidecar
open Callback.Tests.Sipp
open Callback.Tests.SipEvidence
open Callback.Tests.StatusClient
open Callback.Tests.RealCallBed

/// How many callbacks the visitors post, one every `pace`: about 35 s of posting.
let private posts = 200

let private pace = TimeSpan.FromMilliseconds 175.0

/// The `i`-th visitor's number: +1 514 555 20nn, then +1 438 555 20nn. The store keeps a number masked to
/// its first four and last two digits, so these 200 stay distinct there too.
let private numberOf (i: int) =
    let area = if i < 100 then "514" else "438"
    $"+1 {area} 555 20{i % 100:D2}"

/// A dial string (`15145552007`) masked as the store keeps it.
let private masked (digits: string) =
    digits.Substring(0, 4) + "*****" + digits.Substring(digits.Length - 2)

let private maskedOf (typed: string) =
    masked (Regex.Replace(typed, "[^0-9]", ""))

/// The program on one data directory, killed and started again: the one running now.
type private Crashing(settings: (string * string) list) =
    let gate = obj ()
    let mutable kills = 0
    let earlier = ResizeArray<string>()

    let started () =
        let sidecar = SidecarProgram.start settings

        if not (sidecar.AwaitHealthy()) then
            (sidecar :> IDisposable).Dispose()
            failtestf "the sidecar did not answer /healthz within 30 s:\n%s" (tail 30 sidecar.Program.Output)

        sidecar

    let mutable current = started ()

    member _.Url = lock gate (fun () -> current.Url)
    member _.Kills = kills

    /// SIGKILL (no shutdown, no flush the program could do), then the same program on the same directory.
    member _.KillAndStart() =
        let old = lock gate (fun () -> current)
        old.Program.Process.Kill()
        old.Program.Process.WaitForExit()
        kills <- kills + 1
        (old :> IDisposable).Dispose()
        lock gate (fun () -> earlier.Add old.Program.Output)
        let next = started ()
        lock gate (fun () -> current <- next)

    member _.Log = lock gate (fun () -> current.Program.Output)

    /// What every run logged, the run killed first first.
    member _.Logs = lock gate (fun () -> List.ofSeq earlier @ [ current.Program.Output ])

    interface IDisposable with
        member _.Dispose() =
            (lock gate (fun () -> current) :> IDisposable).Dispose()

/// One POST as a visitor's page sends it: the callId and whether it was a duplicate on 200, None when the
/// program is down or answered anything else (the visitor asks again).
let private postOnce (client: HttpClient) (url: string) (number: string) =
    try
        use content = form [ "phoneNumber", number; "language", "en" ]
        use response = client.PostAsync(url + "callback", content).Result
        let body = response.Content.ReadAsStringAsync().Result

        if response.StatusCode = HttpStatusCode.OK then
            let root = JsonDocument.Parse(body).RootElement

            let duplicate =
                match root.TryGetProperty "duplicate" with
                | true, value -> value.GetBoolean()
                | _ -> false

            Ok(root.GetProperty("callId").GetString(), duplicate)
        else
            Error $"{int response.StatusCode}"
    with _ ->
        Error "down"

/// The calls the store holds after the run: (callId, masked number, state, outcome).
let private storedCalls (directory: string) =
    use connection =
        new SqliteConnection(
            $"Data Source={Path.Combine(directory, Callback.Calls.SqliteStore.FileName)};Mode=ReadOnly"
        )

    connection.Open()
    use command = connection.CreateCommand()
    command.CommandText <- "SELECT call_id, masked_number, state, outcome FROM calls"
    use reader = command.ExecuteReader()

    let rows = [
        while reader.Read() do
            reader.GetString 0,
            reader.GetString 1,
            reader.GetString 2,
            (if reader.IsDBNull 3 then "" else reader.GetString 3)
    ]

    SqliteConnection.ClearPool connection
    rows

/// The dial string of an INVITE's Request-URI (`INVITE sip:15145552007@…`).
let private dialled (message: Message) =
    Regex.Match(firstLine message, @"^INVITE sip:(\d+)@").Groups[1].Value

let private crashLoop (env, monitorEnv: (string * string) list) =
    let data = Directory.CreateTempSubdirectory("callback-crash-").FullName

    let settings =
        sidecarSettings env
        @ (monitorEnv |> List.filter (fun (key, _) -> key.Contains "__"))
        @ [
            "Callback__MaxAttempts", "1"
            "Data__Path", data
            "Ami__ConnectTimeout", "15000"
        ]

    let logStart = logLength env
    use recorder = AmiMonitor.connect env monitorEnv
    // Busy at once: every INVITE is answered (no retransmission outlives the test), every call ends quickly.
    use visitors =
        visitorPhone env "busy" 100000 (variable "ring_ms" "300" @ [ "-timeout"; "600" ])

    use program = new Crashing(settings)
    use client = new HttpClient(Timeout = TimeSpan.FromSeconds 5.0)
    let accepted = Collections.Concurrent.ConcurrentBag<string * string * bool>()
    let refusals = Collections.Concurrent.ConcurrentBag<string>()
    let clock = Stopwatch.StartNew()

    let poster =
        Tasks.Task.Run(fun () ->
            for i in 0 .. posts - 1 do
                let due = pace * float i

                if clock.Elapsed < due then
                    Thread.Sleep(due - clock.Elapsed)

                let number = numberOf i
                let mutable answered = false

                while not answered do
                    match postOnce client program.Url number with
                    | Ok(callId, duplicate) ->
                        accepted.Add((number, callId, duplicate))
                        answered <- true
                    | Error why ->
                        refusals.Add why
                        Thread.Sleep 100)

    // The kills: every 2–5 s, seeded, while the visitors post.
    let random = Random 17

    while not (poster.Wait(TimeSpan.FromMilliseconds(2000.0 + float (random.Next 3000)))) do
        program.KillAndStart()

    poster.Wait()
    let posted = clock.Elapsed
    let answers = List.ofSeq accepted

    let callIds =
        answers |> List.map (fun (number, callId, _) -> number, callId) |> List.distinct

    let ends = [
        for number, callId in callIds ->
            try
                number, callId, awaitFinal client 120.0 (program.Url + $"calls/{callId}")
            with e ->
                failtestf "%s\nthe program's log: %s" e.Message (tail 30 program.Log)
    ]

    let stored = storedCalls data

    // Every INVITE answered (the busy phone's 486) or else wait out its retransmissions before the next test.
    let invites = calls visitors

    let responded =
        visitors.Messages
        |> List.filter (fun m -> m.Sent && (firstLine m).StartsWith "SIP/2.0 ")
        |> List.map (header "Call-ID")
        |> set

    if invites |> List.exists (fun m -> not (responded.Contains(header "Call-ID" m))) then
        Thread.Sleep unansweredInviteLifetime

    // Only this test's numbers: another list's calls on the same Asterisk (one of the load test's
    // +1 438 555 23nn masks like our 20nn) must neither count as ours nor hide in a masked key.
    let ours =
        set [ for i in 0 .. posts - 1 -> Regex.Replace(numberOf i, "[^0-9]", "") ]

    let foreign = invites |> List.filter (dialled >> ours.Contains >> not)

    let invites = invites |> List.filter (dialled >> ours.Contains)

    let invitesPer = invites |> List.countBy (dialled >> masked) |> Map.ofList

    let originatesPer =
        recorder.Events
        |> List.filter (AmiMonitor.isEvent "OriginateResponse")
        |> List.map (AmiMonitor.field "Channel")
        |> List.choose (fun channel ->
            let m = Regex.Match(channel, @"^PJSIP/(\d+)@trunk")

            if m.Success && ours.Contains m.Groups[1].Value then
                Some(masked m.Groups[1].Value)
            else
                None)
        |> List.countBy id
        |> Map.ofList

    let storedPer =
        stored |> List.countBy (fun (_, number, _, _) -> number) |> Map.ofList

    let count (per: Map<string, int>) number =
        per |> Map.tryFind number |> Option.defaultValue 0

    // Doubled: a number dialled more often than the store has calls for it (each call has one attempt).
    let doubled =
        [ for i in 0 .. posts - 1 -> maskedOf (numberOf i) ]
        |> List.filter (fun number ->
            count invitesPer number > count storedPer number
            || count originatesPer number > count storedPer number)

    let lost = ends |> List.filter (fun (_, _, call) -> call.Outcome = Some "lost")

    // Lost without a cause: an accepted call whose number was never dialled, yet not ended `lost`.
    let unexplained =
        ends
        |> List.filter (fun (number, _, call) -> count invitesPer (maskedOf number) = 0 && call.Outcome <> Some "lost")

    let duplicates =
        answers |> List.filter (fun (_, _, duplicate) -> duplicate) |> List.length

    eprintfn
        "Real crash and restart: %d callbacks posted in %.1f s through %d kills (%d posts refused or unanswered, retried); %d calls accepted (%d duplicate answers), %d stored; %d numbers dialled (%d INVITEs, %d Originates); %d lost (attempt sent when a kill hit); doubled %d; lost without cause %d; %d INVITEs to other tests' numbers"
        posts
        posted.TotalSeconds
        program.Kills
        refusals.Count
        callIds.Length
        duplicates
        stored.Length
        invitesPer.Count
        invites.Length
        (originatesPer |> Map.values |> Seq.sum)
        lost.Length
        doubled.Length
        unexplained.Length
        foreign.Length

    Expect.isGreaterThanOrEqual program.Kills 5 "the program was killed several times while visitors posted"

    Expect.equal
        (callIds |> List.map fst |> List.distinct |> List.length)
        posts
        "every visitor's request was accepted in the end"

    let evidence (number: string) =
        let callIds = stored |> List.filter (fun (_, n, _, _) -> n = number)

        let said =
            program.Logs
            |> List.mapi (fun run log ->
                log.Split '\n'
                |> Array.filter (fun line ->
                    line.Contains number
                    || callIds |> List.exists (fun (id, _, _, _) -> line.Contains(id.Substring(0, 8))))
                |> Array.map (fun line -> $"run {run}: {line}"))
            |> Array.concat
            |> String.concat "\n"

        let sip =
            invites
            |> List.filter (dialled >> masked >> (=) number)
            |> List.map (fun m -> m.Text.Split('\n') |> Array.truncate 12 |> String.concat "\n")
            |> String.concat "\n--\n"

        let asterisk =
            (logSince env logStart).Split '\n'
            |> Array.filter (fun line -> Regex.Replace(line, "[0-9]{11}", (fun m -> masked m.Value)).Contains number)
            |> Array.truncate 20
            |> String.concat "\n"

        $"{number}: Asterisk logged\n{asterisk}\n{count invitesPer number} INVITEs, {count originatesPer number} Originates, stored {callIds}\n{said}\nthe INVITEs:\n{sip}"

    Expect.equal
        doubled
        []
        $"""no number dialled more often than it has calls:
{doubled |> List.map evidence |> String.concat "\n"}"""

    Expect.equal unexplained [] "every accepted call was dialled, or ended lost (its attempt sent when a kill hit)"

    for number, _, call in ends do
        if call.Outcome = Some "busy" then
            Expect.isGreaterThan (count invitesPer (maskedOf number)) 0 "a busy call's number was dialled"

[<Tests>]
let tests =
    testSequencedGroup "the local Asterisk"
    <| testList "Real crash and restart" [
        withBed
            $"{posts} callbacks while the program is SIGKILLed every few seconds: none dialled twice, none lost without a cause"
        <| crashLoop
    ]
