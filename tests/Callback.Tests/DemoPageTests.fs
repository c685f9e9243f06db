/// The demo page's Content-Security-Policy (Http/DemoPage.fs); that the page works under it is proven in
/// Chromium (BrowserTests: no console error, the call followed live).
module Callback.Tests.DemoPageTests

open System.Net
open System.Security.Cryptography
open System.Text
open System.Text.RegularExpressions
open Expecto
open Callback.Http
open Callback.Tests.Loopback
open Callback.Tests.TestSidecar

/// The policy's directives by name.
let private directives (policy: string) =
    policy.Split(';')
    |> Array.map (fun d -> d.Trim().Split(' ') |> List.ofArray)
    |> Array.map (fun d -> List.head d, List.tail d)
    |> Map.ofArray

let private sha256 (text: string) =
    "'sha256-"
    + System.Convert.ToBase64String(SHA256.HashData(Encoding.UTF8.GetBytes text))
    + "'"

[<Tests>]
let tests =
    testList "Content-Security-Policy of the demo page" [
        test "the policy lets each inline script and style run by its SHA-256, and nothing else" {
            let html =
                "<style>a{}</style><p>x</p><script>one()</script>\n<script>two()</script>"

            let policy = directives (DemoPage.policy html)

            // Known values (sha256 of "one()", "two()", "a{}"): a hash over the tags, or of other bytes, fails.
            Expect.equal
                policy["script-src"]
                [
                    "'sha256-HR7iaask9daLMRRskMI++QeJtjWDOjyPA6lGzYGzKW4='"
                    "'sha256-iMrPAWirDC2X0OhZzLsM2MRIWSmepJGI4r7D8ZlwBOw='"
                ]
                "both scripts, by hash, and no 'unsafe-inline'"

            Expect.equal policy["style-src"] [ "'sha256-X1RutGBrXCt9KkSaXMK7tHftWiRscFHOhxsS8tv8hBk='" ] "the style"
            Expect.equal policy["default-src"] [ "'none'" ] "nothing else by default"
            Expect.equal policy["connect-src"] [ "'self'" ] "fetch and EventSource to the sidecar only"
            Expect.equal policy["frame-ancestors"] [ "'none'" ] "not framed"
        }

        test "the page is served with the policy of its own script and style" {
            use sidecar = new Sidecar(fakeAmiConfig [ "Demo:Enabled", "true" ] (freePort ()))
            let response = sidecar.Client.GetAsync("/").Result
            let html = response.Content.ReadAsStringAsync().Result
            Expect.equal response.StatusCode HttpStatusCode.OK "served"

            let policy =
                response.Headers.GetValues "Content-Security-Policy"
                |> Seq.exactlyOne
                |> directives

            let scripts = [
                for m in Regex.Matches(html, "<script>(.*?)</script>", RegexOptions.Singleline) -> m.Groups[1].Value
            ]

            Expect.equal scripts.Length 1 "the page has one inline script"
            Expect.equal policy["script-src"] (scripts |> List.map sha256) "the script the page holds, by hash"
            Expect.equal policy["connect-src"] [ "'self'" ] "its POST and event stream: the same origin"

            Expect.isFalse
                (Regex.IsMatch(html, @"<[^>]*\son[a-z]+\s*=", RegexOptions.IgnoreCase))
                "no inline event handler attributes (they would never run under it)"
        }
    ]
