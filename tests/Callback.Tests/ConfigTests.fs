module Callback.Tests.ConfigTests

open System
open System.Collections.Generic
open Expecto
open Microsoft.Extensions.Configuration
open Callback
open Callback.Ami

/// Later pairs override earlier ones, as a later configuration source would.
let private configOf (pairs: (string * string) list) =
    let lastWins = pairs |> List.rev |> List.distinctBy fst |> List.map KeyValuePair
    ConfigurationBuilder().AddInMemoryCollection(lastWins).Build() :> IConfiguration

let private minimal = [
    "Ami:Host", "asterisk.example"
    "Ami:Username", "callback"
    "Ami:Secret", "very-secret-1"
    "Originate:Channel", "PJSIP/{number}@trunk"
]

let private errorsOf pairs =
    match Settings.read (configOf pairs) with
    | Ok _ -> failtest "expected configuration errors"
    | Error errors -> errors

[<Tests>]
let tests =
    testList "Settings" [
        test "the four required settings are named by their environment variable" {
            Expect.equal
                (errorsOf [])
                [
                    "Ami__Host is required."
                    "Ami__Username is required."
                    "Ami__Secret is required."
                    "Originate__Channel is required."
                ]
                "all four at once"
        }

        test "defaults: TLS on 5039, 5 s deadlines, callback-{language} at s,1 with a 30 s ring" {
            match Settings.read (configOf minimal) with
            | Error e -> failtestf "%A" e
            | Ok s ->
                Expect.equal s.Ami.Endpoint.Port 5039 "port"
                Expect.equal s.Ami.Endpoint.Transport (Tls None) "TLS with the system's roots"
                Expect.equal s.Ami.Endpoint.ConnectTimeout (TimeSpan.FromSeconds 5.0) "connect"
                Expect.equal s.Ami.ResponseTimeout (TimeSpan.FromSeconds 5.0) "response"
                Expect.equal s.Ami.MaxSessions 8 "sessions at once"
                Expect.equal s.Originate.Context "callback-{language}" "context"
                Expect.equal s.Originate.Exten "s" "exten"
                Expect.equal s.Originate.Priority 1 "priority"
                Expect.equal s.Originate.Timeout (TimeSpan.FromSeconds 30.0) "ring time"
                Expect.isNone s.Originate.CallerId "caller id"
                Expect.isFalse s.DemoEnabled "demo off"
        }

        test "plain TCP only when Ami__UseTls is false" {
            match Settings.read (configOf (("Ami:UseTls", "false") :: minimal)) with
            | Ok s -> Expect.equal s.Ami.Endpoint.Transport PlainTcp "plain"
            | Error e -> failtestf "%A" e
        }

        test "out-of-range numbers and bad flags are each reported" {
            let errors =
                errorsOf (
                    minimal
                    @ [
                        "Ami:Port", "70000"
                        "Ami:UseTls", "maybe"
                        "Ami:ConnectTimeout", "-1"
                        "Originate:Priority", "zero"
                    ]
                )

            Expect.equal errors.Length 4 "four errors"
            Expect.stringStarts errors[0] "Ami__Port" "port named"
        }

        test "a channel without {number} is refused" {
            let errors = errorsOf (minimal @ [ "Originate:Channel", "PJSIP/owner" ])
            Expect.equal errors [ "Originate__Channel must contain {number}, e.g. PJSIP/{number}@trunk." ] "named"
        }

        test "a CR or LF in an Originate setting is refused" {
            let errors =
                errorsOf (minimal @ [ "Originate:Context", "callback\r\nAction: Command" ])

            Expect.equal errors [ "Originate__Context must be a single line." ] "named"
        }

        test "an unreadable CA certificate is named, and no message repeats the secret" {
            let errors =
                errorsOf (minimal @ [ "Ami:CaCertificate", "/nonexistent/ca.pem"; "Ami:Port", "x" ])

            Expect.equal errors.Length 2 "two errors"
            Expect.all errors (fun e -> not (e.Contains "very-secret-1")) "secret never shown"
        }

        test "trusted proxies and networks are read from comma-separated lists, bad items named" {
            match
                Settings.read (
                    configOf (
                        minimal
                        @ [
                            "ForwardedHeaders:KnownProxies", "10.0.0.5, ::1"
                            "ForwardedHeaders:KnownNetworks", "172.16.0.0/12"
                        ]
                    )
                )
            with
            | Error e -> failtestf "%A" e
            | Ok s ->
                Expect.equal (s.Proxy.KnownProxies |> List.map string) [ "10.0.0.5"; "::1" ] "proxies"
                Expect.equal (s.Proxy.KnownNetworks |> List.map string) [ "172.16.0.0/12" ] "networks"

            let errors =
                errorsOf (minimal @ [ "ForwardedHeaders:KnownProxies", "10.0.0.5,proxy.example" ])

            Expect.equal errors [ "ForwardedHeaders__KnownProxies: 'proxy.example' is not valid." ] "named"
        }

        test "the secret prints as stars" {
            Expect.equal (string (Secret "very-secret-1")) "***" "ToString"
            Expect.isFalse ((sprintf "%A" (Secret "very-secret-1")).Contains "very-secret-1") "%A"
        }
    ]

