namespace Callback.Callbacks

open System
open System.Threading
open System.Threading.Tasks
open Microsoft.Extensions.Hosting

/// The callbacks being handled now, and whether new ones are still taken.
[<Sealed>]
type CallbacksInFlight() =
    let sync = obj ()
    let mutable running = 0
    let mutable accepting = true
    let idle = TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)

    /// Counts a new callback in; false once shutdown has begun (the callback must then be refused).
    member _.TryEnter() =
        lock sync (fun () ->
            if accepting then
                running <- running + 1

            accepting)

    /// Counts a callback out, whatever its outcome.
    member _.Leave() =
        lock sync (fun () ->
            running <- running - 1

            if running = 0 && not accepting then
                idle.TrySetResult() |> ignore)

    /// Whether new callbacks are taken (false from the start of shutdown).
    member _.Accepting = lock sync (fun () -> accepting)

    /// Refuses new callbacks from now on; completes once the last one in flight has left.
    member _.StopAccepting() : Task =
        lock sync (fun () ->
            accepting <- false

            if running = 0 then
                idle.TrySetResult() |> ignore)

        idle.Task

/// Shutdown in the right order. From the moment the application is told to stop, new callbacks are
/// refused (503) while the server still listens, and the ones in flight finish their pipeline, Logoff
/// included (at most `longest`); then the server stops; then, after the last callback, `resources` (the AMI
/// session gate, the limiters) are disposed.
[<Sealed>]
type ShutdownDrain
    (inFlight: CallbacksInFlight, longest: TimeSpan, resources: IDisposable list, lifetime: IHostApplicationLifetime) =
    let mutable disposed = 0

    let dispose () =
        if Interlocked.Exchange(&disposed, 1) = 0 then
            resources |> List.iter _.Dispose()

    interface IHostedLifecycleService with
        member _.StartingAsync _ = Task.CompletedTask

        member _.StartAsync _ =
            // At the stop request itself, not later in StoppingAsync: a callback arriving in between would
            // be taken. (Registered after the host's own handlers, so it runs before them.)
            lifetime.ApplicationStopping.Register(fun () -> inFlight.StopAccepting() |> ignore)
            |> ignore

            Task.CompletedTask

        member _.StartedAsync _ = Task.CompletedTask

        member _.StoppingAsync _ =
            // Not the host's token: it is the shutdown timeout, derived from `longest` to cover this wait.
            task {
                try
                    do! inFlight.StopAccepting().WaitAsync longest
                with :? TimeoutException ->
                    ()
            }

        member _.StopAsync _ = Task.CompletedTask

        member _.StoppedAsync _ =
            dispose ()
            Task.CompletedTask

    /// A host disposed without being stopped (as tests do) still frees the limiters' timers: the container
    /// disposes this service.
    interface IDisposable with
        member _.Dispose() = dispose ()

/// How long the host gives shutdown: the drain of the longest callback, plus the server's own stop.
[<RequireQualifiedAccess>]
module ShutdownTimeout =
    /// `longest` callback plus 5 s for Kestrel to close its connections and the host to stop.
    let forCallbacks (longest: TimeSpan) = longest + TimeSpan.FromSeconds 5.0
