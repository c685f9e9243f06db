/// Entry point:
///   parser [--quick] [--results FILE] [BenchmarkDotNet options]   in-memory parser benchmarks → parser.md
///   verify                                                       every reader counts every message
///   compare [--rounds N] [--out FILE]                            the readers interleaved in one process
///   profile [--out FILE]                                         CPU sampling of FrameReader, summarized
///   ping [--pings N] [--out FILE]                                where a Ping round trip's time goes
///   stream --client raw|naive|frames|connection|connection-every-value --port P [--pings K] [--warmup W]
///   report --work DIR --out FILE                                 stream.md from bench/stream/run.sh's results
///   fold [--rounds N] [--seconds S] [--live N] [--out FILE]      the call fold's throughput on one thread → fold.md;
///                                                                with --live, routed through a working set of N other calls
///   status --sidecar PATH [--rates R,R] [--calls N] [--warmup N] [--work DIR] [--out FILE]
///                                                                event → SSE frame / GET latency → status.md
///   durable [--requests N] [--warmup N] [--out FILE]             POST /callback with and without the durable write → durable.md
module Callback.Bench.Program

open System
open System.IO
open BenchmarkDotNet.Configs
open BenchmarkDotNet.Diagnosers
open BenchmarkDotNet.Filters
open Perfolizer.Horology
open BenchmarkDotNet.Jobs
open BenchmarkDotNet.Running
open BenchmarkDotNet.Toolchains.InProcess.Emit

let private usage () =
    eprintfn "usage: Callback.Bench parser [--quick] [--results FILE] [BenchmarkDotNet options]"
    eprintfn "       Callback.Bench verify"
    eprintfn "       Callback.Bench compare [--rounds N] [--out FILE]"
    eprintfn "       Callback.Bench profile [--out FILE]"
    eprintfn "       Callback.Bench ping [--pings N] [--out FILE]"

    eprintfn
        "       Callback.Bench stream --client raw|naive|frames|connection|connection-every-value --port P [--pings K] [--warmup W]"

    eprintfn "       Callback.Bench report --work DIR --out FILE"
    eprintfn "       Callback.Bench fold [--rounds N] [--seconds S] [--live N] [--out FILE]"

    eprintfn
        "       Callback.Bench status --sidecar PATH [--rates R,R] [--calls N] [--warmup N] [--work DIR] [--out FILE]"

    eprintfn "       Callback.Bench durable [--requests N] [--warmup N] [--out FILE]"

    2

/// Takes `--name value` out of the arguments.
let rec private take (name: string) (args: string list) =
    match args with
    | n :: v :: rest when n = name -> Some v, rest
    | a :: rest ->
        let found, rest' = take name rest
        found, a :: rest'
    | [] -> None, []

let private write (file: string) (text: string) =
    let dir = Path.GetDirectoryName(Path.GetFullPath file)
    Directory.CreateDirectory dir |> ignore
    File.WriteAllText(file, text)
    printfn "wrote %s" file

/// Writes `text` to the file `--out` names, if any, and prints it; the exit code.
let private emit (args: string list) (text: string) =
    fst (take "--out" args) |> Option.iter (fun out -> write out text)
    printfn "%s" text
    0

let private parser (args: string list) =
    let quick = args |> List.contains "--quick"
    let results, rest = take "--results" (args |> List.filter ((<>) "--quick"))

    ParserBenchmarks.verify ()

    // Quick: BenchmarkDotNet's short run, in process (no generated project to build), 120 ms iterations.
    let job, jobName =
        if quick then
            Job.ShortRun
                .WithToolchain(InProcessEmitToolchain.Instance)
                .WithIterationTime(TimeInterval.FromMilliseconds 120.0),
            "short, in process (`--quick`: one mix, 1 launch, 3 warm-ups, 3 iterations of 120 ms)"
        else
            Job.Default, "default"

    let config =
        DefaultConfig.Instance.AddJob(job.WithId(if quick then "short" else "default"))

    // Quick: only the mix that bench/stream sends.
    let config =
        if quick then
            config.AddFilter(
                SimpleFilter(fun case ->
                    not case.HasParameters
                    || string case.Parameters["Mix"] = Corpus.Mix.NewchannelHangup)
            )
        else
            config

    let summaries =
        BenchmarkRunner.Run(
            [|
                typeof<ParserBenchmarks.Parser>
                typeof<ParserBenchmarks.Anatomy.ParserAnatomy>
            |],
            config,
            Array.ofList rest
        )

    let reports = summaries |> Array.sumBy _.Reports.Length

    let filtered = rest |> List.exists (fun a -> a = "--filter" || a = "-f")

    match results with
    | Some _ when filtered -> printfn "filtered run: results file not written"
    | Some file when reports > 0 -> write file (Report.parser summaries jobName)
    | _ -> ()

    if summaries |> Array.exists _.HasCriticalValidationErrors || reports = 0 then
        1
    else
        0

