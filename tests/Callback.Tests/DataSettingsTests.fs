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
                    Store = Sqlite(Path.Combine(workingDirectory, "data"))
                    Retention = TimeSpan.FromDays 30.0
                    NumberKey = None
                })
                "defaults"
        }

        test "an absolute Data__Path is kept and a relative one is taken from the working directory" {
            let absolute = Path.Combine(Path.GetTempPath(), "volume")
            Expect.equal (read [ "Data:Path", absolute ] |> Result.map _.Store) (Ok(Sqlite absolute)) "absolute"

            Expect.equal
                (read [ "Data:Path", "state" ] |> Result.map _.Store)
                (Ok(Sqlite(Path.Combine(workingDirectory, "state"))))
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

        test "Data__Provider=postgres with a connection string chooses PostgreSQL, in any case, and ignores Data__Path" {
            let connection =
                "Host=db.internal;Port=5432;Username=callback;Password=s3cret;Database=callback"

            for provider in [ "postgres"; "Postgres"; "POSTGRES" ] do
                Expect.equal
                    (read [
                        "Data:Provider", provider
                        "Data:ConnectionString", connection
                        "Data:NumberKey", String('k', 40)
                        "Data:Path", "/data"
                     ]
                     |> Result.map _.Store)
                    (Ok(Postgres(ConnectionString connection)))
                    provider
        }

        test "Data__Provider=sqlite is the default, said out loud" {
            Expect.equal
                (read [ "Data:Provider", "sqlite" ] |> Result.map _.Store)
                (Ok(Sqlite(Path.Combine(workingDirectory, "data"))))
                "sqlite"
        }

        // Catches a misspelt provider silently taken for SQLite (a second replica would then keep its own
        // calls) and a forgotten Data__Provider beside a connection string (the same, quietly).
        test
            "an unknown provider, postgres without a connection string and a connection string without postgres are refused" {
            let notPostgres =
                "Data__ConnectionString (or Data__ConnectionStringFile) is set but Data__Provider is not postgres: set Data__Provider=postgres, or remove it."

            let cases = [
                [ "Data:Provider", "postgresql" ], "Data__Provider must be sqlite or postgres (got 'postgresql')."
                [ "Data:Provider", "postgres" ],
                "Data__ConnectionString (or Data__ConnectionStringFile) is required with Data__Provider=postgres."
                [ "Data:ConnectionString", "Host=db" ], notPostgres
                [ "Data:Provider", "sqlite"; "Data:ConnectionString", "Host=db" ], notPostgres
                [ "Data:ConnectionStringFile", "/run/secrets/db" ], notPostgres
                [
                    "Data:Provider", "postgres"
                    "Data:ConnectionString", "Host=db"
                    "Data:ConnectionStringFile", "/run/secrets/db"
                ],
                "Set Data__ConnectionString or Data__ConnectionStringFile, not both."
            ]

            for settings, expected in cases do
                Expect.equal (read settings) (Error [ expected ]) expected
        }

        // Catches a connection string echoed in the error: it holds the database password.
        test "a connection string Npgsql cannot read, or without a host, is refused without repeating it" {
            for bad in
                [
                    "Password=s3cret;Port=notaport;Host=db"
                    "Password=s3cret;Bogus=1"
                    "Password=s3cret"
                ] do
                match read [ "Data:Provider", "postgres"; "Data:ConnectionString", bad ] with
                | Ok _ -> failtest "accepted"
                | Error messages ->
                    Expect.equal messages.Length 1 "one problem"
                    Expect.stringContains messages.Head "Data__ConnectionString" "names the setting"
                    Expect.isFalse (messages.Head.Contains "s3cret") "the password is not repeated"
        }

        test "the connection string prints as *** wherever it is formatted" {
            let connection = ConnectionString "Host=db;Password=s3cret"
            Expect.equal (string connection) "***" "ToString"
            Expect.equal $"{connection}" "***" "interpolated"
        }

        test
            "Data__ConnectionStringFile is read, without its trailing line end, and a file that cannot be read is named" {
            let file = Path.GetTempFileName()

            try
                File.WriteAllText(file, "Host=db;Password=s3cret\n")

                Expect.equal
                    (read [
                        "Data:Provider", "postgres"
                        "Data:ConnectionStringFile", file
                        "Data:NumberKey", String('k', 40)
                     ]
                     |> Result.map _.Store)
                    (Ok(Postgres(ConnectionString "Host=db;Password=s3cret")))
                    "read from the file"
            finally
                File.Delete file

            match read [ "Data:Provider", "postgres"; "Data:ConnectionStringFile", file ] with
            | Ok _ -> failtest "a missing file was accepted"
            | Error messages -> Expect.stringContains messages.Head "Data__ConnectionStringFile: cannot read" "named"
        }

        // Catches a start-up line that logs the connection string as given (its password with it).
        test "the store as start-up logs it names the host, port and database, not the password" {
            let store =
                Postgres(ConnectionString "Host=db.internal;Port=6432;Database=calls;Password=s3cret")

            Expect.equal (DataSettings.describe store) "PostgreSQL, database calls on db.internal:6432" "described"
            Expect.equal (DataSettings.describe (Sqlite "/data")) "SQLite in /data" "SQLite"
        }

        // Catches a PostgreSQL store keyed per replica (a key file each): a number called through one
        // replica would be no duplicate on another.
        test "Data__NumberKey is required with Data__Provider=postgres" {
            Expect.equal
                (read [ "Data:Provider", "postgres"; "Data:ConnectionString", "Host=db" ])
                (Error [
                    "Data__NumberKey is required with Data__Provider=postgres: every replica must key the numbers alike."
                ])
                "required"
        }
    ]
