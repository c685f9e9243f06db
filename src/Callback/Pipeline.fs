namespace Callback

open System.Threading
open System.Threading.Tasks
open Callback.Ami
open Callback.Domain

/// The answer's five booleans, set one by one as the train passes each stage.
type StageResults = {
    Socket: bool
    AmiLogin: bool
    AmiOrig: bool
    AmiLogoff: bool
    CallSpooled: bool
} with

    static member None = {
        Socket = false
        AmiLogin = false
        AmiOrig = false
        AmiLogoff = false
        CallSpooled = false
    }

/// Where the train left the rails, and why.
type StageFailure =
    | SocketFailed of ConnectError
    /// Every session slot stayed taken for the whole connect timeout (see `SessionGate`).
    | NoFreeSession
    | LoginFailed of ActionError
    | OriginateFailed of ActionError
    | LogoffFailed of ActionError

[<RequireQualifiedAccess>]
module StageFailure =
    /// For the log: the stage and what went wrong there, in words (no `%A`: it loses case fields in a
    /// trimmed or native build).
    let describe failure =
        match failure with
        | SocketFailed e -> $"socket: {ConnectError.describe e}"
        | NoFreeSession -> "socket: no free AMI session within the connect timeout"
        | LoginFailed e -> $"Login: {ActionError.describe e}"
        | OriginateFailed e -> $"Originate: {ActionError.describe e}"
        | LogoffFailed e -> $"Logoff: {ActionError.describe e}"

/// What happened to one callback: the booleans, the Originate's ActionID once it was accepted, and the
/// first failure if any.
type CallbackOutcome = {
    Stages: StageResults
    CallId: string option
    Failure: StageFailure option
    /// AMI messages over `Ami__MaxMessageBytes` that the session skipped (almost always 0), for the log.
    SkippedMessages: int64
}

/// socket → Login → Originate → Logoff. A failed stage stops the ones after it, except that a session
/// that logged in always sends Logoff, whatever happened to the Originate.
[<RequireQualifiedAccess>]
module Pipeline =

    type private Progress = {
        Stages: StageResults
        CallId: string option
    }

    /// A stage's result: the progress so far, or the failure with the progress it had reached.
    type private StageResult = Result<Progress, StageFailure * Progress>

    /// The Originate for one callback. One `Variable:` line per variable, values without commas:
    /// Asterisk splits each Variable line on commas.
    let originateAction (settings: OriginateSettings) (request: CallbackRequest) =
        let lang = Language.code request.Language

        {
            Name = "Originate"
            ActionId = Actions.newActionId ()
            Headers = [
                yield "Channel", settings.Channel.Replace("{number}", request.PhoneNumber.Digits)
                yield "Context", settings.Context.Replace("{language}", lang)
                yield "Exten", settings.Exten
                yield "Priority", string settings.Priority
                match settings.CallerId with
                | Some callerId -> yield "CallerID", callerId
                | None -> ()
                yield "Timeout", string (int settings.Timeout.TotalMilliseconds)
                yield "Async", "true"
                yield "Variable", $"CALLBACK_LANGUAGE={lang}"
            ]
        }

    let private stage send (onFailure: ActionError -> StageFailure) mark (progress: Progress) : Task<StageResult> =
        task {
            match! send () with
            | Ok _ -> return Ok(mark progress)
            | Error e -> return Error(onFailure e, progress)
        }

    let private login (ami: AmiSettings) connection ct =
        stage
            (fun () -> Client.send connection ami.ResponseTimeout (Actions.login ami.Username ami.Secret) ct)
            LoginFailed
            (fun p -> { p with Stages.AmiLogin = true })

    let private originate (settings: Settings) connection request ct (progress: Progress) =
        let action = originateAction settings.Originate request

        stage
            (fun () -> Client.send connection settings.Ami.ResponseTimeout action ct)
            OriginateFailed
            (fun p -> {
                Stages = {
                    p.Stages with
                        AmiOrig = true
                        CallSpooled = true
                }
                CallId = Some action.ActionId
            })
            progress

    let private logoff (ami: AmiSettings) connection ct =
        stage (fun () -> Client.send connection ami.ResponseTimeout (Actions.logoff ()) ct) LogoffFailed (fun p -> {
            p with
                Stages.AmiLogoff = true
        })

    let private progressOf (result: StageResult) =
        match result with
        | Ok p
        | Error(_, p) -> p

    let private outcome (first: StageResult) (last: StageResult) =
        let p = progressOf last

        {
            Stages = p.Stages
            CallId = p.CallId
            Failure =
                match first, last with
                | Error(f, _), _
                | _, Error(f, _) -> Some f
                | _ -> None
            SkippedMessages = 0L
        }

    /// Once logged in: Originate, then Logoff whatever the Originate's fate. The first failure is kept.
    let private originateThenLogoff settings connection request ct progress =
        task {
            let! afterOriginate = originate settings connection request ct progress
            let! afterLogoff = logoff settings.Ami connection ct (progressOf afterOriginate)
            return outcome afterOriginate afterLogoff
        }

    let private session (settings: Settings) (request: CallbackRequest) (ct: CancellationToken) =
        task {
            match! Connection.Open(settings.Ami.Endpoint, ct, settings.Ami.MaxMessageBytes) with
            | Error e ->
                return {
                    Stages = StageResults.None
                    CallId = None
                    Failure = Some(SocketFailed e)
                    SkippedMessages = 0L
                }
            | Ok connection ->
                use connection = connection

                let start = {
                    Stages = { StageResults.None with Socket = true }
                    CallId = None
                }

                let! loggedIn = login settings.Ami connection ct start

                let! result =
                    match loggedIn with
                    | Error _ as failed -> Task.FromResult(outcome failed failed)
                    | Ok progress -> originateThenLogoff settings connection request ct progress

                return {
                    result with
                        SkippedMessages = connection.SkippedMessages
                }
        }

    /// Places one callback, in one of the gate's session slots (waiting at most the connect timeout for
    /// one). Never throws for a network or protocol fault: every fault ends as the stage booleans reached
    /// plus the failure. The Originate is sent at most once.
    let run (settings: Settings) (gate: SessionGate) (request: CallbackRequest) (ct: CancellationToken) =
        task {
            match! gate.Run(settings.Ami.Endpoint.ConnectTimeout, ct, (fun () -> session settings request ct)) with
            | Some outcome -> return outcome
            | None ->
                return {
                    Stages = StageResults.None
                    CallId = None
                    Failure = Some NoFreeSession
                    SkippedMessages = 0L
                }
        }
