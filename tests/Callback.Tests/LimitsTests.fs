module Callback.Tests.LimitsTests

open System
open System.Net
open System.Threading
open Expecto
open Callback
open Callback.Callbacks
open Callback.Domain
open Callback.Http

let private settings = {
    AllowedOrigins = []
    PerClientPerMinute = 3
    GlobalPerMinute = 5
    PerNumberInterval = TimeSpan.FromMinutes 2.0
    PerNumberPerDay = 5
}

let private number text =
    match PhoneNumber.tryParse text with
    | Ok n -> n
    | Error _ -> failwithf "test number %s refused" text

/// The wait a refusal by `limit` asks for; fails the test for any other decision.
let private retryAfter limit decision =
    match decision with
    | Limited(by, Some after) when by = limit -> after
    | other -> failtestf "expected %O with Retry-After, got %O" limit other

[<Tests>]
let tests =
    testList "Limits" [
        test "a client gets its callbacks of the minute, then waits at most a minute" {
            use limits = new CallbackLimits(settings)
            let decisions = [ for _ in 1..4 -> limits.ForClient "203.0.113.7" ]
            Expect.equal decisions[..2] [ Allowed; Allowed; Allowed ] "three allowed"
            let after = retryAfter PerClient decisions[3]
            Expect.isGreaterThan after TimeSpan.Zero "a wait"
            Expect.isLessThanOrEqual after (TimeSpan.FromMinutes 1.0) "within the window"
        }

        test "clients are limited apart from each other" {
            use limits = new CallbackLimits(settings)

            for _ in 1..3 do
                limits.ForClient "203.0.113.7" |> ignore

            Expect.equal (limits.ForClient "198.51.100.9") Allowed "another client is not limited"
        }

        test "the global ceiling counts calls to every number together" {
            use limits = new CallbackLimits(settings)
            let decisions = [ for i in 1..6 -> limits.ForCall(number $"514555040{i}") ]
            Expect.all decisions[..4] ((=) Allowed) "five calls, one per number"
            retryAfter Ceiling decisions[5] |> ignore
        }

        test "the ceiling is not spent by a call its number's limit refuses" {
            // Mutation caught: asking the ceiling first would let one repeated number use up everyone's minute.
            use limits = new CallbackLimits(settings)
            Expect.equal (limits.ForCall(number "5145550401")) Allowed "first call"

            for _ in 1..10 do
                retryAfter PerNumber (limits.ForCall(number "5145550401")) |> ignore

            let others = [ for i in 4..7 -> limits.ForCall(number $"514555040{i}") ]
            Expect.all others ((=) Allowed) "the other four of the five still pass"
        }

        test "once the ceiling is reached, a number is refused without spending its own call" {
            // Mutation caught: asking the number before peeking at the ceiling spends its call and gives
            // every number asked a window for a day, however many are asked.
            use limits = new CallbackLimits({ settings with GlobalPerMinute = 1 })
            Expect.equal (limits.ForCall(number "5145550401")) Allowed "the minute's one call"
            retryAfter Ceiling (limits.ForCall(number "5145550402")) |> ignore
            Expect.equal (limits.CallsLeft(number "5145550402")) 1L "its call is still there"
            Expect.equal (limits.CallsLeft(number "5145550401")) 0L "the first number's is spent"
        }

        test "one call per number per interval: the next waits about the interval" {
            use limits = new CallbackLimits(settings)
            Expect.equal (limits.ForCall(number "5145550401")) Allowed "first call"
            let after = retryAfter PerNumber (limits.ForCall(number "514 555 0401"))
            // Mutation caught: keying on the text instead of the 11 digits lets the reformatted number through.
            Expect.isGreaterThan after (TimeSpan.FromSeconds 100.0) "about two minutes"
            Expect.isLessThanOrEqual after (TimeSpan.FromMinutes 2.0) "not more"
            Expect.equal (limits.ForCall(number "5145550402")) Allowed "another number is not limited"
        }

        test "a number gets its calls of the day, then waits for the day's end" {
            use limits =
                new CallbackLimits(
                    {
                        settings with
                            PerNumberInterval = TimeSpan.FromMilliseconds 200.0
                            PerNumberPerDay = 2
                    }
                )

            let call () = limits.ForCall(number "5145550401")
            Expect.equal (call ()) Allowed "first"
            Thread.Sleep 800
            Expect.equal (call ()) Allowed "second, after the interval"
            Thread.Sleep 800
            let after = retryAfter PerNumber (call ())
            Expect.isGreaterThan after (TimeSpan.FromHours 23.0) "the rest of the day"
        }

        test "a client is counted by its IPv4 address, an IPv4-mapped IPv6 address as IPv4" {
            Expect.equal (Protection.clientKey (IPAddress.Parse "203.0.113.7")) "203.0.113.7" "IPv4"
            Expect.equal (Protection.clientKey (IPAddress.Parse "::ffff:203.0.113.7")) "203.0.113.7" "mapped"
        }

        test "an IPv6 client is counted by its /64, which one subscriber holds whole" {
            let key (text: string) =
                Protection.clientKey (IPAddress.Parse text)

            Expect.equal (key "2001:db8:1:2:aaaa::1") (key "2001:db8:1:2:bbbb::2") "same /64"
            Expect.notEqual (key "2001:db8:1:2::1") (key "2001:db8:1:3::1") "another /64"
            Expect.equal (key "2001:db8:1:2::1") "2001:db8:1:2::/64" "the prefix"
        }
    ]
