/// What only a real Kestrel shows: raw bytes over TCP to the Release build of the sidecar on a loopback
/// port (the test server never parses HTTP), against a fake Asterisk that counts every byte.
module Callback.Tests.KestrelTests

open System
open System.Diagnostics
open System.Net
open System.Net.Sockets
open System.Text
open Expecto
open Callback.Tests.FakeAmi
open Callback.Tests.Programs
open Callback.Tests.TestSidecar

/// An HTTP/1.1 answer as read off the socket: status, headers as written, body (de-chunked).
type RawAnswer = {
    Status: int
    Headers: string
    Body: string
}

let private dechunk (body: string) =
    let out = StringBuilder()
    let mutable rest = body

    while rest.Length > 0 do
        let eol = rest.IndexOf "\r\n"
        let size = Convert.ToInt32(rest.Substring(0, eol).Split(';').[0], 16)
        out.Append(rest.Substring(eol + 2, size)) |> ignore
        rest <- if size = 0 then "" else rest.Substring(eol + 2 + size + 2)

    string out

/// Sends `request` as it is, then reads until the sidecar closes the connection (at most 30 s).
let exchange (port: int) (request: byte[]) =
    use socket =
        new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)

    socket.Connect(IPEndPoint(IPAddress.Loopback, port))
    socket.ReceiveTimeout <- 30000
    use stream = new NetworkStream(socket, true)
    stream.Write request
    let received = new IO.MemoryStream()
    let buffer = Array.zeroCreate<byte> 65536
    let mutable reading = true

    // Until the sidecar closes; a reset after the answer (Kestrel gives up on a body that never comes)
    // ends the answer too.
    while reading do
        let n =
            try
                stream.Read(buffer, 0, buffer.Length)
            with :? IO.IOException ->
                0

        if n = 0 then
            reading <- false
        else
            received.Write(buffer, 0, n)

    let text = Encoding.Latin1.GetString(received.ToArray())
    let split = text.IndexOf "\r\n\r\n"
    let headers = text.Substring(0, split)
    let body = text.Substring(split + 4)

    {
        Status = int (headers.Split(' ').[1])
        Headers = headers
        Body =
            if headers.Contains "Transfer-Encoding: chunked" then
                dechunk body
            else
                body
    }

/// A POST /callback with these extra header lines and this body, on a connection that then closes.
let post (headerLines: string list) (body: string) =
    Encoding.Latin1.GetBytes(
        "POST /callback HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n"
        + String.concat "" [ for h in headerLines -> h + "\r\n" ]
        + "\r\n"
        + body
    )

let private form = "Content-Type: application/x-www-form-urlencoded"

/// One fake Asterisk and one sidecar program for the whole list.
let private running =
    lazy
        (let server = new Server(script asterisk, Some pki.Value.Server)

         let sidecar =
             SidecarProgram.start [
                 "Ami__Host", "127.0.0.1"
                 "Ami__Port", string server.Port
                 "Ami__CaCertificate", pki.Value.WriteCaPem()
                 "Ami__Username", "callback"
                 "Ami__Secret", "s3cret-Value"
                 "Originate__Channel", "PJSIP/{number}@trunk"
                 // Every raw request comes from one client; the rate limits have tests of their own.
                 "Callback__PerClientPerMinute", "100000"
             ]

         if not (sidecar.AwaitHealthy()) then
             failtestf "the sidecar did not start:\n%s" (tail 20 sidecar.Program.Output)

         server, sidecar)

let private inContract (answer: RawAnswer) =
    Expect.stringContains answer.Headers "Content-Type: application/json" "JSON"
    Expect.equal (stages answer.Body) [ false; false; false; false; false ] "five false booleans"
    Expect.isNonEmpty (errorFields answer.Body) "an error says why"

/// What the sidecar wrote during one test.
type private Since = unit -> string

let private noStackTrace (since: Since) =
    // Kestrel's own log lines may come a moment after the answer.
    Threading.Thread.Sleep 300
    let output = since ()
    Expect.isFalse (output.Contains "   at ") $"no stack trace in the log:\n{tail 20 output}"
    Expect.isFalse (output.Contains "fail:") "nothing logged as a failure"

let private kestrelTest name (check: SidecarProgram.RunningSidecar -> Since -> unit) =
    test name {
        let server, sidecar = running.Value
        let before = sidecar.Program.Lines.Count

        let since () =
            sidecar.Program.Lines |> Seq.skip before |> String.concat "\n"

        check sidecar since
        Expect.equal server.Sessions 0 "no AMI connection"
    }

