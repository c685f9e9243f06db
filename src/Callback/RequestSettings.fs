namespace Callback

open System
open System.Globalization
open Microsoft.Extensions.Configuration
open FsToolkit.ErrorHandling

/// Durable requests (`Callback__…`): how long a number's call makes a new request for it a duplicate,
/// and how a call the visitor did not take is tried again.
type RequestSettings = {
    /// A request for a number with a call created this recently that reached Asterisk gets that call.
    DuplicateWindow: TimeSpan
    /// Attempts at most, the first included (1 = no retry).
    MaxAttempts: int
    /// The spacing of attempts after `busy`, `no-answer` or `congestion`, before the jitter.
    RetryDelay: TimeSpan
}

[<RequireQualifiedAccess>]
module RequestSettings =

    /// The defaults: 10 minutes, 3 attempts, 2 minutes apart.
    let defaults = {
        DuplicateWindow = TimeSpan.FromMinutes 10.0
        MaxAttempts = 3
        RetryDelay = TimeSpan.FromMinutes 2.0
    }

    /// A duration as `hh:mm:ss` (`00:10:00`), from `low` to `high`.
    let private duration (config: IConfiguration) (key: string) (fallback: TimeSpan) (low: TimeSpan) (high: TimeSpan) =
        let name = key.Replace(":", "__")

        match config[key] with
        | null
        | "" -> Ok fallback
        | v ->
            match TimeSpan.TryParseExact(v.Trim(), "c", CultureInfo.InvariantCulture) with
            | true, span when span >= low && span <= high -> Ok span
            | _ -> Error $"{name} must be a duration hh:mm:ss from {low:c} to {high:c} (got '{v}')."

    let private attempts (config: IConfiguration) =
        match config["Callback:MaxAttempts"] with
        | null
        | "" -> Ok defaults.MaxAttempts
        | v ->
            match Int32.TryParse v with
            | true, n when n >= 1 && n <= 10 -> Ok n
            | _ -> Error $"Callback__MaxAttempts must be a whole number from 1 to 10 (got '{v}')."

    /// Reads the settings, every problem at once.
    let read (config: IConfiguration) : Result<RequestSettings, string list> =
        validation {
            let! window =
                duration
                    config
                    "Callback:DuplicateWindow"
                    defaults.DuplicateWindow
                    TimeSpan.Zero
                    (TimeSpan.FromDays 1.0)

            and! attempts = attempts config

            and! delay =
                duration
                    config
                    "Callback:RetryDelay"
                    defaults.RetryDelay
                    (TimeSpan.FromSeconds 10.0)
                    (TimeSpan.FromDays 1.0)

            return {
                DuplicateWindow = window
                MaxAttempts = attempts
                RetryDelay = delay
            }
        }
