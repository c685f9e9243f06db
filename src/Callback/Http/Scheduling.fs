namespace Callback.Http

open System
open System.Threading
open System.Threading.Tasks
open NodaTime
open Callback.Domain

/// What `POST /callback` needs to hold a call for later: the clock it decides by, and the store's two
/// operations on scheduled calls. In DI (added with `TryAdd`), so a test gives a fake clock and store.
[<NoComparison; NoEquality>]
type Scheduling = {
    Clock: TimeProvider
    /// Keeps the request, to be placed at this instant: its id and when it will be placed (a duplicate's
    /// own), or why it could not be kept.
    Schedule: CallbackRequest -> Instant -> CancellationToken -> Task<Result<ScheduledCall, string>>
    /// How many calls are already due from this opening on, within its window: the next one is spread
    /// behind them (`Placement.spread`).
    WaitingAt: Instant -> CancellationToken -> Task<int>
}

[<RequireQualifiedAccess>]
module Scheduling =

    /// What `Scheduling.Schedule` answers until a store keeps scheduled calls.
    [<Literal>]
    let Unavailable = "scheduling is not available"

    /// Until the durable store keeps scheduled calls: a request for later is refused (503), one for now
    /// is placed as before.
    let unavailable (clock: TimeProvider) = {
        Clock = clock
        Schedule = fun _ _ _ -> Task.FromResult(Error Unavailable)
        WaitingAt = fun _ _ -> Task.FromResult 0
    }

    /// The clock's present as an instant.
    let now (scheduling: Scheduling) =
        Instant.FromDateTimeOffset(scheduling.Clock.GetUtcNow())
