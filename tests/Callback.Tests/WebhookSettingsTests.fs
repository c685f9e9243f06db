module Callback.Tests.WebhookSettingsTests

open System
open System.Collections.Generic
open Expecto
open Microsoft.Extensions.Configuration
open Callback.Webhooks

let private configOf (pairs: (string * string) list) =
    ConfigurationBuilder().AddInMemoryCollection(pairs |> List.map KeyValuePair).Build() :> IConfiguration

let private read pairs = WebhookSettings.read (configOf pairs)

let private secret = WebhookSecret.generate ()

let private settings pairs =
    match read pairs with
    | Ok(Some settings) -> settings
    | other -> failwith $"expected settings, got {other}"

let private problems pairs =
    match read pairs with
    | Error problems -> problems
    | Ok _ -> failwith "expected problems"

[<Tests>]
let tests =
    testList "Webhook settings" [
        // Catches webhooks switched on (or a secret demanded) without any URL.
        test "without a URL there are no webhooks, and no secret is needed" {
            Expect.equal (read [] |> Result.map Option.isSome) (Ok false) "off"
        }

        // Catches a default timeout or attempt cap that is not the documented one.
        test "one URL and a secret give a 15 s timeout and the schedule's 10 attempts" {
            let s =
                settings [
                    "Webhooks:Url", "https://crm.example.com/hooks?token=abc"
                    "Webhooks:Secret", secret
                ]

            Expect.equal
                (s.Endpoints |> List.map WebhookEndpoint.key)
                [ "https://crm.example.com/hooks?token=abc" ]
                "url"

            Expect.equal s.Timeout (TimeSpan.FromSeconds 15.0) "timeout"
            Expect.equal s.MaxAttempts 10 "attempts"
            Expect.equal s.Secrets.Length 1 "secret"
        }

        // Catches an indexed list read in the wrong order, or only its first entry.
        test "Url__0, Url__1… name several endpoints in their order" {
            let s =
                settings [
                    "Webhooks:Url:1", "http://b.example/x"
                    "Webhooks:Url:0", "https://a.example/x"
                    "Webhooks:Secret", secret
                ]

            Expect.equal
                (s.Endpoints |> List.map WebhookEndpoint.key)
                [ "https://a.example/x"; "http://b.example/x" ]
                "both, in order"
        }

        // Catches both forms silently merged (or one ignored).
        test "Url and Url__0 together are refused" {
            Expect.equal
                (problems [
                    "Webhooks:Url", "https://a.example"
                    "Webhooks:Url:0", "https://b.example"
                    "Webhooks:Secret", secret
                ])
                [ "Set either Webhooks__Url or Webhooks__Url__0, __1…, not both." ]
                "either"
        }

        // Catches a relative URL, another scheme, or credentials in the URL being accepted; and a
        // message that repeats the URL (its query may hold a receiver's token).
        test "a URL that is relative, not http(s), or holds a password is refused without being repeated" {
            let found =
                problems [
                    "Webhooks:Url:0", "hooks/secret-path"
                    "Webhooks:Url:1", "ftp://files.example/secret-path"
                    "Webhooks:Url:2", "https://user:pa55@crm.example/secret-path"
                    "Webhooks:Secret", secret
                ]

            Expect.equal found.Length 3 "one problem per URL"
            Expect.stringStarts found[0] "Webhooks__Url__0 must be an absolute URL" "relative"
            Expect.stringStarts found[1] "Webhooks__Url__1 must be an http or https URL" "scheme"
            Expect.stringStarts found[2] "Webhooks__Url__2 must not hold a user" "user info"

            for problem in found do
                Expect.isFalse (problem.Contains "secret-path" || problem.Contains "pa55") "never the URL"
        }

        // Catches unsigned webhooks: a URL without a secret must stop start-up.
        test "a URL without a secret is refused" {
            Expect.equal
                (problems [ "Webhooks:Url", "https://a.example" ])
                [ "Webhooks__Secret is required when Webhooks__Url is set." ]
                "required"
        }

        // Catches a bad secret accepted, or its text in the message that stops start-up.
        test "a bad secret is refused with a message that never prints it" {
            for bad in
                [
                    "whsec_short"
                    "sk_live_0123456789abcdef0123456789abcdef"
                    "whsec_!!!notbase64!!!"
                ] do
                let found = problems [ "Webhooks:Url", "https://a.example"; "Webhooks:Secret", bad ]
                Expect.equal found.Length 1 bad
                Expect.stringStarts found[0] "Webhooks__Secret must" bad
                Expect.isFalse (found[0].Contains(bad.Substring 6)) "never the secret"
        }

        // Catches a rollover pair read as one secret.
        test "two secrets separated by a space both sign" {
            let s =
                settings [
                    "Webhooks:Url", "https://a.example"
                    "Webhooks:Secret", secret + " " + WebhookSecret.generate ()
                ]

            Expect.equal s.Secrets.Length 2 "two"
        }

        // Catches a bad value checked only once webhooks are on, and a missing bound.
        test "timeout and attempts are bounded, and checked even without a URL" {
            Expect.equal
                (problems [
                    "Webhooks:Timeout", "999"
                    "Webhooks:MaxAttempts", "11"
                    "Webhooks:Secret", "nope"
                ])
                [
                    "Webhooks__Secret must start with whsec_."
                    "Webhooks__Timeout must be a whole number from 1000 to 120000 (got '999')."
                    "Webhooks__MaxAttempts must be a whole number from 1 to 10 (got '11')."
                ]
                "all at once"

            let s =
                settings [
                    "Webhooks:Url", "https://a.example"
                    "Webhooks:Secret", secret
                    "Webhooks:Timeout", "30000"
                    "Webhooks:MaxAttempts", "3"
                ]

            Expect.equal (s.Timeout, s.MaxAttempts) (TimeSpan.FromSeconds 30.0, 3) "read"
        }
    ]
