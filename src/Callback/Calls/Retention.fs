namespace Callback.Calls

open System
open System.Threading
open System.Threading.Tasks
open Microsoft.Extensions.Hosting
open Microsoft.Extensions.Logging

/// Bounded retention: once at start and every hour, the final calls last moved more than `retention` ago
/// are deleted with their history (`Data__RetentionDays`); live calls are kept whatever their age.
[<Sealed>]
type CallRetention(store: ICallStore, retention: TimeSpan, time: TimeProvider, logger: ILogger) =
    inherit BackgroundService()

    /// How often the store is pruned after the first time.
    static member Interval = TimeSpan.FromHours 1.0

    /// Prunes once now; answers how many calls were deleted (logged). A store that fails is logged, and
    /// the next round tries again.
    member _.PruneOnce(cancel: CancellationToken) : Task<int> =
        task {
            let cutoff = time.GetUtcNow() - retention

            try
                let! deleted = store.Prune(cutoff, cancel)

                logger.LogInformation(
                    "Retention: deleted {Count} final calls last moved before {Cutoff:O}",
                    deleted,
                    cutoff
                )

                return deleted
            with
            | :? OperationCanceledException -> return 0
            | e ->
                logger.LogError("Retention: the store could not be pruned: {Error}", e.Message)
                return 0
        }

    override this.ExecuteAsync(stopping: CancellationToken) : Task =
        task {
            let! _ = this.PruneOnce stopping
            use timer = new PeriodicTimer(CallRetention.Interval, time)

            try
                while! timer.WaitForNextTickAsync stopping do
                    let! _ = this.PruneOnce stopping
                    ()
            with :? OperationCanceledException ->
                ()
        }