/// CPU sampling (EventPipe) of FrameReader and ReceiveMirror on the newchannel-hangup mix, summarized.
let private profile (args: string list) =
    let started = DateTime.Now.AddSeconds -1.0
    let wanted = set [ "FrameReader"; "ReceiveMirror" ]

    let config =
        DefaultConfig.Instance
            .AddJob(Job.ShortRun.WithId("profile"))
            .AddDiagnoser(EventPipeProfiler(EventPipeProfile.CpuSampling))
            .AddFilter(
                SimpleFilter(fun case ->
                    wanted.Contains case.Descriptor.WorkloadMethod.Name
                    && string case.Parameters["Mix"] = Corpus.Mix.NewchannelHangup)
            )

    let summary = BenchmarkRunner.Run<ParserBenchmarks.Parser>(config)
    let artifacts = summary.ResultsDirectoryPath |> Path.GetDirectoryName

    let text =
        [
            "# CPU profile of the parser (EventPipe CPU sampling, BenchmarkDotNet)"
            ""
            $"Generated by `dotnet bench/Callback.Bench/bin/Release/net10.0/Callback.Bench.dll profile`, {DateTime.UtcNow:``yyyy-MM-dd HH:mm``} UTC, on the `newchannel-hangup` mix, short job. Sampling suspends the runtime at safe points, so frames with GC polls (`Thread.PollGC`, array copies) collect the waits for GC suspensions: read self times as indicative, and the interleaved timings of parser-profile.md as the measure."
            ""
            for name, root in [ "FrameReader", "framesDrain"; "ReceiveMirror", "receiveMirror" ] do
                let file =
                    Directory.GetFiles(artifacts, "*.speedscope.json")
                    |> Array.filter (fun f ->
                        File.GetLastWriteTime f > started && Path.GetFileName(f).Contains $".{name}(")
                    |> Array.sortDescending
                    |> Array.tryHead

                $"## {name}"
                ""

                match file with
                | Some f -> Profile.summarize f root 20
                | None -> "no speedscope file found"

                ""
        ]
        |> String.concat "\n"

    emit args text

let private stream (args: string list) =
    let get name = fst (take name args)

    let int name fallback =
        get name |> Option.map Int32.Parse |> Option.defaultValue fallback

    match get "--client", get "--port" with
    | Some client, Some port ->
        StreamClients.run {
            Client = client
            Port = Int32.Parse port
            Pings = int "--pings" 0
            Warmup = int "--warmup" 0
        }
    | _ -> usage ()

/// The call fold, round after round (the first, untimed, warms the JIT up).
let private fold (args: string list) =
    let number name fallback =
        fst (take name args) |> Option.map float |> Option.defaultValue fallback

    let corpus, foldOne =
        match fst (take "--live" args) with
        | None -> FoldBenchmark.load (), FoldBenchmark.foldOnce
        | Some live ->
            let set = FoldBenchmark.workingSet (int live)
            FoldBenchmark.load () |> List.filter FoldBenchmark.routable, FoldBenchmark.foldRouted set

    FoldBenchmark.verify corpus
    let seconds = TimeSpan.FromSeconds(number "--seconds" 1.0)
    FoldBenchmark.roundWith foldOne corpus seconds |> ignore

    let rounds = [
        for _ in 1 .. int (number "--rounds" 10.0) -> FoldBenchmark.roundWith foldOne corpus seconds
    ]

    let command =
        "dotnet bench/Callback.Bench/bin/Release/net10.0/Callback.Bench.dll fold "
        + String.concat " " (snd (take "--out" args))

    emit args (Report.fold (command.TrimEnd()) corpus rounds)

