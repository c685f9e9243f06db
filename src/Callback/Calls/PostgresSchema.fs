namespace Callback.Calls

open System.Threading
open System.Threading.Tasks
open Npgsql

/// The PostgreSQL store's schema as numbered migrations, applied in order at start-up and recorded in
/// `schema_migrations`, so every replica that starts finds the database at the version it was built for,
/// and one written by a newer program is refused rather than misread.
[<RequireQualifiedAccess>]
module PostgresSchema =

    /// Version 1: the same calls and transitions as SQLite's version 1, in PostgreSQL's own types
    /// (`timestamptz` times, so an operator's `psql` shows them as times). A transition belongs to its
    /// call: deleting the call deletes its history.
    let private v1 =
        """
        CREATE TABLE calls (
            call_id text PRIMARY KEY,
            attempt integer NOT NULL,
            language text NOT NULL,
            masked_number text NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            state text NOT NULL,
            outcome text,
            talk_ms bigint,
            cause_code integer,
            cause_text text,
            sip_code integer
        );
        CREATE INDEX calls_live ON calls (state) WHERE state NOT IN ('ended', 'failed');
        CREATE INDEX calls_updated ON calls (updated_at);
        CREATE TABLE transitions (
            call_id text NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
            seq bigint NOT NULL,
            attempt integer NOT NULL,
            state text NOT NULL,
            at timestamptz NOT NULL,
            PRIMARY KEY (call_id, seq)
        );
        """

    /// Version 2, SQLite's version 2 in PostgreSQL's types: durable requests (the number's HMAC and, while
    /// an attempt may dial it, its digits; the answer's five booleans; the attempt's phase and due time;
    /// each attempt's start and end) and, PostgreSQL's own, `locked_until`: the lease of a claim, so a
    /// replica that dies holding one loses it and another replica can take the attempt again. A version-1
    /// row was recorded just before its Originate, so it is `sent`, and its one attempt is copied from it.
    let private v2 =
        """
        ALTER TABLE calls ADD COLUMN number_key text;
        ALTER TABLE calls ADD COLUMN number text;
        ALTER TABLE calls ADD COLUMN socket boolean NOT NULL DEFAULT false;
        ALTER TABLE calls ADD COLUMN ami_login boolean NOT NULL DEFAULT false;
        ALTER TABLE calls ADD COLUMN ami_orig boolean NOT NULL DEFAULT false;
        ALTER TABLE calls ADD COLUMN ami_logoff boolean NOT NULL DEFAULT false;
        ALTER TABLE calls ADD COLUMN call_spooled boolean NOT NULL DEFAULT false;
        ALTER TABLE calls ADD COLUMN reached boolean NOT NULL DEFAULT false;
        ALTER TABLE calls ADD COLUMN phase text NOT NULL DEFAULT 'sent' CHECK (phase IN ('due', 'claimed', 'sent'));
        ALTER TABLE calls ADD COLUMN due_at timestamptz;
        ALTER TABLE calls ADD COLUMN locked_until timestamptz;
        CREATE INDEX calls_number ON calls (number_key, created_at) WHERE number_key IS NOT NULL;
        CREATE INDEX calls_due ON calls (due_at) WHERE phase = 'due';
        CREATE INDEX calls_claimed ON calls (locked_until) WHERE phase = 'claimed';
        CREATE TABLE attempts (
            call_id text NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
            n integer NOT NULL,
            started_at timestamptz NOT NULL,
            outcome text,
            cause_code integer,
            cause_text text,
            sip_code integer,
            PRIMARY KEY (call_id, n)
        );
        INSERT INTO attempts (call_id, n, started_at, outcome, cause_code, cause_text, sip_code)
            SELECT call_id, attempt, created_at, outcome, cause_code, cause_text, sip_code FROM calls;
        """

    /// Every migration, oldest first: (version, SQL). A later version is appended, never edited in place.
    let migrations = [ 1, v1; 2, v2 ]

    /// The version this program writes.
    let version = migrations |> List.map fst |> List.max

    /// Any constant of our own: replicas starting at once take it in turn, so only one of them migrates.
    [<Literal>]
    let private MigrationLock = 0x43616c6c6261636bL

    let private execute (connection: NpgsqlConnection) (sql: string) (cancel: CancellationToken) =
        task {
            use command = new NpgsqlCommand(sql, connection)
            return! command.ExecuteNonQueryAsync cancel
        }

    /// The versions already applied, in a database that has the `schema_migrations` table.
    let applied (connection: NpgsqlConnection) (cancel: CancellationToken) : Task<int list> =
        task {
            use command =
                new NpgsqlCommand("SELECT version FROM schema_migrations ORDER BY version", connection)

            use! reader = command.ExecuteReaderAsync cancel
            let versions = ResizeArray()

            while! reader.ReadAsync cancel do
                versions.Add(reader.GetInt32 0)

            return List.ofSeq versions
        }

    /// Applies the migrations the database lacks, in one transaction under an advisory lock (PostgreSQL's
    /// DDL is transactional: a failed migration leaves the previous version whole). Answers the versions
    /// applied now (none when the database was current), or why the database cannot be used.
    let migrate (connection: NpgsqlConnection) (cancel: CancellationToken) : Task<Result<int list, string>> =
        task {
            use! transaction = connection.BeginTransactionAsync cancel
            let! _ = execute connection $"SELECT pg_advisory_xact_lock({MigrationLock})" cancel

            let! _ =
                execute
                    connection
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
                    cancel

            let! found = applied connection cancel

            match List.tryLast found with
            | Some newest when newest > version ->
                return
                    Result.Error
                        $"the database's schema version is {newest}, newer than this program's {version}: run the newer program, or restore a backup."
            | _ ->
                let missing = migrations |> List.filter (fun (v, _) -> not (List.contains v found))

                for v, sql in missing do
                    let! _ = execute connection sql cancel

                    let! _ =
                        execute connection $"INSERT INTO schema_migrations (version) VALUES ({v})" cancel

                    ()

                do! transaction.CommitAsync cancel
                return Ok(List.map fst missing)
        }
