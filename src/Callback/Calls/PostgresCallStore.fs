namespace Callback.Calls

open System
open System.Net.Sockets
open System.Threading
open System.Threading.Tasks
open Npgsql
open Callback.Domain

/// The PostgreSQL store behind `ICallStore`, for several replicas on one database. Each operation takes a
/// pooled connection of its own from one data source, so the store is safe to share between the monitor
/// and every request; the compare-and-set makes it safe to share between processes too.
type PostgresCallStore private (dataSource: NpgsqlDataSource) =

    /// Live and possibly in Asterisk: a `due` or `claimed` attempt has sent nothing yet.
    let live = "c.state NOT IN ('ended', 'failed') AND c.phase = 'sent'"

    let run (operation: NpgsqlConnection -> Task<'T>) (cancel: CancellationToken) =
        task {
            use! connection = dataSource.OpenConnectionAsync cancel
            return! operation connection
        }

    /// Why the database cannot be used, in words that name the setting but never show its value (the
    /// connection string holds a password): PostgreSQL's own error code and text, or the socket's.
    static member private Describe(e: exn) =
        match e with
        | :? PostgresException as e -> $"PostgreSQL refused: {e.SqlState} {e.MessageText}"
        | :? NpgsqlException as e when (e.InnerException :? SocketException) ->
            $"the server cannot be reached ({e.InnerException.Message})"
        | :? TimeoutException
        | :? NpgsqlException when (e.InnerException :? TimeoutException) -> "the server did not answer in time"
        | e -> e.GetType().Name

    /// Connects to the database and migrates it; a message naming `Data__ConnectionString` (never its
    /// value) when the server cannot be reached, refuses the login, or holds a newer schema.
    static member Open(connectionString: string, cancel: CancellationToken) : Task<Result<PostgresCallStore, string>> =
        task {
            let built =
                try
                    let builder = NpgsqlSlimDataSourceBuilder connectionString
                    // TLS to the server (`SSL Mode=VerifyFull`), which the slim builder leaves out by default.
                    builder.EnableTransportSecurity() |> ignore
                    Ok(builder.Build())
                with _ ->
                    // Not its message: it may quote the value, which holds the password.
                    Result.Error "Data__ConnectionString is not a valid PostgreSQL connection string."

            match built with
            | Result.Error message -> return Result.Error message
            | Ok dataSource ->
                let store = new PostgresCallStore(dataSource)

                try
                    use! connection = dataSource.OpenConnectionAsync cancel

                    match! PostgresSchema.migrate connection cancel with
                    | Ok _ -> return Ok store
                    | Result.Error message ->
                        (store :> IDisposable).Dispose()
                        return Result.Error $"Data__ConnectionString: {message}"
                with
                | :? OperationCanceledException -> return raise (OperationCanceledException cancel)
                | e ->
                    (store :> IDisposable).Dispose()

                    return
                        Result.Error
                            $"Data__ConnectionString: the database cannot be opened ({PostgresCallStore.Describe e})."
        }

    /// Listens for the moves every replica commits: `moved` gets each call id, on the connection's own
    /// reader (it must not block); runs until `cancel` or until the connection fails (then it throws; a
    /// quiet connection is pinged every 30 s),
    /// having called `listening` once the LISTEN is in place.
    member _.ListenForMoves(listening: unit -> unit, moved: CallId -> unit, cancel: CancellationToken) : Task =
        task {
            use! connection = dataSource.OpenConnectionAsync cancel

            connection.Notification.Add(fun e ->
                match CallId.tryParse e.Payload with
                | Some callId -> moved callId
                | None -> ())

            use listen =
                PostgresStore.command connection $"LISTEN {PostgresStore.MovesChannel}" []

            let! _ = listen.ExecuteNonQueryAsync cancel
            listening ()

            while not cancel.IsCancellationRequested do
                let! notified = connection.WaitAsync(TimeSpan.FromSeconds 30.0, cancel)

                // A quiet connection is pinged: one the network dropped silently fails here (within the
                // command timeout) and is listened on again, instead of waiting for ever.
                if not notified then
                    use ping = PostgresStore.command connection "SELECT 1" []
                    let! _ = ping.ExecuteScalarAsync cancel
                    ()
        }

    /// A connection as every operation gets it (the tests read the schema with it).
    member internal _.Connect(cancel: CancellationToken) = dataSource.OpenConnectionAsync cancel

    interface ICallStore with
        member _.Create(call, cancel) =
            run (fun c -> PostgresStore.create c call cancel) cancel

        member _.Save(callId, expected, change, cancel) =
            run (fun c -> PostgresStore.save c callId expected change cancel) cancel

        member _.Find(callId, cancel) =
            run
                (fun c ->
                    task {
                        let! calls =
                            PostgresStore.select
                                c
                                "c.call_id = @id"
                                (fun () -> [ PostgresStore.idParameter (CallId.value callId) ])
                                cancel

                        return List.tryHead calls
                    })
                cancel

        member _.ListLive cancel =
            run (fun c -> PostgresStore.select c live (fun () -> []) cancel) cancel

        member _.Prune(cutoff, cancel) =
            run (fun c -> PostgresStore.prune c cutoff cancel) cancel

    interface IRequestStore with
        member _.FindDuplicate(numberKey, since, tracked, cancel) =
            run (fun c -> PostgresRequests.findDuplicate c numberKey since tracked cancel) cancel

        member _.Accept(request, cancel) =
            run (fun c -> PostgresRequests.accept c request cancel) cancel

        member _.MarkSent(callId, attempt, at, cancel) =
            run (fun c -> PostgresRequests.markSent c callId attempt at cancel) cancel

        member _.RecordStages(callId, stages, original, cancel) =
            run (fun c -> PostgresRequests.recordStages c callId stages original cancel) cancel :> Task

        member _.Abandon(callId, attempt, at, cancel) =
            run (fun c -> PostgresRequests.abandon c callId attempt at cancel) cancel

        member _.Postpone(callId, attempt, dueAt, cancel) =
            run (fun c -> PostgresRequests.postpone c callId attempt dueAt cancel) cancel

        member _.ClaimDue(now, limit, cancel) =
            run
                (fun c ->
                    task {
                        let! claimed = PostgresRequests.claimDue c now limit cancel
                        let placeable, undialable = ClaimedAttempt.split claimed

                        for callId, attempt in undialable do
                            let! _ = PostgresRequests.abandon c callId attempt now cancel
                            ()

                        return placeable
                    })
                cancel

        member _.CountDue(from, until, cancel) =
            run (fun c -> PostgresRequests.countDue c from until cancel) cancel

        member _.NextDue cancel =
            run (fun c -> PostgresRequests.nextDue c cancel) cancel

        member _.Retry(callId, expected, ended, dueAt, cancel) =
            run (fun c -> PostgresRequests.retry c callId expected ended dueAt cancel) cancel

        member _.ReleaseClaimed(now, cancel) =
            run (fun c -> PostgresRequests.releaseClaimed c now cancel) cancel

    /// Closes the pooled connections.
    interface IDisposable with
        member _.Dispose() = dataSource.Dispose()
