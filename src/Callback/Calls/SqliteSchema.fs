namespace Callback.Calls

open System
open System.Threading
open Microsoft.Data.Sqlite

/// The store's schema and its versioned migrations (`PRAGMA user_version`), applied when the store opens.
[<RequireQualifiedAccess>]
module SqliteSchema =

    /// The schema this program writes (`PRAGMA user_version`); each later version adds one migration.
    [<Literal>]
    let SchemaVersion = 2

    let private schemaV1 =
        """
        CREATE TABLE calls (
            call_id TEXT PRIMARY KEY,
            attempt INTEGER NOT NULL,
            language TEXT NOT NULL,
            masked_number TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            state TEXT NOT NULL,
            outcome TEXT,
            talk_ms INTEGER,
            cause_code INTEGER,
            cause_text TEXT,
            sip_code INTEGER
        ) STRICT;
        CREATE INDEX calls_live ON calls (state) WHERE state NOT IN ('ended', 'failed');
        CREATE INDEX calls_updated ON calls (updated_at);
        CREATE TABLE transitions (
            call_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            state TEXT NOT NULL,
            at INTEGER NOT NULL,
            PRIMARY KEY (call_id, seq)
        ) STRICT, WITHOUT ROWID;
        """

    /// Durable requests: the number's HMAC and, while an attempt may still dial it, its digits; the five
    /// booleans the request was answered with; the current attempt's phase (`due` → `claimed` → `sent`)
    /// and due time; each attempt's start and end. A version-1 row was recorded just before its Originate,
    /// so it is `sent`, and its one attempt is copied from it.
    let private schemaV2 =
        """
        ALTER TABLE calls ADD COLUMN number_key TEXT;
        ALTER TABLE calls ADD COLUMN number TEXT;
        ALTER TABLE calls ADD COLUMN socket INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE calls ADD COLUMN ami_login INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE calls ADD COLUMN ami_orig INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE calls ADD COLUMN ami_logoff INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE calls ADD COLUMN call_spooled INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE calls ADD COLUMN reached INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE calls ADD COLUMN phase TEXT NOT NULL DEFAULT 'sent' CHECK (phase IN ('due', 'claimed', 'sent'));
        ALTER TABLE calls ADD COLUMN due_at INTEGER;
        CREATE INDEX calls_number ON calls (number_key, created_at) WHERE number_key IS NOT NULL;
        CREATE INDEX calls_due ON calls (due_at) WHERE phase = 'due';
        CREATE TABLE attempts (
            call_id TEXT NOT NULL,
            n INTEGER NOT NULL,
            started_at INTEGER NOT NULL,
            outcome TEXT,
            cause_code INTEGER,
            cause_text TEXT,
            sip_code INTEGER,
            PRIMARY KEY (call_id, n)
        ) STRICT, WITHOUT ROWID;
        INSERT INTO attempts (call_id, n, started_at, outcome, cause_code, cause_text, sip_code)
            SELECT call_id, attempt, created_at, outcome, cause_code, cause_text, sip_code FROM calls;
        """

    /// Each version's migration, applied in order from the file's `user_version`, each in its own
    /// transaction with the version it reaches.
    let private migrations = [ 1, schemaV1; 2, schemaV2 ]

    /// Brings the file's schema to `SchemaVersion`, one migration at a time (an empty file runs them all),
    /// or refuses a file written by a newer program rather than misread it.
    let internal migrate connection cancel =
        task {
            use version = SqliteStore.command connection "PRAGMA user_version" []
            let! found = version.ExecuteScalarAsync(cancel: CancellationToken)
            let found = Convert.ToInt32 found

            if found > SchemaVersion then
                return
                    Result.Error
                        $"The database's schema version is {found}, newer than this program's {SchemaVersion}: run the newer program, or restore a backup."
            else
                for target, script in migrations do
                    if target > found then
                        use transaction = (connection: SqliteConnection).BeginTransaction()

                        let! _ =
                            SqliteStore.execute connection $"{script} PRAGMA user_version = {target};" [] cancel

                        do! transaction.CommitAsync cancel

                return Ok()
        }
