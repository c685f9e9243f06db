namespace Callback.Webhooks

open System
open System.Security.Cryptography
open System.Threading
open System.Threading.Channels
open System.Threading.Tasks
open Microsoft.Data.Sqlite
open Callback.Calls

/// Tells the delivery loop that rows were written, so it need not wait for its next look. Told inside
/// the writing transaction: the loop's claim is itself a write, so it waits for that transaction's end and
/// then sees the rows (or none, if the write rolled back).
[<Sealed>]
type OutboxSignal() =
    let channel =
        Channel.CreateBounded<unit>(BoundedChannelOptions(1, FullMode = BoundedChannelFullMode.DropWrite))

    member _.Notify() = channel.Writer.TryWrite() |> ignore

    /// Waits for a notification or for `delay` on `time`'s clock, whichever comes first.
    member _.Wait(delay: TimeSpan, time: TimeProvider, cancel: CancellationToken) : Task =
        task {
            use both = CancellationTokenSource.CreateLinkedTokenSource cancel
            let notified = channel.Reader.ReadAsync(both.Token).AsTask()
            let elapsed = Task.Delay(max TimeSpan.Zero delay, time, both.Token)
            let! _ = Task.WhenAny(notified :> Task, elapsed)
            // The other one ends cancelled, unobserved: a cancelled task raises nothing.
            both.Cancel()
        }

/// One delivery to make: a row of the outbox, claimed.
type OutboxRow = {
    /// `webhook-id`: the row's key with its endpoint, the same on every retry.
    Id: MessageId
    Endpoint: string
    Type: string
    Payload: byte array
    /// This delivery's number, 1 for the first.
    Attempt: int
}

/// What became of a claimed row.
type RowResult =
    | Delivered of status: int
    /// Failed this time; tried again at `at`.
    | Retry of at: DateTimeOffset * status: int option
    /// Failed its last allowed attempt.
    | GaveUp of status: int option

