module Callback.Tests.ConfigTests

open System
open System.Collections.Generic
open System.IO
open System.Security.Cryptography
open System.Security.Cryptography.X509Certificates
open Expecto
open Microsoft.Extensions.Configuration
open Callback
open Callback.Ami
open Callback.Domain

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

let private settingsOf pairs =
    match Settings.read (configOf pairs) with
    | Ok s -> s
    | Error e -> failtestf "%A" e

/// A file holding `text`, deleted when the test is done with it.
type private TempFile(text: string) =
    let path = Path.GetTempFileName()
    do File.WriteAllText(path, text)
    member _.Path = path

    interface IDisposable with
        member _.Dispose() = File.Delete path

let private selfSigned (name: string) =
    use key = ECDsa.Create()
    let request = CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256)
    request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays -1.0, DateTimeOffset.UtcNow.AddDays 1.0)

let private withoutSecret = minimal |> List.filter (fst >> (<>) "Ami:Secret")

/// The secret the tests below try to leak: every message must leave it out.
let private secretText = "very-secret-1"

let private neverShowsTheSecret (errors: string list) =
    Expect.isNonEmpty errors "there is an error to read"
    Expect.all errors (fun e -> not (e.Contains secretText)) $"secret never shown: %A{errors}"

[<Tests>]
let tests =
    testList "Settings" [
        test "the four required settings are named by their environment variable" {
            Expect.equal
                (errorsOf [])
                [
                    "Ami__Host is required."
                    "Ami__Username is required."
                    "Ami__Secret (or Ami__SecretFile) is required."
                    "Originate__Channel is required."
                ]
                "all four at once"
        }

        test "defaults: TLS on 5039, 5 s deadlines, callback-{language} at s,1 with a 30 s ring" {
            match Settings.read (configOf minimal) with
            | Error e -> failtestf "%A" e
            | Ok s ->
                Expect.equal s.Ami.Endpoint.Port 5039 "port"
                Expect.equal s.Ami.Endpoint.Transport (Tls []) "TLS with the system's roots"
                Expect.equal s.Ami.Endpoint.ConnectTimeout (TimeSpan.FromSeconds 5.0) "connect"
                Expect.equal s.Ami.ResponseTimeout (TimeSpan.FromSeconds 5.0) "response"
                Expect.equal s.Ami.MaxSessions 8 "sessions at once"
                Expect.equal s.Ami.MaxMessageBytes (1024 * 1024) "1 MiB per AMI message"
                Expect.equal s.Originate.Context "callback-{language}" "context"
                Expect.equal s.Originate.Exten "s" "exten"
                Expect.equal s.Originate.Priority 1 "priority"
                Expect.equal s.Originate.Timeout (TimeSpan.FromSeconds 30.0) "ring time"
                Expect.isNone s.Originate.CallerId "caller id"
                Expect.isFalse s.DemoEnabled "demo off"
        }

        test "Ami__MaxMessageBytes is read, from 64 KiB to 64 MiB" {
            Expect.equal
                (settingsOf (minimal @ [ "Ami:MaxMessageBytes", "4194304" ])).Ami.MaxMessageBytes
                4194304
                "4 MiB"

            for bad in [ "65535"; "67108865"; "1MiB" ] do
                Expect.equal
                    (errorsOf (minimal @ [ "Ami:MaxMessageBytes", bad ]))
                    [
                        $"Ami__MaxMessageBytes must be a whole number from 65536 to 67108864 (got '{bad}')."
                    ]
                    bad
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

        test "an unreadable CA certificate is named" {
            let errors =
                errorsOf (minimal @ [ "Ami:CaCertificate", "/nonexistent/ca.pem"; "Ami:Port", "x" ])

            Expect.equal errors.Length 2 "two errors"
            Expect.stringStarts errors[1] "Ami__CaCertificate" "named"
        }

        // Catches a bundle read with CreateFromPem, which keeps only the first certificate.
        test "every certificate of an Ami__CaCertificate bundle is trusted" {
            use first = selfSigned "old-ca.example"
            use second = selfSigned "new-ca.example"

            use bundle =
                new TempFile(first.ExportCertificatePem() + "\n" + second.ExportCertificatePem())

            match (settingsOf (minimal @ [ "Ami:CaCertificate", bundle.Path ])).Ami.Endpoint.Transport with
            | Tls roots ->
                Expect.equal (roots |> List.map _.Thumbprint) [ first.Thumbprint; second.Thumbprint ] "both roots"
            | other -> failtestf "%A" other
        }

        test "a PEM file without a certificate is refused" {
            use empty = new TempFile("not a certificate\n")
            let errors = errorsOf (minimal @ [ "Ami:CaCertificate", empty.Path ])
            Expect.equal errors.Length 1 "one error"
            Expect.stringStarts errors[0] "Ami__CaCertificate" "named"
        }

        // Each of these once reached the wire: Login or Originate then failed with 502 on every callback.
        test "CR, LF or NUL in Ami__Secret, Ami__Username or Originate__Channel stops start-up, naming it" {
            for bad in [ "\r"; "\n"; "\000"; "\r\nAction: Command" ] do
                for key, variable, value in
                    [
                        "Ami:Secret", "Ami__Secret", secretText + bad
                        "Ami:Username", "Ami__Username", "callback" + bad
                        "Originate:Channel", "Originate__Channel", "PJSIP/{number}@trunk" + bad
                    ] do
                    Expect.equal
                        (errorsOf (minimal @ [ key, value ]))
                        [ $"{variable} must be a single line." ]
                        $"%A{key} %A{bad}"
        }

        test "Ami__SecretFile holds the secret, its trailing line end trimmed" {
            for ending in [ ""; "\n"; "\r\n"; "\n\n" ] do
                use file = new TempFile(secretText + ending)
                let s = settingsOf (withoutSecret @ [ "Ami:SecretFile", file.Path ])
                Expect.equal (s.Ami.Secret.Reveal()) secretText $"%A{ending}"
        }

        test "exactly one of Ami__Secret and Ami__SecretFile" {
            use file = new TempFile(secretText)

            Expect.equal
                (errorsOf (minimal @ [ "Ami:SecretFile", file.Path ]))
                [ "Set Ami__Secret or Ami__SecretFile, not both." ]
                "both"

            Expect.equal (errorsOf withoutSecret) [ "Ami__Secret (or Ami__SecretFile) is required." ] "neither"
        }

        test "an unreadable or empty Ami__SecretFile is named" {
            let missing = errorsOf (withoutSecret @ [ "Ami:SecretFile", "/nonexistent/secret" ])
            Expect.equal missing.Length 1 "one error"
            Expect.stringStarts missing[0] "Ami__SecretFile: cannot read" "named"

            use empty = new TempFile("\n")

            Expect.equal
                (errorsOf (withoutSecret @ [ "Ami:SecretFile", empty.Path ]))
                [ "Ami__SecretFile is empty." ]
                "empty"
        }

        // Catches a message that quotes the value it refuses ("... (got 'very-secret-1\r\n...')").
        test "no message repeats the secret, on every path that reads it" {
            neverShowsTheSecret (errorsOf (minimal @ [ "Ami:Secret", secretText + "\r\nAction: Command" ]))
            neverShowsTheSecret (errorsOf (minimal @ [ "Ami:Secret", secretText + "\000" ]))

            use twoLines = new TempFile(secretText + "\nAction: Command\n")
            neverShowsTheSecret (errorsOf (withoutSecret @ [ "Ami:SecretFile", twoLines.Path ]))

            use file = new TempFile(secretText)
            neverShowsTheSecret (errorsOf (minimal @ [ "Ami:SecretFile", file.Path ]))

        }

        test "the destination policy defaults to fixed-line and mobile numbers in every area code" {
            Expect.equal (settingsOf minimal).Destination DestinationPolicy.defaults "defaults"
        }

        test "Callback__AllowedNumberTypes and the area code lists are read" {
            let s =
                settingsOf (
                    minimal
                    @ [
                        "Callback:AllowedNumberTypes", "fixed_line_or_mobile, TOLL_FREE"
                        "Callback:DeniedAreaCodes", "212,438"
                        "Callback:AllowedAreaCodes", "514"
                    ]
                )

            Expect.equal
                s.Destination.AllowedTypes
                (set [ PhoneNumberType.FIXED_LINE_OR_MOBILE; PhoneNumberType.TOLL_FREE ])
                "types"

            Expect.equal s.Destination.DeniedAreaCodes (set [ "212"; "438" ]) "denied"
            Expect.equal s.Destination.AllowedAreaCodes (set [ "514" ]) "allowed"
        }

        test "unknown number types and malformed area codes stop start-up, each named" {
            Expect.equal
                (errorsOf (
                    minimal
                    @ [
                        "Callback:AllowedNumberTypes", "MOBILE,PREMIUM_RATE,cell"
                        "Callback:DeniedAreaCodes", "21"
                        "Callback:AllowedAreaCodes", "514,1800"
                    ]
                ))
                [
                    "Callback__AllowedNumberTypes: 'PREMIUM_RATE' is not valid."
                    "Callback__AllowedNumberTypes: 'cell' is not valid."
                    "Callback__DeniedAreaCodes: '21' is not valid."
                    "Callback__AllowedAreaCodes: '1800' is not valid."
                ]
                "every bad item"
        }

        test "an area code both denied and allowed stops start-up" {
            Expect.equal
                (errorsOf (
                    minimal
                    @ [ "Callback:DeniedAreaCodes", "514"; "Callback:AllowedAreaCodes", "514,438" ]
                ))
                [ "Callback__DeniedAreaCodes and Callback__AllowedAreaCodes both name 514." ]
                "named"
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

/// The settings read from the minimal configuration plus `pairs`.
let private settingsWith pairs = settingsOf (minimal @ pairs)

[<Tests>]
let protection =
    testList "Settings: protection" [
        test "defaults: 5 a minute per client, 20 calls a minute, 1 per number per 2 minutes and 5 a day, 32 queued" {
            let s = settingsWith []
            Expect.equal s.Protection.PerClientPerMinute 5 "per client"
            Expect.equal s.Protection.GlobalPerMinute 20 "global"
            Expect.equal s.Protection.PerNumberInterval (TimeSpan.FromMinutes 2.0) "per number interval"
            Expect.equal s.Protection.PerNumberPerDay 5 "per number per day"
            Expect.isEmpty s.Protection.AllowedOrigins "any origin"
            Expect.equal s.Ami.MaxQueued 32 "queued"
        }

        test "each limit is read from its variable" {
            let s =
                settingsWith [
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
                settingsWith [
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

        // Catches a monitor started without its own user, or one that silently lacks a secret.
        test "no Monitor__Username means no monitor; with it, Monitor__Secret is required" {
            Expect.isNone (settingsOf minimal).Monitor "no monitor without its user"

            Expect.equal
                (errorsOf (minimal @ [ "Monitor:Username", "callback-monitor" ]))
                [ "Monitor__Secret (or Monitor__SecretFile) is required." ]
                "a monitor user needs its secret"
        }

        // Catches the monitor reusing the Ami__ secret or ignoring Monitor__SecretFile.
        test "the monitor logs in with its own user and Monitor__Secret or Monitor__SecretFile" {
            use file = new TempFile("monitor-secret-2\n")

            let fromFile =
                settingsOf (
                    minimal
                    @ [ "Monitor:Username", "callback-monitor"; "Monitor:SecretFile", file.Path ]
                )

            let direct =
                settingsOf (minimal @ [ "Monitor:Username", "callback-monitor"; "Monitor:Secret", "s3" ])

            Expect.equal (fromFile.Monitor |> Option.map _.Username) (Some "callback-monitor") "its user"
            Expect.equal (fromFile.Monitor |> Option.map _.Secret.Reveal()) (Some "monitor-secret-2") "file"
            Expect.equal (direct.Monitor |> Option.map _.Secret.Reveal()) (Some "s3") "direct"

            Expect.equal
                (errorsOf (
                    minimal
                    @ [
                        "Monitor:Username", "m"
                        "Monitor:Secret", "a"
                        "Monitor:SecretFile", file.Path
                    ]
                ))
                [ "Set Monitor__Secret or Monitor__SecretFile, not both." ]
                "both"
        }
    ]
