/// examples/nginx/callback.conf in Debian's real nginx, in front of the real sidecar process and the real
/// local Asterisk: what the site exposes, and which client address the sidecar believes.
/// Loopback is all of 127.0.0.0/8, so the test's clients connect from 127.0.0.2 … 127.0.0.6 to tell
/// them apart from nginx (127.0.0.1) and from each other (each address has its own rate limits).
module Callback.Tests.NginxTests

open System
open System.Collections.Concurrent
open System.IO
open System.Net
open System.Net.Http
open System.Text.RegularExpressions
open System.Threading
open Expecto
open Callback.Tests.OnThisMachine
open Callback.Tests.Programs
open Callback.Tests.LocalAsterisk
open Callback.Tests.Loopback
open Callback.Tests.TestSidecar

let private seconds (s: float) = TimeSpan.FromSeconds s
let private nginx = "/usr/sbin/nginx"

/// Installs Debian's nginx if it is missing, without letting the package start a system-wide nginx.
let private installNginx () =
    if not (File.Exists nginx) then
        let install =
            run [ "DEBIAN_FRONTEND", "noninteractive" ] (TimeSpan.FromMinutes 5.0) "bash" [
                "-c"
                """made=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made=1
fi
apt-get install -y --no-install-recommends nginx ||
  { apt-get update && apt-get install -y --no-install-recommends nginx; }
rc=$?
if [ $made = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
exit $rc"""
            ]

        if install.Code <> 0 then
            failtestf "installing nginx failed:\n%s" (tail 20 install.Output)

/// The nginx configuration for the test: examples/nginx/callback.conf with only its `listen` and its
/// upstream's address changed, inside an http { } whose logs and temporary files are under `dir`.
let private nginxConfig (dir: string) (port: int) (sidecarPort: int) =
    let example =
        File.ReadAllText(Path.Combine(repoRoot, "examples", "nginx", "callback.conf"))

    let listen = Regex(@"^(\s*)listen\s+[^;]+;", RegexOptions.Multiline)
    let upstream = Regex(@"^(\s*)server 127\.0\.0\.1:8080;", RegexOptions.Multiline)

    if listen.Matches(example).Count <> 1 || upstream.Matches(example).Count <> 1 then
        failtest "examples/nginx/callback.conf no longer has one `listen` and one `server 127.0.0.1:8080;`"

    let server =
        example
        |> fun text -> listen.Replace(text, $"$1listen 127.0.0.1:{port};")
        |> fun text -> upstream.Replace(text, $"$1server 127.0.0.1:{sidecarPort};")

    $"""worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
  log_format test '$remote_addr "$request" $status upstream=$upstream_addr';
  access_log {dir}/access.log test;
  client_body_temp_path {dir}/client_body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
{server}
}}
"""

/// The real sidecar (trusting only 127.0.0.1 as a proxy) and nginx in front of it.
type private Stack = {
    SidecarPort: int
    SidecarLog: ConcurrentQueue<string>
    NginxPort: int
    Dir: string
}

let private stack =
    lazy
        (installNginx ()
         let asterisk = running ()

         let sidecar =
             SidecarProgram.start (
                 sidecarSettings asterisk
                 @ [
                     "ForwardedHeaders__KnownProxies", "127.0.0.1"
                     // The default per-client limit (sidecarSettings raises it for the other tests).
                     "Callback__PerClientPerMinute", "5"
                     "Logging__Console__FormatterOptions__SingleLine", "true"
                     // Every request the sidecar receives is logged, to prove which ones never reach it.
                     "Logging__LogLevel__Microsoft.AspNetCore.Hosting.Diagnostics", "Information"
                 ]
             )

         if not (listening sidecar.Port) then
             failtestf
                 "the sidecar did not listen within 20 s (exited: %b):\n%s"
                 sidecar.Program.Process.HasExited
                 (tail 20 sidecar.Program.Output)

         let dir = Directory.CreateTempSubdirectory("callback-nginx-").FullName
         // nginx's workers drop root (to nobody) and must reach their temporary files.
         File.SetUnixFileMode(
             dir,
             UnixFileMode.UserRead
             ||| UnixFileMode.UserWrite
             ||| UnixFileMode.UserExecute
             ||| UnixFileMode.GroupRead
             ||| UnixFileMode.GroupExecute
             ||| UnixFileMode.OtherRead
             ||| UnixFileMode.OtherExecute
         )

         let port = freePort ()
         File.WriteAllText(Path.Combine(dir, "nginx.conf"), nginxConfig dir port sidecar.Port)

         let proxy =
             launch [] nginx [
                 "-p"
                 dir + "/"
                 "-e"
                 dir + "/error.log"
                 "-c"
                 dir + "/nginx.conf"
                 "-g"
                 "daemon off;"
             ]

         if not (listening port) then
             failtestf
                 "nginx did not listen within 20 s (exited: %b):\n%s"
                 proxy.Process.HasExited
                 (tail 20 proxy.Output)

         // After nginx's own stop (handlers run in the order they were added).
         AppDomain.CurrentDomain.ProcessExit.Add(fun _ ->
             try
                 Directory.Delete(dir, true)
             with _ ->
                 ())

         {
             SidecarPort = sidecar.Port
             SidecarLog = sidecar.Program.Lines
             NginxPort = port
             Dir = dir
         })

