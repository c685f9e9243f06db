/// A call store with the webhook outbox for one test: the real SQLite store and its hook in a fresh
/// temporary directory that can be closed and opened again (a restart), deleted afterwards.
module Callback.Tests.TestOutbox

open System
open System.IO
open System.Threading
open System.Threading.Tasks
open Microsoft.Data.Sqlite
open Callback.Calls
open Callback.Domain
open Callback.Webhooks

let cancel = CancellationToken.None

/// One outbox row as the tests read it.
type Row = {
    Id: string
    Endpoint: string
    Type: string
    CallId: string
    Payload: byte array
    Attempts: int
    NextAttemptAt: DateTimeOffset
    State: string
}

/// Opens `directory`'s store with `hook`.
let openStore (directory: string) (hook: ISqliteWriteHook) =
    match SqliteCallStore.Open(directory, cancel, hook).Result with
    | Ok store -> store
    | Result.Error message -> failwith $"the store did not open: {message}"

/// The store and its outbox in a temporary directory, for `endpoints`, on `time`'s clock.
type OutboxStore(endpoints: string list, time: TimeProvider, ?wrap: ISqliteWriteHook -> ISqliteWriteHook) =
    let directory =
        Path.Combine(Path.GetTempPath(), $"callback-outbox-{Guid.NewGuid():N}")

    let signal = OutboxSignal()

    let hook =
        let plain = Outbox.hook endpoints true time signal
        (defaultArg wrap id) plain

    let mutable store = openStore directory hook

    member _.Sqlite = store
    member _.Store = store :> ICallStore
    member _.Signal = signal
    member _.Endpoints = endpoints

    /// Closes the store and opens it again from its file, as a restarted sidecar does.
    member _.Reopen() =
        (store :> IDisposable).Dispose()
        store <- openStore directory hook

    /// Every outbox row, oldest first.
    member _.Rows() =
        use connection = store.Connect(cancel).Result

        use command = connection.CreateCommand()

        command.CommandText <-
            "SELECT id, endpoint, type, call_id, payload, attempts, next_attempt_at, state FROM webhook_outbox ORDER BY created_at, seq, endpoint"

        use reader = command.ExecuteReader()

        [
            while reader.Read() do
                {
                    Id = reader.GetString 0
                    Endpoint = reader.GetString 1
                    Type = reader.GetString 2
                    CallId = reader.GetString 3
                    Payload = reader.GetFieldValue<byte array> 4
                    Attempts = reader.GetInt32 5
                    NextAttemptAt = DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64 6)
                    State = reader.GetString 7
                }
        ]

    member private _.Close() =
        (store :> IDisposable).Dispose()

        if Directory.Exists directory then
            Directory.Delete(directory, true)

    interface IDisposable with
        member this.Dispose() = this.Close()

    interface IAsyncDisposable with
        member this.DisposeAsync() =
            this.Close()
            ValueTask.CompletedTask

/// A new call as the pipeline records it, queued at `at`.
let newCall (at: DateTimeOffset) : NewCall = {
    CallId = CallId.create ()
    Attempt = Attempt.first
    Language = English
    MaskedNumber = "1514*****00"
    CreatedAt = at
}

/// The move from `from` to `status` (whose state is `state`) at `at`.
let move (from: State) (status: CallStatus) (at: DateTimeOffset) : Expected * Change =
    {
        Attempt = Attempt.first
        State = from
    },
    {
        Attempt = Attempt.first
        Status = status
        Transitions = [
            {
                State = Store.stateOf status
                At = at
            }
        ]
        At = at
    }

/// Saves `call`'s move (it must be saved).
let save (store: ICallStore) (callId: CallId) (expected, change) =
    match store.Save(callId, expected, change, cancel).Result with
    | Saved -> ()
    | other -> failwith $"not saved: {other}"

/// A whole call's life after `queued`: ringing, answered, connecting, bridged, ended completed.
let completedLife (callId: CallId) (store: ICallStore) (at: DateTimeOffset) =
    let steps = [
        State.Queued, Live Ringing
        State.Ringing, Live Answered
        State.Answered, Live Connecting
        State.Connecting, Live Bridged
        State.Bridged, Ended(Completed(TimeSpan.FromSeconds 3.0), None)
    ]

    steps
    |> List.iteri (fun i (from, status) -> save store callId (move from status (at.AddSeconds(float (i + 1)))))
