/// Latency samples, percentiles and a bounded load loop.
module Bench.Stats

open System
open System.Diagnostics
open System.Threading
open System.Threading.Tasks

/// Nearest-rank percentile (p in 0..100) of an already sorted array.
let percentile (sorted: float[]) (p: float) =
    if sorted.Length = 0 then
        nan
    else
        let rank = int (ceil (p / 100.0 * float sorted.Length))
        sorted[max 0 (min (sorted.Length - 1) (rank - 1))]

type Summary = {
    Ok: int
    Failed: int
    P50: float
    P90: float
    P99: float
    Mean: float
    Min: float
    Max: float
    /// Calls per second over the wall time of the chunks that produced the samples.
    Rate: float
}

let summarize (latenciesMs: float seq) (failed: int) (wallSeconds: float) =
    let sorted = latenciesMs |> Seq.toArray |> Array.sort

    {
        Ok = sorted.Length
        Failed = failed
        P50 = percentile sorted 50.0
        P90 = percentile sorted 90.0
        P99 = percentile sorted 99.0
        Mean = (if sorted.Length = 0 then nan else Array.average sorted)
        Min = (if sorted.Length = 0 then nan else sorted[0])
        Max = (if sorted.Length = 0 then nan else sorted[sorted.Length - 1])
        Rate =
            (if wallSeconds > 0.0 then
                 float (sorted.Length + failed) / wallSeconds
             else
                 nan)
    }

/// What one chunk of calls produced.
type ChunkResult = {
    Latencies: float list
    /// Failure reasons, in arrival order.
    Failures: string list
    WallSeconds: float
    /// Calls never started because the chunk's deadline passed.
    Skipped: int
}

let elapsedMs (start: int64) =
    float (Stopwatch.GetTimestamp() - start) * 1000.0 / float Stopwatch.Frequency

/// Runs `count` calls, at most `concurrency` at a time; call i gets index `firstIndex + i`.
/// No call is started after `deadline`; each call is bounded by its own timeout inside `call`.
let runChunk
    (concurrency: int)
    (count: int)
    (firstIndex: int)
    (deadline: DateTime)
    (call: int -> Task<Result<unit, string>>)
    : Task<ChunkResult> =
    task {
        let latencies = Collections.Concurrent.ConcurrentBag<float>()
        let failures = Collections.Concurrent.ConcurrentQueue<string>()
        let mutable next = -1
        let mutable skipped = 0
        let start = Stopwatch.GetTimestamp()

        let worker () =
            task {
                let mutable running = true

                while running do
                    let i = Interlocked.Increment &next

                    if i >= count then
                        running <- false
                    elif DateTime.UtcNow > deadline then
                        Interlocked.Increment &skipped |> ignore
                    else
                        let t0 = Stopwatch.GetTimestamp()

                        let! result =
                            task {
                                try
                                    return! call (firstIndex + i)
                                with e ->
                                    return Error(e.GetType().Name + ": " + e.Message)
                            }

                        let ms = elapsedMs t0

                        match result with
                        | Ok() -> latencies.Add ms
                        | Error reason -> failures.Enqueue reason
            }

        let workers =
            Array.init (max 1 concurrency) (fun _ -> Task.Run<unit>(fun () -> worker ()))

        let! _ = Task.WhenAll workers

        return {
            Latencies = List.ofSeq latencies
            Failures = List.ofSeq failures
            WallSeconds = elapsedMs start / 1000.0
            Skipped = skipped
        }
    }