/// POSTs a callback for `number` from `local` to `port`, with `X-Forwarded-For` if given; status and body.
let private callback (local: string) port (number: string) (forwardedFor: string option) =
    use client = clientFrom local

    use request =
        new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{port}/callback")

    request.Content <- form [ "phoneNumber", number; "language", "en" ]

    forwardedFor
    |> Option.iter (fun ip -> request.Headers.Add("X-Forwarded-For", ip))

    use response = client.Send request
    response.StatusCode, response.Content.ReadAsStringAsync().Result

/// The client address the sidecar logged for the callback to `digits` (masked as `1514*****NN`).
let private loggedClient (stack: Stack) (digits: string) =
    let line =
        Regex($@"to {digits.Substring(0, 4)}\*{{5}}{digits.Substring 9} \(en\) for (\S+)")

    let mutable client = None

    eventually (seconds 5.0) (fun () ->
        client <-
            stack.SidecarLog
            |> Seq.tryPick (fun l -> let m = line.Match l in if m.Success then Some m.Groups[1].Value else None)

        client.IsSome)
    |> ignore

    client
    |> Option.defaultWith (fun () ->
        failtestf
            "no callback line for %s in the sidecar's log:\n%s"
            digits
            (tail 20 (String.concat "\n" stack.SidecarLog)))

/// A callback for the test number `n` posted through nginx from `local` (a real call in the local Asterisk);
/// the callId it answered.
let private placedThroughNginx (stack: Stack) (local: string) (n: int) =
    let status, body =
        callback local stack.NginxPort (TestNumbers.distinct n).Typed None

    Expect.equal status HttpStatusCode.OK $"placed: {body}"
    Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("callId").GetString()

let private nginxTest =
    onThisMachine "nginx" (lazy (rootOnLinux "installing nginx and running the real Asterisk"))

