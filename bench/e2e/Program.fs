/// End-to-end callback latency: the sidecar's POST /callback versus the raw AMI floor, against the same
/// real Asterisk, in the same run, at each concurrency level. Writes a Markdown report.
///
///   CallbackE2eBench --sidecar-dll Callback.dll [--phase C:N]... [--warmup N] [--asterisk-root DIR]
///                    [--drain-seconds S] [--phase-seconds S] [--sidecar-env K=V]... [--work DIR] [--out FILE]
///
/// AMI settings come from the same environment variables as the sidecar's (Ami__*, Originate__*).
/// Each phase runs N calls per side in four chunks, floor / sidecar / sidecar / floor (ABBA, so that a
/// drift in the machine's load falls on both sides alike), waiting between chunks until Asterisk has
/// hung up the previous chunk's calls (each lives ~6 s).
module Bench.Program

open System
open System.IO
open System.Threading.Tasks
open Bench.Stats

type Options = {
    SidecarDll: string
    Phases: (int * int) list
    Warmup: int
    AsteriskRoot: string option
    DrainSeconds: float
    PhaseSeconds: float
    SidecarEnv: (string * string) list
    Work: string
    Out: string option
    CallTimeout: TimeSpan
    /// A shell command that starts Asterisk if it is down (idempotent), run when it was restarted under us.
    AsteriskStart: string option
    /// Sequential GET /healthz and refused POST /callback calls (no AMI) to split the sidecar's time.
    Probes: int
}

let rec private parse (o: Options) args =
    match args with
    | [] -> o
    | "--sidecar-dll" :: v :: rest -> parse { o with SidecarDll = v } rest
    | "--phase" :: v :: rest ->
        let parts = v.Split ':'

        parse
            {
                o with
                    Phases = o.Phases @ [ int parts[0], int parts[1] ]
            }
            rest
    | "--warmup" :: v :: rest -> parse { o with Warmup = int v } rest
    | "--asterisk-root" :: v :: rest ->
        parse
            {
                o with
                    AsteriskRoot = (if v = "" then None else Some v)
            }
            rest
    | "--drain-seconds" :: v :: rest -> parse { o with DrainSeconds = float v } rest
    | "--phase-seconds" :: v :: rest -> parse { o with PhaseSeconds = float v } rest
    | "--sidecar-env" :: v :: rest ->
        let i = v.IndexOf '='

        parse
            {
                o with
                    SidecarEnv = o.SidecarEnv @ [ v.Substring(0, i), v.Substring(i + 1) ]
            }
            rest
    | "--work" :: v :: rest -> parse { o with Work = v } rest
    | "--out" :: v :: rest -> parse { o with Out = Some v } rest
    | "--probes" :: v :: rest -> parse { o with Probes = int v } rest
    | "--asterisk-start" :: v :: rest ->
        parse
            {
                o with
                    AsteriskStart = (if v = "" then None else Some v)
            }
            rest
    | other :: _ -> failwithf "unknown argument %s" other

type private Side =
    | FloorSide
    | SidecarSide
    /// Both, call by call (floor, sidecar, sidecar, floor, …): the sequential level, where the two
    /// clients then see exactly the same Asterisk and machine.
    | Alternating

type private PhaseResult = {
    Concurrency: int
    Floor: Summary
    Sidecar: Summary
    FloorFailures: string list
    SidecarFailures: string list
    PeakChannels: int option
    PeakCalls: int option
    DrainSeconds: float
    SidecarPeakRssMiB: float option
    Skipped: int
    FloorOverflows: int64 option
    SidecarOverflows: int64 option
    /// Sequential only: sidecar − floor for neighbouring calls (4k, 4k+1) and (4k+3, 4k+2), both ok.
    PairedDifferences: float list
}

let private log (s: string) =
    eprintfn "[%s] %s" (DateTime.Now.ToString "HH:mm:ss") s

let private f1 (x: float) =
    if Double.IsNaN x then
        "–"
    else
        x.ToString("0.0", Globalization.CultureInfo.InvariantCulture)

let private f2 (x: float) =
    if Double.IsNaN x then
        "–"
    else
        x.ToString("0.00", Globalization.CultureInfo.InvariantCulture)

let private topFailures (failures: string list) =
    failures
    |> List.map (fun f -> if f.Length > 160 then f.Substring(0, 160) + "…" else f)
    |> List.countBy id
    |> List.sortByDescending snd
    |> List.truncate 4

