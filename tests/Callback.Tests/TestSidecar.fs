/// The sidecar under test, in process: the real app on ASP.NET Core's test server.
module Callback.Tests.TestSidecar

open System
open System.Collections.Concurrent
open System.Collections.Generic
open System.IO
open System.Net
open System.Net.Http
open System.Text
open System.Text.Json
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.TestHost
open Microsoft.Extensions.Configuration
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging

/// Every log line the app writes, to check what it does and does not say.
type CapturedLog() =
    let lines = ConcurrentQueue<string>()
    member _.Lines = List.ofSeq lines

    interface ILoggerProvider with
        member _.CreateLogger category = {
            new ILogger with
                member _.BeginScope _ = null
                member _.IsEnabled _ = true

                member _.Log(level, _, state, error, format) =
                    lines.Enqueue($"{level} {category}: {format.Invoke(state, error)} {error}")
        }

        member _.Dispose() = ()

/// The real sidecar app on ASP.NET Core's test server, with these configuration keys (`Ami:Host`, …)
/// and its log captured; `services` registers what a test replaces before the app's own (the app adds
/// its replaceable services with TryAdd).
type Sidecar(configuration: (string * string) list, services: IServiceCollection -> unit) =
    let log = new CapturedLog()

    /// Each sidecar keeps its calls in a directory of its own unless the test chooses one.
    let dataPath =
        if configuration |> List.exists (fst >> (=) "Data:Path") then
            []
        else
            [ "Data:Path", Directory.CreateTempSubdirectory("callback-data-").FullName ]

    let settings = configuration @ dataPath |> List.map KeyValuePair

    let app =
        Callback.Program.createApp [||] (fun builder ->
            builder.WebHost.UseTestServer() |> ignore
            builder.Configuration.AddInMemoryCollection settings |> ignore
            builder.Logging.ClearProviders().AddProvider log |> ignore
            services builder.Services)
        |> Result.defaultWith (failwithf "app did not start: %A")

    do app.StartAsync().Wait()
    let client = app.GetTestClient()

    new(configuration) = new Sidecar(configuration, ignore)

    member _.Client = client
    member _.Log = log.Lines
    /// The app itself, to stop it mid-call or to reach its test server.
    member _.App = app

    member _.Post(content: HttpContent) =
        let response = client.PostAsync("/callback", content).Result
        let body = response.Content.ReadAsStringAsync().Result
        response.StatusCode, body

    interface IDisposable with
        member _.Dispose() =
            client.Dispose()
            app.DisposeAsync().AsTask().Wait()


let form (fields: (string * string) list) =
    new FormUrlEncodedContent(fields |> List.map KeyValuePair) :> HttpContent

let jsonBody (text: string) =
    new StringContent(text, Encoding.UTF8, "application/json") :> HttpContent

/// A body of unknown length, sent chunked: read from a one-way stream (no Content-Length).
let chunkedBody (bytes: byte[]) =
    let pipe = System.IO.Pipelines.Pipe()
    pipe.Writer.WriteAsync(ReadOnlyMemory bytes).AsTask().Wait()
    pipe.Writer.Complete()
    new StreamContent(pipe.Reader.AsStream()) :> HttpContent

let stages (body: string) =
    use doc = JsonDocument.Parse body
    let root = doc.RootElement

    [ "socket"; "amiLogin"; "amiOrig"; "amiLogoff"; "callSpooled" ]
    |> List.map (fun name -> root.GetProperty(name).GetBoolean())

let errorFields (body: string) =
    use doc = JsonDocument.Parse body

    [
        for e in doc.RootElement.GetProperty("errors").EnumerateArray() -> e.GetProperty("field").GetString()
    ]

let hasProperty (name: string) (body: string) =
    use doc = JsonDocument.Parse body
    fst (doc.RootElement.TryGetProperty name)

/// The settings of a sidecar for the fake AMI server on `port`, trusting the test CA; `extra` adds settings
/// or replaces these.
let fakeAmiConfig (extra: (string * string) list) (port: int) =
    let defaults = [
        "Ami:Host", "127.0.0.1"
        "Ami:Port", string port
        "Ami:UseTls", "true"
        "Ami:CaCertificate", FakeAmi.pki.Value.WriteCaPem()
        "Ami:Username", "callback"
        "Ami:Secret", "s3cret-Value"
        "Ami:ResponseTimeout", "2000"
        "Originate:Channel", "PJSIP/{number}@trunk"
    ]

    extra
    @ (defaults
       |> List.filter (fun (key, _) -> not (List.exists (fst >> (=) key) extra)))

/// What a request through the test server got back: status, headers, body.
type Answer = {
    Status: int
    Headers: IHeaderDictionary
    Body: string
}

/// `POST /callback` with the form `fields`, arriving from `remote` (the TCP peer's address) with `headers`:
/// how the sidecar sees a request that a proxy forwards.
let postFrom (sidecar: Sidecar) (remote: IPAddress) (headers: (string * string) list) (fields: (string * string) list) =
    let body =
        (new FormUrlEncodedContent(fields |> List.map KeyValuePair)).ReadAsByteArrayAsync().Result

    let ctx =
        sidecar.App
            .GetTestServer()
            .SendAsync(fun c ->
                c.Request.Method <- "POST"
                c.Request.Path <- PathString "/callback"
                c.Request.ContentType <- "application/x-www-form-urlencoded"
                c.Request.ContentLength <- int64 body.Length
                c.Request.Body <- new MemoryStream(body)

                for name, value in headers do
                    c.Request.Headers[name] <- Microsoft.Extensions.Primitives.StringValues value

                c.Connection.RemoteIpAddress <- remote)
            .Result

    use reader = new StreamReader(ctx.Response.Body)

    {
        Status = ctx.Response.StatusCode
        Headers = ctx.Response.Headers
        Body = reader.ReadToEnd()
    }
