/// `Callback.Bench durable`: what the durable write costs `POST /callback`. Three sidecars in this process,
/// built by the product's own `createAppWith`, each against FakeAsterisk on its own data directory: the
/// store as shipped (WAL, synchronous=FULL), the same with synchronous=NORMAL, and one whose request store
/// reads but never writes. Requests go to them in turn, one at a time, so machine noise hits all three.
module Callback.Bench.DurableBench

open System
open System.Diagnostics
open System.IO
open System.Net.Http
open System.Net.Sockets
open System.Text
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.Extensions.Configuration
open Callback
open Callback.Calls

/// The request store with every write left out and every read kept: the callback path as it would run
/// without the durable write (nothing is recorded, so nothing is ever found a duplicate either).
type private Unwritten(store: IRequestStore) =
    interface IRequestStore with
        member _.FindDuplicate(numberKey, since, tracked, cancel) =
            store.FindDuplicate(numberKey, since, tracked, cancel)

        member _.Accept(_, _) = Task.FromResult Accepted
        member _.MarkSent(_, _, _, _) = Task.FromResult true
        member _.RecordStages(_, _, _, _) = Task.CompletedTask
        member _.Abandon(_, _, _, _) = Task.FromResult true
        member _.Postpone(_, _, _, _) = Task.FromResult true
        member _.ClaimDue(now, limit, cancel) = store.ClaimDue(now, limit, cancel)
        member _.CountDue(from, until, cancel) = store.CountDue(from, until, cancel)
        member _.NextDue cancel = store.NextDue cancel

        member _.Retry(callId, expected, ended, dueAt, cancel) =
            store.Retry(callId, expected, ended, dueAt, cancel)

        member _.ReleaseClaimed(now, cancel) = store.ReleaseClaimed(now, cancel)

/// One way of writing the request, and its name in the report.
type Variant = {
    Name: string
    Seam: Program.StoreSeam
}

let variants = [
    {
        Name = "as shipped: WAL, synchronous=FULL"
        Seam = Program.StoreSeam.shipped
    }
    {
        Name = "WAL, synchronous=NORMAL"
        Seam = {
            Program.StoreSeam.shipped with
                Synchronous = SqliteSynchronous.Normal
        }
    }
    {
        Name = "no durable write"
        Seam = {
            Program.StoreSeam.shipped with
                Requests = fun store -> Unwritten store :> IRequestStore
        }
    }
]

/// One variant's measured requests, in milliseconds.
type Sample = { Variant: string; Millis: float[] }

let private freePort () =
    use listener = new TcpListener(Net.IPAddress.Loopback, 0)
    listener.Start()
    (listener.LocalEndpoint :?> Net.IPEndPoint).Port

/// A sidecar for `variant` on its own port and data directory, started; its base URL.
let private start (variant: Variant) (amiPort: int) (data: string) =
    let port = freePort ()
    let url = $"http://127.0.0.1:{port}"

    let settings = [
        "Ami:Host", "127.0.0.1"
        "Ami:Port", string amiPort
        "Ami:UseTls", "false"
        "Ami:Username", "callback"
        "Ami:Secret", "bench-secret"
        "Originate:Channel", "PJSIP/{number}@trunk"
        "Data:Path", data
        // Distinct numbers, one after another: the limits have tests of their own.
        "Callback:PerClientPerMinute", "100000"
        "Callback:GlobalPerMinute", "100000"
        "Callback:PerNumberIntervalSeconds", "1"
        "Callback:PerNumberPerDay", "1000"
        "Logging:LogLevel:Default", "Error"
    ]

    let configure (builder: WebApplicationBuilder) =
        builder.Configuration.AddInMemoryCollection(
            settings |> List.map (fun (k, v) -> Collections.Generic.KeyValuePair(k, v))
        )
        |> ignore

        builder.WebHost.UseUrls url |> ignore

    match Program.createAppWith variant.Seam [||] configure with
    | Ok app ->
        app.StartAsync().Wait()
        app, url + "/"
    | Result.Error errors -> failwith (String.concat "; " errors)

/// The `n`th distinct valid number (3,200 before they repeat; each store sees each once per run).
let private number (n: int) =
    let area = [| 514; 438; 450; 613 |][n % 4]
    $"+1 {area} 555 {200 + (n / 4) % 800:D4}"

/// One `POST /callback`, end to end; its time in ms. Anything but a placed call stops the run.
let private post (client: HttpClient) (url: string) (n: int) =
    use body =
        new StringContent($$"""{"phoneNumber":"{{number n}}","language":"EN"}""", Encoding.UTF8, "application/json")

    let started = Stopwatch.GetTimestamp()
    use answer = client.PostAsync(url + "callback", body).Result
    let text = answer.Content.ReadAsStringAsync().Result
    let elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds

    if int answer.StatusCode <> 200 || not (text.Contains "\"callSpooled\":true") then
        failwith $"POST /callback answered {int answer.StatusCode}: {text}"

    elapsed

/// Time of one 4 KiB write plus fsync in `directory` (what a synchronous=FULL commit waits for), `count`
/// times, in ms.
let fsyncs (directory: string) (count: int) =
    let file = Path.Combine(directory, "fsync-probe")

    use stream =
        new FileStream(file, FileMode.Create, FileAccess.Write, FileShare.None, 1, false)

    let page = Array.zeroCreate<byte> 4096

    let times = [|
        for _ in 1..count ->
            let started = Stopwatch.GetTimestamp()
            stream.Write(page, 0, page.Length)
            stream.Flush true
            Stopwatch.GetElapsedTime(started).TotalMilliseconds
    |]

    File.Delete file
    times

/// `warmup` untimed requests to each sidecar, then `requests` timed ones to each, in turn request by
/// request (the order rotated every time); the samples and fsync's own times on the same disk.
let run (requests: int) (warmup: int) =
    if requests + warmup > 3200 then
        failwith "at most 3,200 requests a sidecar: the numbers would repeat (a duplicate is not placed)"

    use server = new FakeAsterisk.Server([||])
    let root = Directory.CreateTempSubdirectory("callback-bench-durable-").FullName

    let apps =
        variants
        |> List.mapi (fun i v -> v, start v server.Port (Path.Combine(root, string i)))

    use client = new HttpClient(Timeout = TimeSpan.FromSeconds 30.0)

    try
        for n in 0 .. warmup - 1 do
            for _, (_, url) in apps do
                post client url n |> ignore

        let times = apps |> List.map (fun _ -> ResizeArray<float>()) |> Array.ofList
        let count = apps.Length

        for n in warmup .. warmup + requests - 1 do
            for k in 0 .. count - 1 do
                let i = (n + k) % count
                let _, (_, url) = apps[i]
                times[i].Add(post client url n)

        let probe = fsyncs root (max 200 (requests / 2))

        let samples = [
            for i, (v, _) in List.indexed apps ->
                {
                    Variant = v.Name
                    Millis = times[i].ToArray()
                }
        ]

        samples, probe
    finally
        for _, (app, _) in apps do
            app.StopAsync().Wait(TimeSpan.FromSeconds 10.0) |> ignore
            (app :> IDisposable).Dispose()

        Directory.Delete(root, true)
