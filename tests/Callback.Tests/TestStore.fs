/// A call store for one test: the real SQLite store in a fresh temporary directory, deleted afterwards.
module Callback.Tests.TestStore

open System
open System.IO
open System.Threading
open Callback.Calls
open Callback.Domain

/// The store in its own directory; disposing it deletes the directory.
type TempStore() =
    let directory =
        Path.Combine(Path.GetTempPath(), $"callback-store-{Guid.NewGuid():N}")

    let store =
        match SqliteCallStore.Open(directory, CancellationToken.None).Result with
        | Ok store -> store
        | Result.Error message -> failwith $"the store did not open: {message}"

    member _.Store = store :> ICallStore

    /// The call as stored now (it must be there).
    member _.Find(callId: CallId) =
        match (store :> ICallStore).Find(callId, CancellationToken.None).Result with
        | Some call -> call
        | None -> failwith "the call is not in the store"

    interface IDisposable with
        member _.Dispose() =
            (store :> IDisposable).Dispose()

            if Directory.Exists directory then
                Directory.Delete(directory, true)

/// A new call as the pipeline records it, queued at `at`.
let newCall (callId: CallId) (attempt: Attempt) (at: DateTimeOffset) : NewCall = {
    CallId = callId
    Attempt = attempt
    Language = English
    MaskedNumber = "1514*****00"
    CreatedAt = at
}

/// The states of a stored call's history, oldest first.
let states (call: StoredCall) =
    call.History |> List.map _.Transition.State
