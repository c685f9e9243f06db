namespace Callback.Calls

open System.Threading
open System.Threading.Tasks
open Microsoft.Data.Sqlite

/// Rows of another feature written in the transaction of each Create and Save that moves a call (the
/// webhook outbox), so they commit, or roll back, with the move they report.
type ISqliteWriteHook =
    /// SQL run at every open after the store's own migration, `CREATE … IF NOT EXISTS` only: it needs no
    /// schema version of its own.
    abstract Schema: string

    /// Runs inside the transaction, after the store's writes: the call as now stored, and the transitions
    /// this write added, oldest first. An exception rolls the whole write back.
    abstract Written:
        connection: SqliteConnection * call: StoredCall * added: SavedTransition list * cancel: CancellationToken ->
            Task
