/// Entry point:
///   parser [--quick] [--results FILE] [BenchmarkDotNet options]   in-memory parser benchmarks → parser.md
///   verify                                                       every reader counts every message
///   compare [--rounds N] [--out FILE]                            the readers interleaved in one process
///   stream --client raw|naive|frames|connection|proposed --port P [--pings K] [--warmup W]
///   report --work DIR --out FILE                                 stream.md from bench/stream/run.sh's results
module Callback.Bench.Program

open System
open System.IO
open BenchmarkDotNet.Configs
open BenchmarkDotNet.Filters
open Perfolizer.Horology
open BenchmarkDotNet.Jobs
open BenchmarkDotNet.Running
open BenchmarkDotNet.Toolchains.InProcess.Emit

let private usage () =
    eprintfn "usage: Callback.Bench parser [--quick] [--results FILE] [BenchmarkDotNet options]"
    eprintfn "       Callback.Bench verify"
    eprintfn "       Callback.Bench compare [--rounds N] [--out FILE]"

    eprintfn
        "       Callback.Bench stream --client raw|naive|frames|connection|proposed --port P [--pings K] [--warmup W]"

    eprintfn "       Callback.Bench report --work DIR --out FILE"
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

        match fst (take "--out" rest) with
        | Some out -> write out text
        | None -> ()

        printfn "%s" text
        0
    | "stream" :: rest -> stream rest
    | "report" :: rest ->
        match fst (take "--work" rest), fst (take "--out" rest) with
        | Some work, Some out ->
            let text = Report.stream work
            write out text
            printfn "%s" text
            0
        | _ -> usage ()
    | _ -> usage ()