/// Event → SSE frame and → GET latency against the published sidecar, one phase per storm rate.
let private status (args: string list) =
    let get name = fst (take name args)

    let count name fallback =
        get name |> Option.map Int32.Parse |> Option.defaultValue fallback

    match get "--sidecar" with
    | None -> usage ()
    | Some sidecar ->
        let options: StatusBench.Options = {
            Sidecar = sidecar
            Rates =
                get "--rates"
                |> Option.defaultValue "0,1000,20000"
                |> fun r -> r.Split ',' |> Seq.map float |> List.ofSeq
            Calls = count "--calls" 40
            Warmup = count "--warmup" 5
        }

        let work = get "--work" |> Option.defaultValue (Path.GetTempPath())
        let phases, logins = StatusBench.run options work

        // The command as run, without this machine's directories: the sidecar by its build's folder and name.
        let shown = snd (take "--work" (snd (take "--out" (snd (take "--sidecar" args)))))

        let build = Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath sidecar))

        let command =
            $"dotnet bench/Callback.Bench/bin/Release/net10.0/Callback.Bench.dll status --sidecar …/{build}/{Path.GetFileName sidecar} "
            + String.concat " " shown

        emit args (Report.status (command.TrimEnd()) options phases logins)

/// `POST /callback` with the durable write as shipped, with synchronous=NORMAL and without it, interleaved.
let private durable (args: string list) =
    let count name fallback =
        fst (take name args) |> Option.map Int32.Parse |> Option.defaultValue fallback

    let requests, warmup = count "--requests" 500, count "--warmup" 50
    let samples, fsyncs = DurableBench.run requests warmup

    let command =
        "dotnet bench/Callback.Bench/bin/Release/net10.0/Callback.Bench.dll durable "
        + String.concat " " (snd (take "--out" args))

    emit args (Report.durable (command.TrimEnd()) samples fsyncs warmup)

[<EntryPoint>]
let main argv =
    match List.ofArray argv with
    | "parser" :: rest -> parser rest
    | [ "verify" ] ->
        ParserBenchmarks.verify ()
        printfn "every reader counted every message"
        0
    | "compare" :: rest ->
        let rounds =
            fst (take "--rounds" rest) |> Option.map Int32.Parse |> Option.defaultValue 30

        ParserBenchmarks.verify ()
        let text = ParserBenchmarks.compare rounds

        emit rest text
    | "profile" :: rest -> profile rest
    | "ping" :: rest ->
        let pings =
            fst (take "--pings" rest) |> Option.map Int32.Parse |> Option.defaultValue 5000

        let table = (PingCompare.run pings 500).GetAwaiter().GetResult()

        let load = Readers.loadAverage ()

        let text =
            [
                "# A Ping round trip, layer by layer"
                ""
                $"Generated by `dotnet bench/Callback.Bench/bin/Release/net10.0/Callback.Bench.dll ping --pings {pings}`, {DateTime.UtcNow:``yyyy-MM-dd HH:mm``} UTC, load average {load} on {Environment.ProcessorCount} cores. One in-process AMI responder on 127.0.0.1 answers every action with a Pong; the clients below take turns ping by ping (after 500 untimed rounds), so the thread pool's state is the same for all of them. Each row adds one layer to the row above it; the difference between rows is that layer's cost. The responder shares the process, so absolute times include its own wake-ups."
                ""
                table
                ""
            ]
            |> String.concat "\n"

        emit rest text
    | "stream" :: rest -> stream rest
    | "fold" :: rest -> fold rest
    | "status" :: rest -> status rest
    | "durable" :: rest -> durable rest
    | "report" :: rest ->
        match fst (take "--work" rest), fst (take "--out" rest) with
        | Some work, Some out ->
            let text = Report.stream work
            write out text
            printfn "%s" text
            0
        | _ -> usage ()
    | _ -> usage ()