[<Tests>]
let tests =
    // With the other lists that use the local Asterisk, one at a time: some of them stop and restart it.
    testSequencedGroup "the local Asterisk"
    <| testList "nginx" [
        nginxTest "a callback through nginx answers 200 with five true booleans and reaches Asterisk" (fun () ->
            let asterisk = running ()
            let offset = logLength asterisk

            let status, body =
                callback "127.0.0.2" stack.Value.NginxPort (TestNumbers.distinct 61).Typed None

            Expect.equal status HttpStatusCode.OK $"200: {body}"
            Expect.equal (stages body) [ true; true; true; true; true ] "five true booleans"

            Expect.isTrue
                (awaitCallback asterisk offset "en" (TestNumbers.distinct 61).Digits)
                "Asterisk's log shows callback-en running for the visitor")

        nginxTest
            "through nginx the sidecar logs the visitor's address, not an X-Forwarded-For the visitor sent"
            (fun () ->
                let status, body =
                    callback "127.0.0.2" stack.Value.NginxPort (TestNumbers.distinct 62).Typed (Some "203.0.113.9")

                Expect.equal status HttpStatusCode.OK $"200: {body}"

                Expect.equal
                    (loggedClient stack.Value (TestNumbers.distinct 62).Digits)
                    "127.0.0.2"
                    "the client the sidecar logged")

        nginxTest "straight to the sidecar, X-Forwarded-For from an untrusted address is ignored" (fun () ->
            let status, body =
                callback "127.0.0.3" stack.Value.SidecarPort (TestNumbers.distinct 63).Typed (Some "203.0.113.9")

            Expect.equal status HttpStatusCode.OK $"200: {body}"

            Expect.equal
                (loggedClient stack.Value (TestNumbers.distinct 63).Digits)
                "127.0.0.3"
                "the client the sidecar logged")

        nginxTest "nginx refuses a body over 8 KiB itself (413, in the contract), without asking the sidecar" (fun () ->
            let stack = stack.Value
            let marker = Guid.NewGuid().ToString "N"
            use client = clientFrom "127.0.0.2"

            let big =
                form [
                    "phoneNumber", (TestNumbers.distinct 64).Typed
                    "language", "en"
                    "padding", String('x', 9000)
                ]

            let response =
                client.PostAsync($"http://127.0.0.1:{stack.NginxPort}/callback?{marker}", big).Result

            Expect.equal response.StatusCode HttpStatusCode.RequestEntityTooLarge "413"
            let body = response.Content.ReadAsStringAsync().Result
            Expect.equal (stages body) [ false; false; false; false; false ] "in the contract, not nginx's HTML"
            Expect.equal (errorFields body) [ "body" ] "naming the body"

            let accessLine () =
                File.ReadAllLines(Path.Combine(stack.Dir, "access.log"))
                |> Array.tryFind _.Contains(marker)

            Expect.isTrue (eventually (seconds 5.0) (fun () -> (accessLine ()).IsSome)) "nginx logged the request"
            Expect.stringEnds (accessLine ()).Value " 413 upstream=-" "answered by nginx, no upstream")

        nginxTest
            "nginx exposes nothing else: /healthz, /metrics, /readyz, GET /callback, /admin, /../callback never reach the sidecar"
            (fun () ->
                let stack = stack.Value
                let before = stack.SidecarLog.Count

                // nginx normalises the path before it picks a location; a path above the root is a bad request.
                let expected = [
                    "GET /healthz HTTP/1.1", 404
                    "GET /callback HTTP/1.1", 405
                    "POST /admin HTTP/1.1", 404
                    "GET /../callback HTTP/1.1", 400
                    "POST /callback/../healthz HTTP/1.1", 404
                    "GET / HTTP/1.1", 404
                    "GET /metrics HTTP/1.1", 404
                    "GET /readyz HTTP/1.1", 404
                ]

                let statuses =
                    expected
                    |> List.map (fun (line, _) -> line, rawStatus "127.0.0.2" stack.NginxPort line)

                // A request that does reach the sidecar, after the others: once it is in the log, they would be.
                let marker = Guid.NewGuid().ToString "N"
                use client = clientFrom "127.0.0.2"

                client.PostAsync($"http://127.0.0.1:{stack.NginxPort}/callback?{marker}", form []).Result
                |> ignore

                let since () =
                    stack.SidecarLog |> Seq.skip before |> List.ofSeq

                Expect.isTrue
                    (eventually (seconds 5.0) (fun () -> since () |> List.exists _.Contains(marker)))
                    "the marker request reached the sidecar"

                let reached =
                    since ()
                    |> List.filter (fun l -> l.Contains "Request starting" && not (l.Contains marker))

                let access = File.ReadAllText(Path.Combine(stack.Dir, "access.log"))
                Expect.isEmpty reached $"requests that reached the sidecar (nginx's access log:\n{tail 10 access})"
                Expect.equal statuses expected "nginx's answers")

        nginxTest "nginx's limit_req answers a burst itself, with 429 in the contract and Retry-After" (fun () ->
            let stack = stack.Value
            use client = clientFrom "127.0.0.4"
            let marker = Guid.NewGuid().ToString "N"

            // No fields: whatever reaches the sidecar is a 422 (or its own 429), never a call.
            let answers = [
                for _ in 1..12 ->
                    let r =
                        client.PostAsync($"http://127.0.0.1:{stack.NginxPort}/callback?{marker}", form []).Result

                    int r.StatusCode, string r.Headers.RetryAfter, r.Content.ReadAsStringAsync().Result
            ]

            let byNginx =
                File.ReadAllLines(Path.Combine(stack.Dir, "access.log"))
                |> Array.filter (fun line -> line.Contains marker && line.EndsWith " 429 upstream=-")

            // 1 + a burst of 5 pass nginx at once; the other 6 of the 12 are its own.
            Expect.equal byNginx.Length 6 "six answered by nginx, without the sidecar"
            let status, retryAfter, body = List.last answers
            Expect.equal status 429 "the last is refused"
            Expect.equal retryAfter "60" "with Retry-After"
            Expect.equal (stages body) [ false; false; false; false; false ] "five false booleans"
            Expect.equal (errorFields body) [ "request" ] "and why")

        // Catches compression of the event stream (the client asks for gzip, as browsers do) and buffering
        // anywhere between the sidecar and the client: the frames would arrive together at the stream's end.
        // (`proxy_buffering off` alone is not caught: the sidecar's X-Accel-Buffering: no also turns it off.)
        nginxTest
            "a real call's event stream passes nginx frame by frame, from queued to its end, uncompressed"
            (fun () ->
                let stack = stack.Value
                let callId = placedThroughNginx stack "127.0.0.7" 65
                use client = clientFrom "127.0.0.7"
                let watch = Diagnostics.Stopwatch.StartNew()

                use request =
                    new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{stack.NginxPort}/calls/{callId}/events")

                request.Headers.Add("Accept-Encoding", "gzip")
                use response = client.Send(request, HttpCompletionOption.ResponseHeadersRead)

                Expect.equal response.StatusCode HttpStatusCode.OK "200"
                Expect.equal response.Content.Headers.ContentType.MediaType "text/event-stream" "an event stream"
                Expect.isEmpty response.Content.Headers.ContentEncoding "not compressed"
                use reader = new StreamReader(response.Content.ReadAsStream())

                // Every line with the time it arrived, until the stream ends (the demo call lasts seconds).
                let lines = [
                    let mutable reading = true

                    while reading do
                        let read: Threading.Tasks.Task<string> = reader.ReadLineAsync()

                        if not (read.Wait(seconds 60.0)) || isNull read.Result then
                            reading <- false
                        else
                            yield watch.Elapsed, read.Result
                ]

                let ended = watch.Elapsed

                let shown =
                    lines
                    |> List.map (fun (t, l) -> $"{t.TotalSeconds:F2}s {l}")
                    |> String.concat "\n"

                let ids =
                    lines
                    |> List.choose (fun (t, l) -> if l.StartsWith "id: " then Some(t, l) else None)

                Expect.isNonEmpty ids $"frames:\n{shown}"
                let firstAt, first = ids.Head
                Expect.equal first "id: 1" "the history first"
                Expect.isLessThan firstAt (seconds 2.0) $"the first frame at once:\n{shown}"
                Expect.isGreaterThan (ended - firstAt) (seconds 1.0) $"long before the stream's end:\n{shown}"

                let lastData = lines |> List.map snd |> List.findBack _.StartsWith("data: ")
                Expect.stringContains lastData "\"state\":\"ended\"" $"the last frame is the call's end:\n{shown}")

        // Catches the slots left out of the example (a widget behind nginx would get its 404).
        nginxTest "through nginx GET /slots reaches the sidecar; another method stays in nginx" (fun () ->
            let stack = stack.Value
            use client = clientFrom "127.0.0.9"
            let tomorrow = DateTime.UtcNow.AddDays(1.0).ToString("yyyy-MM-dd")

            use response =
                client.GetAsync($"http://127.0.0.1:{stack.NginxPort}/slots?date={tomorrow}").Result

            let body = response.Content.ReadAsStringAsync().Result
            Expect.equal (int response.StatusCode) 200 $"200: {body}"
            Expect.stringContains body $"\"date\":\"{tomorrow}\"" "the sidecar's slots"
            Expect.equal (rawStatus "127.0.0.9" stack.NginxPort "DELETE /slots HTTP/1.1") 405 "GET only")

        nginxTest
            "through nginx a call's status answers; a path under /calls/ that is no call id stays in nginx"
            (fun () ->
                let stack = stack.Value
                let callId = placedThroughNginx stack "127.0.0.8" 66
                use client = clientFrom "127.0.0.8"

                let status (path: string) =
                    use response = client.GetAsync($"http://127.0.0.1:{stack.NginxPort}{path}").Result
                    int response.StatusCode, response.Content.ReadAsStringAsync().Result

                let code, body = status $"/calls/{callId}"
                Expect.equal code 200 $"200: {body}"
                Expect.stringContains body $"\"callId\":\"{callId}\"" "the call"
                let before = stack.SidecarLog.Count

                Expect.equal (fst (status "/calls/not-a-call-id")) 404 "nginx's 404"
                Expect.equal (fst (status $"/calls/{callId}/other")) 404 "nor another path below a call"

                Expect.equal (rawStatus "127.0.0.8" stack.NginxPort $"DELETE /calls/{callId} HTTP/1.1") 405 "GET only"

                Thread.Sleep 300

                Expect.isEmpty
                    (stack.SidecarLog
                     |> Seq.skip before
                     |> Seq.filter _.Contains("Request starting")
                     |> List.ofSeq)
                    "none reached the sidecar")

        nginxTest
            "behind nginx the sidecar limits each visitor by the address nginx reports: one is limited, another not"
            (fun () ->
                let stack = stack.Value

                let post (visitor: string) =
                    use client = clientFrom visitor

                    let r =
                        client.PostAsync($"http://127.0.0.1:{stack.NginxPort}/callback", form []).Result

                    int r.StatusCode, r.Content.ReadAsStringAsync().Result

                let hammering = [ for _ in 1..6 -> post "127.0.0.5" ]
                // Within nginx's burst; the sidecar allows 5 a minute per visitor, so the sixth is its own 429.
                Expect.equal (List.map fst hammering) [ 422; 422; 422; 422; 422; 429 ] "one visitor hammering"
                Expect.equal (errorFields (snd (List.last hammering))) [ "request" ] "the sidecar's refusal"
                // Mutation caught: counting by the proxy's address (127.0.0.1) would refuse this visitor too.
                Expect.equal (fst (post "127.0.0.6")) 422 "another visitor is not limited")
    ]
