module Callback.Tests.ProtectionTests

open System
open System.Diagnostics
open System.Net
open System.Threading
open System.Threading.Tasks
open Expecto
open Callback.Domain
open Callback.Tests.FakeAmi
open Callback.Tests.TestSidecar

let private proxy = IPAddress.Loopback
let private visitor = "203.0.113.7"
let private fields number = [ "phoneNumber", number; "language", "en" ]
let private noStages = [ false; false; false; false; false ]

/// A sidecar with `extra` settings in front of a fake Asterisk, given to `f` with the fake.
let private withSidecar (extra: (string * string) list) (f: Server -> Sidecar -> unit) =
    use server = new Server(script asterisk, Some pki.Value.Server)
    use sidecar = new Sidecar(fakeAmiConfig extra server.Port)
    f server sidecar

/// `POST /callback` for `number`, forwarded by the trusted proxy for `client`.
let private postFor client number (sidecar: Sidecar) =
    postFrom sidecar proxy [ "X-Forwarded-For", client ] (fields number)

let private expectRefused (status: int) (field: string) (answer: Answer) =
    Expect.equal answer.Status status $"{status}"
    Expect.equal (stages answer.Body) noStages "five false booleans"
    Expect.equal (errorFields answer.Body) [ field ] "the error names why"

let private retryAfterSeconds (answer: Answer) =
    match Int32.TryParse(string answer.Headers.RetryAfter) with
    | true, seconds -> seconds
    | _ -> failtestf "no Retry-After in seconds: '%O'" answer.Headers.RetryAfter

[<Tests>]
let rateLimits =
    testList "Protection: rate limits" [
        test "a client over its minute gets 429 with Retry-After and sends nothing to Asterisk" {
            withSidecar [ "Callback:PerClientPerMinute", "2" ] (fun server sidecar ->
                Expect.equal (postFor visitor "5145550401" sidecar).Status 200 "first"
                Expect.equal (postFor visitor "5145550402" sidecar).Status 200 "second"
                let third = postFor visitor "5145550403" sidecar
                expectRefused 429 "request" third
                Expect.isTrue (retryAfterSeconds third >= 1 && retryAfterSeconds third <= 60) "within the minute"
                Expect.equal server.Sessions 2 "the third never reached Asterisk")
        }

        test "the client is the visitor's address as the trusted proxy reports it, not the proxy's" {
            // Mutation caught: counting by the TCP peer (the proxy) would limit the second visitor too.
            withSidecar [ "Callback:PerClientPerMinute", "1" ] (fun _ sidecar ->
                Expect.equal (postFor visitor "5145550401" sidecar).Status 200 "visitor A"
                Expect.equal (postFor visitor "5145550402" sidecar).Status 429 "visitor A again"
                Expect.equal (postFor "198.51.100.9" "5145550403" sidecar).Status 200 "visitor B")
        }

        test "the global ceiling limits every client together, on valid calls only" {
            withSidecar [ "Callback:GlobalPerMinute", "2" ] (fun server sidecar ->
                Expect.equal (postFor "203.0.113.1" "5145550401" sidecar).Status 200 "first client"
                Expect.equal (postFor "203.0.113.2" "5145550402" sidecar).Status 200 "second client"
                let third = postFor "203.0.113.3" "5145550403" sidecar
                expectRefused 429 "request" third
                Expect.isTrue (retryAfterSeconds third >= 1 && retryAfterSeconds third <= 60) "within the minute"
                Expect.equal server.Sessions 2 "two calls")
        }

        test "a number just called gets 429 on phoneNumber, whoever asks, and Asterisk hears nothing" {
            // Without the duplicate window, which would answer with the first call (DurableRequestsTests).
            withSidecar [ "Callback:DuplicateWindow", "00:00:00" ] (fun server sidecar ->
                Expect.equal (postFor "203.0.113.1" "5145550401" sidecar).Status 200 "first call"
                let again = postFor "203.0.113.2" "+1 (514) 555-0401" sidecar
                expectRefused 429 "phoneNumber" again
                Expect.isGreaterThan (retryAfterSeconds again) 100 "about the 2-minute interval"
                Expect.equal server.Sessions 1 "one call")
        }

        test "invalid requests do not use up the global ceiling" {
            // Mutation caught: a ceiling asked before validation would let junk from many addresses block calls.
            withSidecar [ "Callback:GlobalPerMinute", "1" ] (fun _ sidecar ->
                for i in 1..3 do
                    Expect.equal (postFor $"203.0.113.{i}" "911" sidecar).Status 422 "junk"

                Expect.equal (postFor "203.0.113.9" "5145550401" sidecar).Status 200 "the real call")
        }

        test "a destination the policy refuses uses up neither the ceiling nor a call" {
            // Mutation caught: limiting before the destination check would spend the minute's one call.
            withSidecar [ "Callback:GlobalPerMinute", "1" ] (fun _ sidecar ->
                for i in 1..2 do
                    Expect.equal (postFor $"203.0.113.{i}" "5145550123" sidecar).Status 422 "fictional 555-01xx"

                Expect.equal (postFor "203.0.113.9" "5145550401" sidecar).Status 200 "the real call")
        }

        test "an invalid request does not use up the number's call" {
            // Mutation caught: taking the number's permit before validation would refuse the valid retry.
            withSidecar [] (fun _ sidecar ->
                let invalid =
                    postFrom sidecar proxy [] [ "phoneNumber", "5145550401"; "language", "de" ]

                Expect.equal invalid.Status 422 "invalid language"
                Expect.equal (postFor visitor "5145550401" sidecar).Status 200 "the corrected request")
        }
    ]