/// The transactional outbox (table `webhook_outbox`): a row per event and endpoint, written inside the
/// store's own transaction by the hook, then claimed, delivered and marked by the delivery loop.
[<RequireQualifiedAccess>]
module Outbox =

    /// Made at every open with `IF NOT EXISTS`, beside the store's `user_version` (which stays the call
    /// store's own): a table only added, never changed, so far.
    [<Literal>]
    let Schema =
        """
        CREATE TABLE IF NOT EXISTS webhook_outbox (
            id TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            type TEXT NOT NULL,
            call_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            payload BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'disabled')),
            last_status INTEGER,
            PRIMARY KEY (id, endpoint)
        ) STRICT;
        CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE state = 'pending';
        """

    /// `msg_` and 128 random bits: unique without coordination, and saying nothing of the call.
    let newId () =
        "msg_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes 16)

    let private command (connection: SqliteConnection) sql (parameters: (string * obj) list) =
        let command = connection.CreateCommand()
        command.CommandText <- sql

        for name, value in parameters do
            command.Parameters.AddWithValue(name, value) |> ignore

        command

    let private execute connection sql parameters (cancel: CancellationToken) =
        task {
            use command = command connection sql parameters
            return! command.ExecuteNonQueryAsync cancel
        }

    let private ms (at: DateTimeOffset) = box (at.ToUnixTimeMilliseconds())

    /// Writes `events` for every endpoint, due now, on `connection` (inside the caller's transaction).
    let enqueue connection (endpoints: string list) (now: DateTimeOffset) (events: WebhookEvent list) cancel =
        task {
            for event in events do
                let id = newId ()

                for endpoint in endpoints do
                    let! _ =
                        execute
                            connection
                            "INSERT INTO webhook_outbox (id, endpoint, type, call_id, seq, payload, created_at, next_attempt_at, state) VALUES ($id, $endpoint, $type, $call, $seq, $payload, $now, $now, 'pending')"
                            [
                                "$id", box id
                                "$endpoint", box endpoint
                                "$type", box (EventType.name event.Type)
                                "$call", box (Callback.Domain.CallId.value event.CallId)
                                "$seq", box event.Sequence
                                "$payload", box event.Payload
                                "$now", ms now
                            ]
                            cancel

                    ()
        }

    /// The store's hook: the events of each write, for each endpoint, in the write's own transaction.
    let hook (endpoints: string list) (tracking: bool) (time: TimeProvider) (signal: OutboxSignal) = {
        new ISqliteWriteHook with
            member _.Schema = Schema

            member _.Written(connection, call, added, cancel) =
                task {
                    match Events.ofWrite tracking call added with
                    | [] -> ()
                    | events ->
                        do! enqueue connection endpoints (time.GetUtcNow()) events cancel
                        signal.Notify()
                }
    }

    /// `endpoint IN ($e0, $e1, …)` for the endpoints configured now: rows of an endpoint no longer
    /// configured wait, untouched, until it is configured again.
    let private among (endpoints: string list) =
        let names = endpoints |> List.mapi (fun i _ -> $"$e{i}")
        let parameters = List.zip names (endpoints |> List.map box)
        $"""endpoint IN ({String.Join(", ", names)})""", parameters

    /// Claims at most `limit` due rows: each gets its attempt counted and is hidden until `leaseUntil`, so a
    /// crash in the middle of a delivery makes it due again then (at least once), never lost.
    let claim connection endpoints (now: DateTimeOffset) (leaseUntil: DateTimeOffset) (limit: int) cancel =
        task {
            use transaction = (connection: SqliteConnection).BeginTransaction()
            let filter, parameters = among endpoints

            use claim =
                command
                    connection
                    $"UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = $lease WHERE rowid IN (SELECT rowid FROM webhook_outbox WHERE state = 'pending' AND next_attempt_at <= $now AND {filter} ORDER BY next_attempt_at, created_at, seq LIMIT $limit) RETURNING id, endpoint, type, payload, attempts"
                    ([ "$now", ms now; "$lease", ms leaseUntil; "$limit", box limit ] @ parameters)

            use! reader = claim.ExecuteReaderAsync(cancel: CancellationToken)
            let rows = ResizeArray()

            while! reader.ReadAsync cancel do
                match MessageId.tryCreate (reader.GetString 0) with
                | Some id ->
                    rows.Add {
                        Id = id
                        Endpoint = reader.GetString 1
                        Type = reader.GetString 2
                        Payload = reader.GetFieldValue<byte array> 3
                        Attempt = reader.GetInt32 4
                    }
                | None -> ()

            do! reader.CloseAsync()
            do! transaction.CommitAsync cancel
            return List.ofSeq rows
        }

    /// Records what became of a claimed row.
    let mark connection (row: OutboxRow) (result: RowResult) cancel =
        let state, next, status =
            match result with
            | Delivered status -> "delivered", None, Some status
            | Retry(at, status) -> "pending", Some at, status
            | GaveUp status -> "failed", None, status

        let parameters = [
            "$id", box (MessageId.value row.Id)
            "$endpoint", box row.Endpoint
            "$state", box state
            "$status", (status |> Option.map box |> Option.defaultValue (box DBNull.Value))
        ]

        match next with
        | Some at ->
            execute
                connection
                "UPDATE webhook_outbox SET state = $state, last_status = $status, next_attempt_at = $next WHERE id = $id AND endpoint = $endpoint"
                (("$next", ms at) :: parameters)
                cancel
        | None ->
            execute
                connection
                "UPDATE webhook_outbox SET state = $state, last_status = $status WHERE id = $id AND endpoint = $endpoint"
                parameters
                cancel

    /// An endpoint answered 410 Gone: its pending rows are marked `disabled` and never sent; answers how
    /// many.
    let disable connection (endpoint: string) cancel =
        execute
            connection
            "UPDATE webhook_outbox SET state = 'disabled' WHERE endpoint = $endpoint AND state = 'pending'"
            [ "$endpoint", box endpoint ]
            cancel

    /// How many rows wait for the configured endpoints, and when the soonest is due.
    let pending connection endpoints cancel =
        task {
            let filter, parameters = among endpoints

            use query =
                command
                    connection
                    $"SELECT COUNT(*), MIN(next_attempt_at) FROM webhook_outbox WHERE state = 'pending' AND {filter}"
                    parameters

            use! reader = query.ExecuteReaderAsync(cancel: CancellationToken)
            let! _ = reader.ReadAsync cancel

            let next =
                if reader.IsDBNull 1 then
                    None
                else
                    Some(DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64 1))

            return reader.GetInt64 0, next
        }

    /// Deletes the rows written before `cutoff` that are over (delivered, failed, disabled), or that wait for
    /// an endpoint no longer configured; answers how many.
    let prune connection (endpoints: string list) (cutoff: DateTimeOffset) cancel =
        let filter, parameters = among endpoints

        execute
            connection
            $"DELETE FROM webhook_outbox WHERE created_at < $cutoff AND (state <> 'pending' OR NOT ({filter}))"
            (("$cutoff", ms cutoff) :: parameters)
            cancel
