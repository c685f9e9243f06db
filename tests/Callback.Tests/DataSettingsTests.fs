module Callback.Tests.DataSettingsTests

open System
open System.Collections.Generic
open System.IO
open Expecto
open Microsoft.Extensions.Configuration
open Callback

let private configOf (pairs: (string * string) list) =
    ConfigurationBuilder().AddInMemoryCollection(pairs |> List.map KeyValuePair).Build() :> IConfiguration

let private workingDirectory = Path.Combine(Path.GetTempPath(), "callback-work")

let private read pairs =
    DataSettings.read (configOf pairs) workingDirectory

[<Tests>]
let tests =
    testList "DataSettings" [
        // Catches a default that is not under the working directory (or is the image's /data outside it).
        test "without settings the data is in a data folder under the working directory, kept 30 days" {
            Expect.equal
                (read [])
                (Ok {
                    Directory = Path.Combine(workingDirectory, "data")
                    Retention = TimeSpan.FromDays 30.0
                    NumberKey = None
                })
                "defaults"
        }

        test "an absolute Data__Path is kept and a relative one is taken from the working directory" {
            let absolute = Path.Combine(Path.GetTempPath(), "volume")
            Expect.equal (read [ "Data:Path", absolute ] |> Result.map _.Directory) (Ok absolute) "absolute"

            Expect.equal
                (read [ "Data:Path", "state" ] |> Result.map _.Directory)
                (Ok(Path.Combine(workingDirectory, "state")))
                "relative"
        }

        test "Data__RetentionDays is read in days" {
            Expect.equal
                (read [ "Data:RetentionDays", "7" ] |> Result.map _.Retention)
                (Ok(TimeSpan.FromDays 7.0))
                "7 days"
        }

        // Catches a retention of 0 (every final call deleted at once) or a non-number taken as the default.
        test "a retention that is not a whole number of days from 1 to 3650 is refused, naming the variable" {
            for bad in [ "0"; "-1"; "3651"; "thirty"; "1.5" ] do
                match read [ "Data:RetentionDays", bad ] with
                | Ok _ -> failtest $"'{bad}' was accepted"
                | Error messages ->
                    Expect.equal
                        messages
                        [ $"Data__RetentionDays must be a whole number from 1 to 3650 (got '{bad}')." ]
                        bad
        }

        test "a bad path and a bad retention are reported together" {
            match read [ "Data:Path", "a\000b"; "Data:RetentionDays", "0" ] with
            | Ok _ -> failtest "accepted"
            | Error messages -> Expect.equal messages.Length 2 "both problems"
        }
    ]
