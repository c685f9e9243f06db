namespace Callback.Calls

open System
open System.IO
open System.Threading
open System.Threading.Tasks
open Microsoft.Data.Sqlite
open Callback.Domain

/// SQLite's `synchronous` for the store's connections. `Full` is what the product ships: in WAL mode each
/// commit is fsynced, so an accepted request survives a power cut. `Normal` (fsync at checkpoints only) is
/// here for the durable-write benchmark to measure what that fsync costs.
[<RequireQualifiedAccess>]
type SqliteSynchronous =
    | Full
    | Normal

/// The SQLite store behind `ICallStore`. Each operation takes a pooled connection of its own, so the store
/// is safe to share between the monitor and every request; SQLite serialises the writers (a busy database
/// is retried up to the command timeout) and WAL lets readers go on meanwhile.
type SqliteCallStore private (connectionString: string, hook: ISqliteWriteHook option, synchronous: SqliteSynchronous) =

    let pragma =
        match synchronous with
        | SqliteSynchronous.Full -> "PRAGMA synchronous = FULL"
        | SqliteSynchronous.Normal -> "PRAGMA synchronous = NORMAL"

    let connect (cancel: CancellationToken) =
        task {
            let connection = new SqliteConnection(connectionString)
            do! connection.OpenAsync cancel
            // Per connection: synchronous is not stored in the file (journal_mode is).
            use pragma = SqliteStore.command connection pragma []
            let! _ = pragma.ExecuteNonQueryAsync cancel
            return connection
        }

    /// Live and possibly in Asterisk: a `due` or `claimed` attempt has sent nothing yet.
    let live = "c.state NOT IN ('ended', 'failed') AND c.phase = 'sent'"

    let run (operation: SqliteConnection -> Task<'T>) (cancel: CancellationToken) =
        task {
            use! connection = connect cancel
            return! operation connection
        }

    /// Opens (creating it if needed) the database in `directory`, switched to WAL and migrated; a clear
    /// message naming `Data__Path` when the directory is a file, cannot be made, or is not writable. With
    /// `hook`, its schema is made too and it writes inside every Create and Save that moves a call.
    /// `synchronous` is `Full` unless a benchmark asks otherwise.
    static member Open
        (directory: string, cancel: CancellationToken, ?hook: ISqliteWriteHook, ?synchronous: SqliteSynchronous)
        : Task<Result<SqliteCallStore, string>> =
        task {
            match SqliteCallStore.CheckDirectory directory with
            | Result.Error message -> return Result.Error message
            | Ok() ->
                SQLitePCL.Batteries_V2.Init()

                let connectionString =
                    SqliteConnectionStringBuilder(
                        DataSource = Path.Combine(directory, SqliteStore.FileName),
                        Mode = SqliteOpenMode.ReadWriteCreate,
                        Pooling = true
                    )
                        .ToString()

                let store =
                    new SqliteCallStore(connectionString, hook, defaultArg synchronous SqliteSynchronous.Full)

                try
                    use! connection = store.Connect cancel
                    use wal = SqliteStore.command connection "PRAGMA journal_mode = WAL" []
                    let! mode = wal.ExecuteScalarAsync cancel

                    if string mode <> "wal" then
                        return Result.Error $"Data__Path '{directory}': SQLite refused WAL mode (got '{mode}')."
                    else
                        match! SqliteSchema.migrate connection cancel with
                        | Ok() ->
                            match hook with
                            | Some hook ->
                                use schema = SqliteStore.command connection hook.Schema []
                                let! _ = schema.ExecuteNonQueryAsync cancel
                                ()
                            | None -> ()

                            return Ok store
                        | Result.Error message -> return Result.Error $"Data__Path '{directory}': {message}"
                with :? SqliteException as e ->
                    return Result.Error $"Data__Path '{directory}': the database cannot be opened ({e.Message})."
        }

    /// The directory exists (made if missing) and a file can be created in it.
    static member private CheckDirectory(directory: string) =
        if File.Exists directory then
            Result.Error $"Data__Path '{directory}' is a file; it must be a directory (the data volume)."
        else
            try
                Directory.CreateDirectory directory |> ignore
                let probe = Path.Combine(directory, $".write-check-{Guid.NewGuid():N}")
                File.WriteAllBytes(probe, [||])
                File.Delete probe
                Ok()
            with
            | :? UnauthorizedAccessException
            | :? IOException as e -> Result.Error $"Data__Path '{directory}' is not a writable directory ({e.Message})."

    /// A connection as every operation gets it (the tests read its pragmas).
    member internal _.Connect cancel = connect cancel

    interface ICallStore with
        member _.Create(call, cancel) =
            task {
                use! connection = connect cancel
                return! SqliteStore.create hook connection call cancel
            }

        member _.Save(callId, expected, change, cancel) =
            task {
                use! connection = connect cancel
                return! SqliteStore.save hook connection callId expected change cancel
            }

        member _.Find(callId, cancel) =
            task {
                use! connection = connect cancel

                let! calls =
                    SqliteStore.select connection "c.call_id = $id" [ "$id", box (CallId.value callId) ] cancel

                return List.tryHead calls
            }

        member _.ListLive cancel =
            task {
                use! connection = connect cancel
                return! SqliteStore.select connection live [] cancel
            }

        member _.Prune(cutoff, cancel) =
            task {
                use! connection = connect cancel
                return! SqliteStore.prune connection cutoff cancel
            }

    interface IRequestStore with
        member _.FindDuplicate(numberKey, since, tracked, cancel) =
            run (fun c -> SqliteRequests.findDuplicate c numberKey since tracked cancel) cancel

        member _.Accept(request, cancel) =
            run (fun c -> SqliteRequests.accept hook c request cancel) cancel

        member _.MarkSent(callId, attempt, at, cancel) =
            run (fun c -> SqliteRequests.markSent c callId attempt at cancel) cancel

        member _.RecordStages(callId, stages, original, cancel) =
            run (fun c -> SqliteRequests.recordStages c callId stages original cancel) cancel :> Task

        member _.Abandon(callId, attempt, at, cancel) =
            run (fun c -> SqliteRequests.abandon hook c callId attempt at cancel) cancel

        member _.Postpone(callId, attempt, dueAt, cancel) =
            run (fun c -> SqliteRequests.postpone c callId attempt dueAt cancel) cancel

        member _.ClaimDue(now, limit, cancel) =
            run
                (fun c ->
                    task {
                        let! claimed = SqliteRequests.claimDue c now limit cancel
                        let placeable, undialable = ClaimedAttempt.split claimed

                        for callId, attempt in undialable do
                            let! _ = SqliteRequests.abandon hook c callId attempt now cancel
                            ()

                        return placeable
                    })
                cancel

        member _.CountDue(from, until, cancel) =
            run (fun c -> SqliteRequests.countDue c from until cancel) cancel

        member _.NextDue cancel =
            run (fun c -> SqliteRequests.nextDue c cancel) cancel

        member _.Retry(callId, expected, ended, dueAt, cancel) =
            run (fun c -> SqliteRequests.retry hook c callId expected ended dueAt cancel) cancel

        member _.ReleaseClaimed(now, cancel) =
            run (fun c -> SqliteRequests.releaseClaimed c now cancel) cancel

    /// Returns the pooled connections to the file, so it can be moved or deleted (a test's directory).
    interface IDisposable with
        member _.Dispose() =
            use connection = new SqliteConnection(connectionString)
            SqliteConnection.ClearPool connection
