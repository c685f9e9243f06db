/// The real local PostgreSQL that postgres/dev/postgres.sh runs (127.0.0.1:5433): started once for the
/// test run, and a database of its own for each test, dropped afterwards.
module Callback.Tests.LocalPostgres

open System
open System.IO
open Npgsql
open Callback.Tests.OnThisMachine
open Callback.Tests.Programs

let private script command =
    run [] (TimeSpan.FromMinutes 5.0) "bash" [ "postgres/dev/postgres.sh"; command ]

/// The server's `initdb` on PATH (the build machines) or in Debian's package directory.
let private serverInstalled () =
    let onPath =
        (Environment.GetEnvironmentVariable "PATH"
         |> Option.ofObj
         |> Option.defaultValue "")
            .Split
            ':'
        |> Array.exists (fun dir -> dir <> "" && File.Exists(Path.Combine(dir, "initdb")))

    onPath
    || Directory.Exists "/usr/lib/postgresql"
       && Directory.GetDirectories "/usr/lib/postgresql"
          |> Array.exists (fun version -> File.Exists(Path.Combine(version, "bin", "initdb")))

/// The server's connection string (to its `callback` database), the server started first if need be:
/// unavailable where there is no server and no root to install Debian's; broken where the script fails.
let server: Lazy<Result<string, Blocker>> =
    lazy
        (if not (OperatingSystem.IsLinux()) then
             Error(Unavailable "the local PostgreSQL needs Linux")
         elif not (serverInstalled ()) && Environment.UserName <> "root" then
             Error(Unavailable "the local PostgreSQL needs Debian's postgresql package (or root, to install it)")
         else
             match script "start" with
             | started when started.Code <> 0 ->
                 Error(Broken $"postgres/dev/postgres.sh start failed:\n{tail 20 started.Output}")
             | _ ->
                 match
                     keyValues (script "env").Output
                     |> List.tryFind (fst >> (=) "Data__ConnectionString")
                 with
                 | Some(_, connection) -> Ok connection
                 | None -> Error(Broken "postgres/dev/postgres.sh env printed no Data__ConnectionString"))

let private admin (server: string) (sql: string) =
    let connection =
        NpgsqlConnectionStringBuilder(server, Database = "postgres", Pooling = false).ConnectionString

    use dataSource = NpgsqlDataSource.Create connection
    use command = dataSource.CreateCommand sql
    command.ExecuteNonQuery() |> ignore

/// A database made for one test (`test_<random hex>`) on `server`; disposing it drops it, ending the
/// sessions left on it (a store the test did not close, a replica it stopped).
type TestDatabase(server: string) =
    let name = $"test_{Guid.NewGuid():N}"
    do admin server $"CREATE DATABASE {name}"

    /// The connection string of this database (the server's, with its name).
    member _.ConnectionString =
        NpgsqlConnectionStringBuilder(server, Database = name).ConnectionString

    interface IDisposable with
        member _.Dispose() =
            admin server $"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