[<Tests>]
let kestrel =
    testSequenced
    <| testList "Kestrel in front of the contract" [
        kestrelTest
            "a chunk size that overflows answers 400 in the contract, logged without a stack trace"
            (fun s since ->
                let answer =
                    exchange
                        s.Port
                        (post [ form; "Transfer-Encoding: chunked" ] "ffffffffffffffffffff\r\nx\r\n0\r\n\r\n")

                Expect.equal answer.Status 400 "400, not 500"
                inContract answer
                noStackTrace since)

        kestrelTest "a chunk size that is not hex answers 400 in the contract" (fun s since ->
            let answer =
                exchange s.Port (post [ form; "Transfer-Encoding: chunked" ] "zz\r\nx\r\n0\r\n\r\n")

            Expect.equal answer.Status 400 "400"
            inContract answer
            noStackTrace since)

        kestrelTest "a truly chunked body over 8 KiB answers 413 in the contract" (fun s _ ->
            let chunk = "phoneNumber=" + String('1', 9000)

            let answer =
                exchange
                    s.Port
                    (post [ form; "Transfer-Encoding: chunked" ] $"{chunk.Length:x}\r\n{chunk}\r\n0\r\n\r\n")

            Expect.equal answer.Status 413 "413"
            inContract answer)

        kestrelTest "Content-Length: +34 answers 400 (RFC 9110: digits only)" (fun s _ ->
            let body = "phoneNumber=5145550234&language=en"
            let answer = exchange s.Port (post [ form; $"Content-Length: +{body.Length}" ] body)
            Expect.equal answer.Status 400 "400")

        kestrelTest "a body that arrives too slowly is answered 408 in the contract" (fun s since ->
            // Kestrel checks the body's data rate once its grace period (3 s) is over.
            let answer = exchange s.Port (post [ form; "Content-Length: 4000" ] "phoneNumber=5")
            Expect.equal answer.Status 408 "408"
            inContract answer
            noStackTrace since)

        kestrelTest "headers that never end are cut off after the 10 s header timeout, not Kestrel's 30 s" (fun s _ ->
            let watch = Stopwatch.StartNew()

            let answer =
                exchange s.Port (Encoding.ASCII.GetBytes "POST /callback HTTP/1.1\r\nHost: x\r\n")

            Expect.equal answer.Status 408 "408"
            Expect.isLessThan watch.Elapsed.TotalSeconds 20.0 "well before 30 s")

        // What Kestrel answers itself, before any middleware runs: its body cannot be set
        // (aspnet/KestrelHttpServer#2947), so these are Kestrel's own empty answers; nginx in front answers
        // these cases itself. The tests pin that claim of README.
        kestrelTest "a malformed request line gets Kestrel's own 400 with an empty body" (fun s _ ->
            let answer =
                exchange s.Port (Encoding.ASCII.GetBytes "POST /callback HTTP/9\r\nHost: x\r\n\r\n")

            Expect.equal answer.Status 400 "400"
            Expect.equal answer.Body "" "Kestrel's empty body")

        kestrelTest "headers over 32 KiB get Kestrel's own 431 with an empty body" (fun s _ ->
            let big = String('a', 33 * 1024)

            let answer =
                exchange s.Port (post [ form; $"X-Big: {big}"; "Content-Length: 0" ] "")

            Expect.equal answer.Status 431 "431"
            Expect.equal answer.Body "" "Kestrel's empty body")

        kestrelTest "more than 64 headers get Kestrel's own 431" (fun s _ ->
            let many = [ for i in 1..65 -> $"X-H{i}: v" ]
            let answer = exchange s.Port (post ([ form; "Content-Length: 0" ] @ many) "")
            Expect.equal answer.Status 431 "431")

        kestrelTest "a request line over 2 KiB gets Kestrel's own 414" (fun s _ ->
            let path = "/callback?" + String('a', 2100)

            let answer =
                exchange s.Port (Encoding.ASCII.GetBytes $"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")

            Expect.equal answer.Status 414 "414")
    ]

/// The corpus's raw family: whole requests, each with its status and who answers it.
let private rawCorpus =
    let folder =
        IO.Path.Combine(AppContext.BaseDirectory, "fixtures", "bad-inputs", "raw")

    [
        for path in IO.Directory.GetFiles(folder, "*.txt") |> Array.sort do
            for number, line in IO.File.ReadAllLines path |> Array.indexed do
                if line <> "" && not (line.StartsWith "#") then
                    match line.Split('\t') with
                    | [| status; answerer; request |] ->
                        $"{IO.Path.GetFileName path}:{number + 1}",
                        int status,
                        (answerer = "contract"),
                        BadInputTests.unescape request
                    | _ -> failwithf "%s:%d: three TAB-separated columns expected" path (number + 1)
    ]

[<Tests>]
let rawBadInputs =
    testSequenced
    <| testList "Raw bad requests to Kestrel" [
        for source, status, inContractExpected, request in rawCorpus ->
            let firstLine = Encoding.Latin1.GetString(request).Split('\r').[0]

            kestrelTest $"{source} {status} {firstLine}" (fun s since ->
                let answer = exchange s.Port request
                Expect.equal answer.Status status $"status of {source}"

                if inContractExpected then
                    inContract answer
                    noStackTrace since
                else
                    Expect.equal answer.Body "" "Kestrel's own empty body")
    ]

/// Kestrel's options without a socket: limits whose effect takes too long to watch (the keep-alive timeout
/// outlasts a minute), and the Content-Length decoder on its own.
[<Tests>]
let limits =
    testList "Kestrel options" [
        test "an idle connection outlives nginx's upstream keepalive_timeout (60 s), so nginx closes first" {
            let options = Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions()
            Callback.Http.KestrelOptions.configure options
            Expect.isGreaterThan options.Limits.KeepAliveTimeout (TimeSpan.FromSeconds 60.0) "over 60 s"
            Expect.isLessThan options.Limits.KeepAliveTimeout (TimeSpan.FromSeconds 130.0) "under Kestrel's 130 s"
        }

        test "a Content-Length of digits decodes; a sign or anything else is Kestrel's 400" {
            let digits = Callback.Http.ContentLengthDigits()
            Expect.equal (digits.GetString(Encoding.ASCII.GetBytes "34")) "34" "digits"

            for value in [ "+34"; "-1"; "3 4"; "0x22"; "34,34" ] do
                let status =
                    try
                        digits.GetString(Encoding.ASCII.GetBytes value) |> ignore
                        None
                    with :? Microsoft.AspNetCore.Http.BadHttpRequestException as e ->
                        Some e.StatusCode

                Expect.equal status (Some 400) $"{value} is refused with 400"
        }

        test "concurrent connections are capped" {
            let options = Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions()
            Callback.Http.KestrelOptions.configure options
            Expect.isTrue options.Limits.MaxConcurrentConnections.HasValue "a cap"
        }
    ]
