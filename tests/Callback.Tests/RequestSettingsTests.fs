module Callback.Tests.RequestSettingsTests

open System
open System.Collections.Generic
open Expecto
open Microsoft.Extensions.Configuration
open Callback

let private read (pairs: (string * string) list) =
    RequestSettings.read (ConfigurationBuilder().AddInMemoryCollection(pairs |> List.map KeyValuePair).Build())

[<Tests>]
let tests =
    testList "RequestSettings" [
        // Catches a default that drifts from README (10 min, 3 attempts, 2 min).
        test "without settings: a 10-minute duplicate window, 3 attempts, 2 minutes apart" {
            Expect.equal (read []) (Ok RequestSettings.defaults) "defaults"
            Expect.equal RequestSettings.defaults.DuplicateWindow (TimeSpan.FromMinutes 10.0) "window"
            Expect.equal RequestSettings.defaults.MaxAttempts 3 "attempts"
            Expect.equal RequestSettings.defaults.RetryDelay (TimeSpan.FromMinutes 2.0) "delay"
        }

        test "durations are hh:mm:ss; a window of zero turns it off" {
            Expect.equal
                (read [
                    "Callback:DuplicateWindow", "00:00:00"
                    "Callback:RetryDelay", "00:05:30"
                    "Callback:MaxAttempts", "1"
                ])
                (Ok {
                    DuplicateWindow = TimeSpan.Zero
                    MaxAttempts = 1
                    RetryDelay = TimeSpan(0, 5, 30)
                })
                "read"
        }

        // Catches a bad value taken as a default instead of stopping start-up, or one problem hiding another.
        test "every bad value is reported at once, naming its variable" {
            match
                read [
                    "Callback:DuplicateWindow", "10 minutes"
                    "Callback:RetryDelay", "00:00:01"
                    "Callback:MaxAttempts", "0"
                ]
            with
            | Ok _ -> failtest "bad values were taken"
            | Error errors ->
                Expect.hasLength errors 3 "three problems"

                for name in [ "Callback__DuplicateWindow"; "Callback__RetryDelay"; "Callback__MaxAttempts" ] do
                    Expect.exists errors (fun e -> e.StartsWith name) name
        }

        test "Data__NumberKey shorter than 32 characters stops start-up" {
            let data (pairs: (string * string) list) =
                DataSettings.read
                    (ConfigurationBuilder().AddInMemoryCollection(pairs |> List.map KeyValuePair).Build())
                    "/srv"

            Expect.isError (data [ "Data:NumberKey", "too-short" ]) "short"

            Expect.equal
                (data [ "Data:NumberKey", String('k', 32) ] |> Result.map _.NumberKey)
                (Ok(Some(String('k', 32))))
                "taken"
        }
    ]