let private site = "https://shop.example.org"
let private origins = [ "Callback:AllowedOrigins", $"{site}, http://localhost:8080" ]

let private postWith headers (sidecar: Sidecar) =
    postFrom sidecar proxy headers (fields "5145550401")

[<Tests>]
let crossSite =
    testList "Protection: cross-site posting" [
        test "a listed origin passes, whatever the case of its letters" {
            withSidecar origins (fun _ sidecar ->
                Expect.equal (postWith [ "Origin", "HTTPS://Shop.Example.ORG" ] sidecar).Status 200 "listed")
        }

        test "another site's origin gets 403 and sends nothing to Asterisk" {
            withSidecar origins (fun server sidecar ->
                expectRefused 403 "origin" (postWith [ "Origin", "https://evil.example.net" ] sidecar)
                Expect.equal server.Sessions 0 "no AMI connection")
        }

        test "the origin is checked before the body is read" {
            // A body over 8 KiB would get 413 if it were read first.
            withSidecar origins (fun _ sidecar ->
                let answer =
                    postFrom sidecar proxy [ "Origin", "https://evil.example.net" ] [ "padding", String('x', 9000) ]

                Expect.equal answer.Status 403 "refused for its origin")
        }

        test "a listed site's port must match too" {
            withSidecar origins (fun _ sidecar ->
                Expect.equal (postWith [ "Origin", "http://localhost:8080" ] sidecar).Status 200 "listed port"
                Expect.equal (postWith [ "Origin", "http://localhost:8081" ] sidecar).Status 403 "another port")
        }

        test "without Origin, the Referer's site decides" {
            withSidecar origins (fun _ sidecar ->
                Expect.equal (postWith [ "Referer", $"{site}/contact?x=1" ] sidecar).Status 200 "our page"
                Expect.equal (postWith [ "Referer", "https://evil.example.net/" ] sidecar).Status 403 "another site")
        }

        test "Origin wins over Referer" {
            withSidecar origins (fun _ sidecar ->
                let answer =
                    postWith [ "Origin", "https://evil.example.net"; "Referer", $"{site}/" ] sidecar

                Expect.equal answer.Status 403 "the Origin is another site")
        }

        test "the opaque origin null is refused" {
            withSidecar origins (fun _ sidecar ->
                Expect.equal (postWith [ "Origin", "null" ] sidecar).Status 403 "sandboxed or privacy-stripped")
        }

        test "a request with neither Origin nor Referer passes: it is not a browser's cross-site post" {
            withSidecar origins (fun _ sidecar -> Expect.equal (postWith [] sidecar).Status 200 "curl or a server")
        }

        test "without the setting any site may post, and start-up warns about it" {
            withSidecar [] (fun _ sidecar ->
                Expect.equal (postWith [ "Origin", "https://evil.example.net" ] sidecar).Status 200 "open"

                Expect.exists
                    sidecar.Log
                    (fun line -> line.StartsWith "Warning" && line.Contains "Callback__AllowedOrigins")
                    "warned")
        }

        test "with the setting, start-up does not warn about it" {
            withSidecar origins (fun _ sidecar ->
                Expect.all sidecar.Log (fun line -> not (line.Contains "Callback__AllowedOrigins")) "no warning")
        }

        test "an origin is scheme, host and port; user info, path and a default port are not part of it" {
            let origin = SiteOrigin.tryParse >> Option.map string
            Expect.equal (origin "https://Shop.Example.org:443/a/b?c") (Some site) "default port and path dropped"
            Expect.equal (origin "https://user:pw@shop.example.org/") (Some site) "user info dropped"
            Expect.equal (origin "http://localhost:8080") (Some "http://localhost:8080") "other port kept"
            Expect.equal (origin "null") None "opaque"
            Expect.equal (origin "ftp://shop.example.org") None "not a web origin"
            Expect.equal (origin "/relative") None "not absolute"
        }
    ]

/// A fake Asterisk that holds each Originate until `release` is set.
let private holdingOriginate (release: ManualResetEventSlim) =
    asteriskExcept "Originate" (fun action ->
        release.Wait()
        Send(response "Success" action.ActionId "Originate successfully queued"))

[<Tests>]
let busy =
    testList "Protection: bounded waiting" [
        test "past Ami__MaxQueued a callback gets 503 at once and sends nothing to Asterisk" {
            use release = new ManualResetEventSlim()
            use server = new Server(script (holdingOriginate release), Some pki.Value.Server)

            use sidecar =
                new Sidecar(
                    fakeAmiConfig
                        [ "Ami:MaxSessions", "1"; "Ami:MaxQueued", "0"; "Ami:ResponseTimeout", "30000" ]
                        server.Port
                )

            let first = Task.Run(fun () -> postFor "203.0.113.1" "5145550401" sidecar)

            Expect.isTrue
                (Programs.eventually (TimeSpan.FromSeconds 10.0) (fun () ->
                    server.ActionNames |> List.contains "Originate"))
                "first call in its session"

            let watch = Stopwatch.StartNew()
            let second = postFor "203.0.113.2" "5145550402" sidecar
            watch.Stop()
            release.Set()
            expectRefused 503 "request" second
            // Mutation caught: an unbounded queue would wait the 5 s connect timeout before refusing.
            Expect.isLessThan watch.Elapsed (TimeSpan.FromSeconds 2.0) "at once, not after the connect timeout"
            Expect.equal first.Result.Status 200 "the first call completes"
            Expect.equal server.Sessions 1 "the second never connected"
        }
    ]
