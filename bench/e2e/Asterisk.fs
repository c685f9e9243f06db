/// Asterisk's own view of the load: active channels and calls, read with `asterisk -rx` inside the
/// development root (optional: without a root the benchmark runs, it just cannot report channels).
module Bench.Asterisk

open System
open System.Diagnostics
open System.Threading
open System.Threading.Tasks

type Counts = {
    Channels: int
    Calls: int
    Processed: int
}

/// The output of `asterisk -rx <command>` run in the root, or None when it cannot be run.
let rx (root: string option) (command: string) : string option =
    match root with
    | None -> None
    | Some root ->
        try
            let info =
                ProcessStartInfo(
                    "chroot",
                    [ root; "/usr/sbin/asterisk"; "-rx"; command ],
                    UseShellExecute = false,
                    RedirectStandardOutput = true,
                    RedirectStandardError = true
                )

            use p = Process.Start info
            let err = p.StandardError.ReadToEndAsync()
            let out = p.StandardOutput.ReadToEnd()

            if not (p.WaitForExit 5000) then
                p.Kill()
                None
            else
                err.Wait()
                if p.ExitCode = 0 then Some out else None
        with _ ->
            None

/// The number on the first line of `text` that ends with `suffix` (`12 active channels`) or starts with
/// `prefix` (`System uptime: 12`).
let private numberIn (text: string) (matches: string -> string option) =
    text.Split('\n')
    |> Array.tryPick (fun line ->
        match matches (line.Trim()) with
        | Some digits ->
            match Int32.TryParse(digits.Trim()) with
            | true, n -> Some n
            | _ -> None
        | None -> None)

let private ending (suffix: string) (line: string) =
    if line.EndsWith(suffix, StringComparison.Ordinal) then
        Some(line.Substring(0, line.Length - suffix.Length))
    else
        None

/// `core show channels count`, or None when Asterisk cannot be asked (not running, no root given).
let counts (root: string option) : Counts option =
    rx root "core show channels count"
    |> Option.bind (fun out ->
        match numberIn out (ending "active channels"), numberIn out (ending "active calls") with
        | Some ch, Some calls ->
            Some {
                Channels = ch
                Calls = calls
                Processed = numberIn out (ending "calls processed") |> Option.defaultValue 0
            }
        | _ -> None)

/// Seconds since Asterisk started, or None when it cannot be asked.
let uptime (root: string option) : int option =
    rx root "core show uptime seconds"
    |> Option.bind (fun out ->
        numberIn out (fun line ->
            if line.StartsWith("System uptime:", StringComparison.Ordinal) then
                Some(line.Substring "System uptime:".Length)
            else
                None))

/// Samples the counts every `interval` until stopped; keeps the peak.
type Sampler(root: string option, interval: TimeSpan) =
    let mutable peakChannels = 0
    let mutable peakCalls = 0
    let mutable samples = 0
    let cts = new CancellationTokenSource()

    let loop =
        Task.Run(fun () ->
            task {
                while not cts.IsCancellationRequested do
                    match counts root with
                    | Some c ->
                        samples <- samples + 1
                        peakChannels <- max peakChannels c.Channels
                        peakCalls <- max peakCalls c.Calls
                    | None -> ()

                    try
                        do! Task.Delay(interval, cts.Token)
                    with :? OperationCanceledException ->
                        ()
            }
            :> Task)

    /// Peak (channels, calls) seen since the last reset; None when nothing could be read.
    member _.TakePeak() =
        let result = if samples = 0 then None else Some(peakChannels, peakCalls)

        peakChannels <- 0
        peakCalls <- 0
        samples <- 0
        result

    member _.Stop() =
        cts.Cancel()
        loop.Wait(10000) |> ignore

/// Waits until Asterisk has at most `threshold` active channels, at most `limit`; returns the seconds
/// waited and the channels left. Without a root it just waits `fallback`.
let drain (root: string option) (threshold: int) (limit: TimeSpan) (fallback: TimeSpan) =
    let sw = Stopwatch.StartNew()

    match root with
    | None ->
        Thread.Sleep fallback
        sw.Elapsed.TotalSeconds, None
    | Some _ ->
        let mutable left = counts root

        while (match left with
               | Some c -> c.Channels > threshold
               | None -> false)
              && sw.Elapsed < limit do
            Thread.Sleep 250
            left <- counts root

        sw.Elapsed.TotalSeconds, left |> Option.map (fun c -> c.Channels)

/// The kernel's count of connections dropped because a listening socket's accept queue was full
/// (TcpExt ListenOverflows, all of this network namespace). Asterisk's manager listens with a backlog
/// of 10: when more clients connect at once, the extra SYNs are dropped and retried after 1 s.
let listenOverflows () : int64 option =
    try
        let lines = IO.File.ReadAllLines "/proc/net/netstat"

        lines
        |> Array.pairwise
        |> Array.tryPick (fun (names, values) ->
            if
                names.StartsWith("TcpExt:", StringComparison.Ordinal)
                && values.StartsWith("TcpExt:", StringComparison.Ordinal)
            then
                let n = names.Split ' '
                let v = values.Split ' '

                Array.tryFindIndex ((=) "ListenOverflows") n |> Option.map (fun i -> int64 v[i])
            else
                None)
    with _ ->
        None
