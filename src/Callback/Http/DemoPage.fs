/// The demo page (`GET /` with `Demo__Enabled`), served with a Content-Security-Policy under which it can run
/// nothing but its own inline script and style, and talk to nothing but the sidecar it came from.
module Callback.Http.DemoPage

open System
open System.IO
open System.Security.Cryptography
open System.Text
open System.Text.RegularExpressions
open Microsoft.AspNetCore.Http
open Callback

/// `'sha256-…'` of the body of each `<tag>…</tag>` of `html`, as CSP hash sources.
let private hashes (tag: string) (html: string) =
    Regex.Matches(html, $"<{tag}>(.*?)</{tag}>", RegexOptions.Singleline)
    |> Seq.map (fun m ->
        let digest = SHA256.HashData(Encoding.UTF8.GetBytes m.Groups[1].Value)
        $"'sha256-{Convert.ToBase64String digest}'")
    |> String.concat " "

/// The policy for `html`: its inline `<script>` and `<style>` by hash (an edited script runs only with its
/// new hash, and an injected one never), `fetch` and `EventSource` to its own origin only, the `data:`
/// favicon, and no base, frame, plugin or foreign form target.
let policy (html: string) =
    String.concat "; " [
        "default-src 'none'"
        "script-src " + hashes "script" html
        "style-src " + hashes "style" html
        "connect-src 'self'"
        "img-src data:"
        "base-uri 'none'"
        "form-action 'self'"
        "frame-ancestors 'none'"
    ]

/// The page embedded in the program, and its policy: read and hashed once.
let private page =
    lazy
        (use stream = typeof<Settings>.Assembly.GetManifestResourceStream "demo.html"
         use reader = new StreamReader(stream, Encoding.UTF8)
         let html = reader.ReadToEnd()
         Encoding.UTF8.GetBytes html, policy html)

/// `GET /`: the page, with its policy.
let serve: HttpHandler =
    fun next ctx ->
        task {
            let body, csp = page.Value
            ctx.Response.ContentType <- "text/html; charset=utf-8"
            ctx.Response.Headers.ContentSecurityPolicy <- csp
            do! ctx.Response.Body.WriteAsync(body, 0, body.Length)
            return! next ctx
        }