[<EntryPoint>]
let main argv =
    let o =
        parse
            {
                SidecarDll = ""
                Phases = []
                Warmup = 8
                AsteriskRoot = None
                DrainSeconds = 20.0
                PhaseSeconds = 180.0
                SidecarEnv = []
                Work = Path.Combine(Path.GetTempPath(), "callback-e2e")
                Out = None
                CallTimeout = TimeSpan.FromSeconds 20.0
                AsteriskStart = None
                Probes = 200
            }
            (List.ofArray argv)

    let o =
        if o.Phases.IsEmpty then
            {
                o with
                    Phases = [ 1, 200; 8, 400; 32, 640 ]
            }
        else
            o

    if o.SidecarDll = "" then
        failwith "--sidecar-dll is required"

    Directory.CreateDirectory o.Work |> ignore
    let target = Floor.fromEnvironment ()
    let root = o.AsteriskRoot
    let floorCall = Floor.call target o.CallTimeout None
    let floorStages = Collections.Concurrent.ConcurrentQueue<float[]>()
    let stagedFloorCall = Floor.call target o.CallTimeout (Some floorStages)
    let mutable nextIndex = 0

    let take n =
        let first = nextIndex
        nextIndex <- nextIndex + n
        first

    let baseline =
        Asterisk.counts root
        |> Option.map (fun c -> c.Channels)
        |> Option.defaultValue 0

    let drain () =
        Asterisk.drain root baseline (TimeSpan.FromSeconds o.DrainSeconds) (TimeSpan.FromSeconds 7.0)

    let startAsterisk () =
        match o.AsteriskStart with
        | None -> ()
        | Some cmd ->
            log $"running: {cmd}"

            use p =
                Diagnostics.Process.Start(Diagnostics.ProcessStartInfo("bash", [ "-c"; cmd ], UseShellExecute = false))

            if not (p.WaitForExit 300000) then
                p.Kill true

    let mutable repeatedChunks = 0

    /// Runs a chunk; when Asterisk went down or was restarted during it (others share this Asterisk),
    /// starts it again and repeats the chunk, at most twice. Those attempts are not counted.
    let chunkWithRetries concurrency n deadline call =
        let mutable attempt = 0
        let mutable result = None

        while result.IsNone do
            if root.IsSome && (Asterisk.uptime root).IsNone then
                log "Asterisk is not answering: starting it"
                startAsterisk ()

            let sw = Diagnostics.Stopwatch.StartNew()
            let first = take n
            let r: ChunkResult = (runChunk concurrency n first deadline call).Result

            let restarted =
                not r.Failures.IsEmpty
                && (r.Failures |> List.exists (fun f -> f.Contains "shutting down")
                    || (root.IsSome
                        && (match Asterisk.uptime root with
                            | None -> true
                            | Some up -> float up < sw.Elapsed.TotalSeconds + 1.0)))

            if restarted && attempt < 2 && DateTime.UtcNow < deadline then
                log
                    $"   Asterisk was stopped or restarted during this chunk ({r.Failures.Length} failures): repeating it"

                attempt <- attempt + 1
                repeatedChunks <- repeatedChunks + 1
                Threading.Thread.Sleep 2000
                startAsterisk ()
            else
                result <- Some(r, first)

        result.Value

    log $"starting the sidecar ({o.SidecarDll})"
    let sidecarLog = Path.Combine(o.Work, "sidecar.log")

    let sidecar: Sidecar.Running =
        (Sidecar.start o.SidecarDll o.SidecarEnv sidecarLog (TimeSpan.FromSeconds 60.0)).Result

    let pid = sidecar.Process.Id
    log $"sidecar pid {pid} ready after {f1 sidecar.ReadyMs} ms on port {sidecar.Port}"
    let http = Sidecar.client ()
    let sidecarCall = Sidecar.call http sidecar.BaseUri
    let sampler = new Asterisk.Sampler(root, TimeSpan.FromSeconds 0.5)

    try
        // Warm-up, not measured: JIT, connection pools, TLS code paths on both sides.
        let warm c n =
            for side in [ FloorSide; SidecarSide ] do
                let call = if side = FloorSide then floorCall else sidecarCall
                let r, _ = chunkWithRetries c n (DateTime.UtcNow.AddSeconds 60.0) call

                for f in r.Failures do
                    log $"warm-up failure: {f}"

        log $"warm-up: {o.Warmup} sequential and {2 * o.Warmup} at c=8 per side"
        warm 1 o.Warmup
        warm 8 (2 * o.Warmup)
        drain () |> ignore
        let rssIdle = Sidecar.procStatusMiB pid "VmRSS"

        // The sidecar's own share, without Asterisk: HTTP alone, then HTTP + binding + validation.
        log $"probes: {o.Probes} GET /healthz and {o.Probes} refused POST /callback, sequential"
        let probeDeadline = DateTime.UtcNow.AddSeconds 60.0

        let probe call =
            (runChunk 1 o.Probes 0 probeDeadline call).Result

        probe (Sidecar.health http sidecar.BaseUri) |> ignore // warm-up of the probe paths
        probe (Sidecar.refused http sidecar.BaseUri) |> ignore
        let healthProbe = probe (Sidecar.health http sidecar.BaseUri)
        let refusedProbe = probe (Sidecar.refused http sidecar.BaseUri)

        let results = [
            for concurrency, perSide in o.Phases do
                let deadline = DateTime.UtcNow.AddSeconds o.PhaseSeconds
                let half = max 1 (perSide / 2)

                let chunks =
                    if concurrency = 1 then
                        // 4 chunks of perSide / 2 calls, half of each on either side.
                        [ for _ in 1..4 -> Alternating, half ]
                    else
                        [
                            FloorSide, half
                            SidecarSide, half
                            SidecarSide, perSide - half
                            FloorSide, perSide - half
                        ]

                let mutable floorChunks = []
                let mutable sidecarChunks = []
                let mutable peakChannels = None
                let mutable peakCalls = None
                let mutable drained = 0.0
                let mutable peakRss = None
                let mutable floorOverflows = Some 0L
                let mutable paired = []
                let mutable sidecarOverflows = Some 0L

                for side, n in chunks |> List.filter (fun (_, n) -> n > 0) do
                    sampler.TakePeak() |> ignore
                    let watchRss = side <> FloorSide && Sidecar.resetPeakRss pid

                    let sideName =
                        match side with
                        | FloorSide -> "floor"
                        | SidecarSide -> "sidecar"
                        | Alternating -> "floor and sidecar in turn"

                    log $"c={concurrency}: {n} calls via {sideName}"
                    // Alternating: each call's outcome, by index, to split the chunk between the sides.
                    let outcomes = Collections.Concurrent.ConcurrentQueue<int * bool * float * string>()

                    let alternating i =
                        task {
                            let onFloor = i % 4 = 0 || i % 4 = 3
                            let t0 = Diagnostics.Stopwatch.GetTimestamp()
                            let! r = if onFloor then stagedFloorCall i else sidecarCall i
                            let ms = elapsedMs t0

                            match r with
                            | Ok() -> outcomes.Enqueue((i, onFloor, ms, null))
                            | Error e -> outcomes.Enqueue((i, onFloor, ms, e))

                            return r
                        }

                    let call =
                        match side with
                        | FloorSide when concurrency = 1 -> stagedFloorCall
                        | FloorSide -> floorCall
                        | SidecarSide -> sidecarCall
                        | Alternating -> alternating

                    let overflowsBefore = Asterisk.listenOverflows ()
                    let r, first = chunkWithRetries concurrency n deadline call

                    let overflows =
                        Option.map2 (fun a b -> b - a) overflowsBefore (Asterisk.listenOverflows ())

                    if side <> SidecarSide then
                        floorOverflows <- Option.map2 (+) floorOverflows overflows

                    if side <> FloorSide then
                        sidecarOverflows <- Option.map2 (+) sidecarOverflows overflows

                    let atEnd = Asterisk.counts root

                    if watchRss then
                        match Sidecar.procStatusMiB pid "VmHWM" with
                        | Some hwm -> peakRss <- Some(max hwm (defaultArg peakRss 0.0))
                        | None -> ()

                    let sampled =
                        match sampler.TakePeak(), atEnd with
                        | Some(ch, calls), Some e -> Some(max ch e.Channels, max calls e.Calls)
                        | Some p, None -> Some p
                        | None, Some e -> Some(e.Channels, e.Calls)
                        | None, None -> None

                    match sampled with
                    | Some(ch, calls) ->
                        peakChannels <- Some(max ch (defaultArg peakChannels 0))
                        peakCalls <- Some(max calls (defaultArg peakCalls 0))
                    | None -> ()

                    log
                        $"   {r.Latencies.Length} ok, {r.Failures.Length} failed, {r.Skipped} skipped in {f2 r.WallSeconds} s"

                    match side with
                    | FloorSide -> floorChunks <- r :: floorChunks
                    | SidecarSide -> sidecarChunks <- r :: sidecarChunks
                    | Alternating ->
                        let mine =
                            outcomes.ToArray()
                            |> Array.filter (fun (i, _, _, _) -> i >= first && i < first + n)

                        let part onFloor =
                            let xs = mine |> Array.filter (fun (_, f, _, _) -> f = onFloor)

                            {
                                Latencies = [
                                    for _, _, ms, e in xs do
                                        if isNull e then
                                            yield ms
                                ]
                                Failures = [
                                    for _, _, _, e in xs do
                                        if not (isNull e) then
                                            yield e
                                ]
                                // Each side's share of the chunk's wall time: the time its calls took.
                                WallSeconds = (xs |> Array.sumBy (fun (_, _, ms, _) -> ms)) / 1000.0
                                Skipped = if onFloor then r.Skipped else 0
                            }

                        floorChunks <- part true :: floorChunks
                        sidecarChunks <- part false :: sidecarChunks

                        let ok =
                            mine
                            |> Array.choose (fun (i, _, ms, e) -> if isNull e then Some(i, ms) else None)
                            |> dict

                        for floorIndex, sidecarIndex in
                            [
                                for k in first / 4 .. (first + n) / 4 do
                                    yield 4 * k, 4 * k + 1
                                    yield 4 * k + 3, 4 * k + 2
                            ] do
                            match ok.TryGetValue floorIndex, ok.TryGetValue sidecarIndex with
                            | (true, f), (true, sc) -> paired <- (sc - f) :: paired
                            | _ -> ()

                    let waited, left = drain ()
                    drained <- drained + waited

                    match left with
                    | Some l when l > baseline -> log $"   {l} channels still up after {f1 waited} s of waiting"
                    | _ -> ()

                let summary (chunks: ChunkResult list) =
                    summarize
                        (chunks |> List.collect _.Latencies)
                        (chunks |> List.sumBy (fun c -> c.Failures.Length))
                        (chunks |> List.sumBy _.WallSeconds)

                {
                    Concurrency = concurrency
                    Floor = summary floorChunks
                    Sidecar = summary sidecarChunks
                    FloorFailures = floorChunks |> List.collect _.Failures
                    SidecarFailures = sidecarChunks |> List.collect _.Failures
                    PeakChannels = peakChannels
                    PeakCalls = peakCalls
                    DrainSeconds = drained
                    SidecarPeakRssMiB = peakRss
                    FloorOverflows = floorOverflows
                    PairedDifferences = paired
                    SidecarOverflows = sidecarOverflows
                    Skipped = (floorChunks @ sidecarChunks) |> List.sumBy _.Skipped
                }
        ]

        let rssAfter = Sidecar.procStatusMiB pid "VmRSS"

        let warnings =
            try
                File.ReadLines sidecarLog
                |> Seq.filter (fun l -> l.StartsWith("warn:") || l.StartsWith("fail:") || l.StartsWith("crit:"))
                |> Seq.length
            with _ ->
                -1

        // ---- report -------------------------------------------------------------------------------------
        let md = Text.StringBuilder()
        let line (s: string) = md.AppendLine s |> ignore
        let opt f = Option.map f >> Option.defaultValue "–"

        let label c =
            if c = 1 then "sequential" else $"c={c}"

        line "### Latency per call (ms, from the client's first byte to the last byte of the answer)"
        line ""

        line
            "| load | client | calls ok | failed | p50 | p90 | p99 | mean | max | calls/s | SYNs dropped (accept queue full) | Asterisk peak channels / calls |"

        line "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"

        for r in results do
            for name, s, overflows in
                [
                    "floor (raw AMI/TLS)", r.Floor, r.FloorOverflows
                    "sidecar POST /callback", r.Sidecar, r.SidecarOverflows
                ] do
                line
                    $"| {label r.Concurrency} | {name} | {s.Ok} | {s.Failed} | {f2 s.P50} | {f2 s.P90} | {f2 s.P99} | {f2 s.Mean} | {f1 s.Max} | {f1 s.Rate} | {opt string overflows} | {opt string r.PeakChannels} / {opt string r.PeakCalls} |"

        line ""
        line "### Sidecar against the floor (targets: p50 ≤ floor + 1 ms, p99 ≤ 2 × floor)"
        line ""

        line
            "| load | floor p50 | sidecar p50 | sidecar − floor p50 | floor p99 | sidecar p99 | sidecar / floor p99 | mean: sidecar − floor | targets |"

        line "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"

        for r in results do
            let d50 = r.Sidecar.P50 - r.Floor.P50
            let q99 = r.Sidecar.P99 / r.Floor.P99
            let ok50 = d50 <= 1.0
            let ok99 = q99 <= 2.0

            let verdict =
                match ok50, ok99 with
                | true, true -> "both met"
                | false, true -> "p50 missed"
                | true, false -> "p99 missed"
                | false, false -> "both missed"

            line
                $"| {label r.Concurrency} | {f2 r.Floor.P50} | {f2 r.Sidecar.P50} | {f2 d50} | {f2 r.Floor.P99} | {f2 r.Sidecar.P99} | {f2 q99}× | {f2 (r.Sidecar.Mean - r.Floor.Mean)} | {verdict} |"

        for r in results do
            if not r.PairedDifferences.IsEmpty then
                let d = r.PairedDifferences |> Array.ofList |> Array.sort

                line ""

                line
                    $"Sequential, paired (each sidecar call against the floor call next to it, {d.Length} pairs): sidecar − floor median **{f2 (percentile d 50.0)} ms**, quartiles {f2 (percentile d 25.0)} … {f2 (percentile d 75.0)} ms. Less sensitive to the machine's load than the difference of the medians."

        line ""
        line "### Where the time goes, sequential (ms)"
        line ""
        line "| part | p50 | mean | calls |"
        line "| --- | ---: | ---: | ---: |"

        let probeRow (name: string) (r: ChunkResult) =
            let s = summarize r.Latencies r.Failures.Length r.WallSeconds
            line $"| {name} | {f2 s.P50} | {f2 s.Mean} | {s.Ok} |"

        probeRow "sidecar `GET /healthz` (HTTP round trip only, no AMI)" healthProbe

        probeRow
            "sidecar `POST /callback` refused with 422 (HTTP + form binding + full number validation, no AMI)"
            refusedProbe

        let stageRows = floorStages.ToArray()

        for i in 0 .. Floor.stageNames.Length - 1 do
            let xs = stageRows |> Array.map (fun a -> a[i]) |> Array.sort

            if xs.Length > 0 then
                line
                    $"| floor: {Floor.stageNames[i]} | {f2 (percentile xs 50.0)} | {f2 (Array.average xs)} | {xs.Length} |"

        match results |> List.tryFind (fun r -> r.Concurrency = 1) with
        | Some r ->
            line $"| floor: whole call | {f2 r.Floor.P50} | {f2 r.Floor.Mean} | {r.Floor.Ok} |"
            line $"| sidecar: whole `POST /callback` | {f2 r.Sidecar.P50} | {f2 r.Sidecar.Mean} | {r.Sidecar.Ok} |"
        | None -> ()

        line ""
        line "### Sidecar process"
        line ""
        line "| what | value |"
        line "| --- | ---: |"
        line $"| start → first 200 from /healthz (this run, one start) | {f1 sidecar.ReadyMs} ms |"
        line $"| VmRSS after warm-up, idle | {opt f1 rssIdle} MiB |"

        for r in results do
            match r.SidecarPeakRssMiB with
            | Some p -> line $"| peak RSS (VmHWM) during the {label r.Concurrency} sidecar chunks | {f1 p} MiB |"
            | None -> ()

        line $"| VmRSS after the last phase | {opt f1 rssAfter} MiB |"
        line $"| warn/fail lines in the sidecar's log | {warnings} |"

        if not o.SidecarEnv.IsEmpty then
            let extra =
                o.SidecarEnv |> List.map (fun (k, v) -> k + "=" + v) |> String.concat " "

            line $"| extra sidecar environment | {extra} |"

        line ""

        let failures =
            results
            |> List.collect (fun r -> [
                for side, fs in [ "floor", r.FloorFailures; "sidecar", r.SidecarFailures ] do
                    for text, n in topFailures fs do
                        yield $"- {label r.Concurrency}, {side}: {n} × `{text}`"
            ])

        if failures.IsEmpty then
            line "No call failed."
        else
            line "Failures (most frequent first):"
            line ""
            failures |> List.iter line

        let skipped = results |> List.sumBy _.Skipped

        if skipped > 0 then
            line ""
            line $"{skipped} calls were not started: a phase reached its {o.PhaseSeconds} s limit."

        if repeatedChunks > 0 then
            line ""

            line
                $"Asterisk was stopped or restarted by someone else during {repeatedChunks} chunk(s); those chunks were repeated and only the repeat counts."

        line ""

        line
            $"Waiting for Asterisk to hang up between chunks (so each chunk starts on an idle Asterisk): {results |> List.sumBy _.DrainSeconds |> f1} s in all."

        let text = md.ToString()

        match o.Out with
        | Some path -> File.WriteAllText(path, text)
        | None -> printf "%s" text

        let anyOk = results |> List.exists (fun r -> r.Floor.Ok > 0 && r.Sidecar.Ok > 0)
        if anyOk then 0 else 1
    finally
        sampler.Stop()
        Sidecar.stop sidecar (TimeSpan.FromSeconds 10.0)
        http.Dispose()
