/// CPU profile of the parser: BenchmarkDotNet's EventPipe profiler (CPU sampling) on FrameReader and on
/// Connection.Receive's mechanics, then the time per method below each benchmark's reader, from the
/// speedscope file it writes. Self time = samples whose deepest managed frame is that method.
module Callback.Bench.Profile

open System
open System.Collections.Generic
open System.IO
open System.Text
open System.Text.Json

let private pseudo =
    set [ "CPU_TIME"; "UNMANAGED_CODE_TIME"; "READIED_TIME"; "BLOCKED_TIME" ]

let private shorten (name: string) =
    [
        "System.Private.CoreLib!"
        "system.memory!"
        "Callback!Callback.Ami."
        "Callback.Bench!Callback.Bench."
        "value class "
        "class "
        "System.Buffers."
        "System.IO.Pipelines!System.IO.Pipelines."
        "unsigned int8"
        "System."
    ]
    |> List.fold (fun (n: string) (p: string) -> n.Replace(p, "")) name
    |> fun n -> if n.Length > 110 then n.Substring(0, 110) + "…" else n

/// Self and inclusive CPU time below the first frame whose name contains `root`, as markdown.
let summarize (file: string) (root: string) (top: int) =
    use doc = JsonDocument.Parse(File.ReadAllText file)

    let frames = [|
        for f in doc.RootElement.GetProperty("shared").GetProperty("frames").EnumerateArray() ->
            f.GetProperty("name").GetString()
    |]

    let self = Dictionary<string, float>()
    let inclusive = Dictionary<string, float>()

    let add (d: Dictionary<string, float>) k v =
        d[k] <-
            (match d.TryGetValue k with
             | true, x -> x
             | _ -> 0.0)
            + v

    let mutable total = 0.0

    for profile in doc.RootElement.GetProperty("profiles").EnumerateArray() do
        if profile.GetProperty("type").GetString() = "evented" then
            let stack = List<int>()
            let mutable last = nan

            for e in profile.GetProperty("events").EnumerateArray() do
                let at = e.GetProperty("at").GetDouble()

                if not (Double.IsNaN last) && stack.Count > 0 && at > last then
                    let names = [ for f in stack -> frames[f] ]
                    let leaf = List.last names

                    match names |> List.tryFindIndexBack (fun n -> n.Contains root) with
                    | Some rootAt when leaf = "CPU_TIME" || leaf = "UNMANAGED_CODE_TIME" ->
                        let dt = at - last
                        total <- total + dt
                        let real = names |> List.filter (fun n -> not (pseudo.Contains n))

                        add
                            self
                            (shorten (List.last real)
                             + (if leaf = "UNMANAGED_CODE_TIME" then " [native]" else ""))
                            dt

                        for n in
                            real
                            |> List.skip (max 0 (real.Length - (names.Length - rootAt)))
                            |> List.distinct do
                            add inclusive (shorten n) dt
                    | _ -> ()

                last <- at
                let frame = e.GetProperty("frame").GetInt32()

                if e.GetProperty("type").GetString() = "O" then
                    stack.Add frame
                else
                    match stack.LastIndexOf frame with
                    | -1 -> ()
                    | i -> stack.RemoveRange(i, stack.Count - i)

    let sb = StringBuilder()
    let line (s: string) = sb.AppendLine s |> ignore
    line $"CPU time sampled below `{shorten root}`: {total:N0} ms."
    line ""
    line "| self % | method | | inclusive % | method |"
    line "|---:|---|---|---:|---|"
    let s = self |> Seq.sortByDescending _.Value |> Seq.truncate top |> Array.ofSeq
    let i = inclusive |> Seq.sortByDescending _.Value |> Seq.truncate top |> Array.ofSeq

    for k in 0 .. max s.Length i.Length - 1 do
        let a =
            if k < s.Length then
                $"{100.0 * s[k].Value / total:N1} | `{s[k].Key}`"
            else
                " | "

        let b =
            if k < i.Length then
                $"{100.0 * i[k].Value / total:N1} | `{i[k].Key}`"
            else
                " | "

        line $"| {a} | | {b} |"

    sb.ToString()