let private settingsOf pairs =
    match Settings.read (configOf (minimal @ pairs)) with
    | Ok s -> s
    | Error e -> failtestf "unexpected errors: %A" e

[<Tests>]
let protection =
    testList "Settings: protection" [
        test "defaults: 5 a minute per client, 20 calls a minute, 1 per number per 2 minutes and 5 a day, 32 queued" {
            let s = settingsOf []
            Expect.equal s.Protection.PerClientPerMinute 5 "per client"
            Expect.equal s.Protection.GlobalPerMinute 20 "global"
            Expect.equal s.Protection.PerNumberInterval (TimeSpan.FromMinutes 2.0) "per number interval"
            Expect.equal s.Protection.PerNumberPerDay 5 "per number per day"
            Expect.isEmpty s.Protection.AllowedOrigins "any origin"
            Expect.equal s.Ami.MaxQueued 32 "queued"
        }

        test "each limit is read from its variable" {
            let s =
                settingsOf [
                    "Callback:PerClientPerMinute", "7"
                    "Callback:GlobalPerMinute", "50"
                    "Callback:PerNumberIntervalSeconds", "600"
                    "Callback:PerNumberPerDay", "2"
                    "Ami:MaxQueued", "0"
                ]

            Expect.equal
                (s.Protection.PerClientPerMinute,
                 s.Protection.GlobalPerMinute,
                 s.Protection.PerNumberInterval,
                 s.Protection.PerNumberPerDay,
                 s.Ami.MaxQueued)
                (7, 50, TimeSpan.FromMinutes 10.0, 2, 0)
                "all five"
        }

        test "allowed origins are a comma-separated list of sites, compared as origins" {
            let s =
                settingsOf [
                    "Callback:AllowedOrigins", "https://Shop.Example.org/ , http://localhost:8080"
                ]

            Expect.equal
                (s.Protection.AllowedOrigins |> List.map string)
                [ "https://shop.example.org"; "http://localhost:8080" ]
                "normalised"
        }

        test "a bad limit or origin stops start-up naming its variable" {
            let errors =
                errorsOf (
                    minimal
                    @ [
                        "Callback:PerClientPerMinute", "0"
                        "Callback:PerNumberPerDay", "many"
                        "Ami:MaxQueued", "-1"
                        "Callback:AllowedOrigins", "shop.example.org"
                    ]
                )

            Expect.equal
                (errors |> List.map (fun e -> e.Substring(0, e.IndexOfAny [| ' '; ':' |])))
                [
                    "Ami__MaxQueued"
                    "Callback__AllowedOrigins"
                    "Callback__PerClientPerMinute"
                    "Callback__PerNumberPerDay"
                ]
                "one message each"
        }
    ]
