namespace Callback

open System.Threading
open System.Threading.Tasks
open Callback.Ami
open Callback.Domain

/// Where the train left the rails, and why.
type StageFailure =
    | SocketFailed of ConnectError
    /// Every session slot stayed taken for the whole connect timeout (see `SessionGate`).
    | NoFreeSession
    | LoginFailed of ActionError
    /// The store could not record the call, so its Originate was not sent.
    | NotRecorded
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
        | NotRecorded -> "Originate: not sent, the call could not be recorded in the store"
        | OriginateFailed e -> $"Originate: {ActionError.describe e}"
        | LogoffFailed e -> $"Logoff: {ActionError.describe e}"

/// What happened to one callback: the booleans, the call's id once its Originate was accepted, and the
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

    /// The Originate of one attempt of call `callId`. `ChannelId` makes the visitor's channel's Uniqueid (and
    /// so every leg's Linkedid) `<callId>-<attempt>`, and `__CALLBACK_ID` is inherited by every channel the
    /// dialplan creates: each leg is recognisable by the monitor. The ActionID is that same ChannelId: it is
    /// unique per Originate (Asterisk refuses a live duplicate ChannelId anyway), it names the attempt in the
    /// `OriginateResponse` every `call` reader receives, and it discloses nothing the channel's own events do
    /// not. One `Variable:` line per variable, values without commas: Asterisk splits each line on commas.
    let originateAction (settings: OriginateSettings) (callId: CallId) (attempt: Attempt) (request: CallbackRequest) =
        let lang = Language.code request.Language
        let channelId = ChannelId.format callId attempt

        {
            Name = "Originate"
            ActionId = channelId
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
                yield "ChannelId", channelId
                yield "Variable", $"CALLBACK_LANGUAGE={lang}"
                yield "Variable", $"__CALLBACK_ID={CallId.value callId}"
            ]
        }

    let private stage send (onFailure: ActionError -> StageFailure) mark (progress: Progress) : Task<StageResult> =
        task {
            match! send () with
            | Ok _ -> return Ok(mark progress)
            | Error e -> return Error(onFailure e, progress)
        }

    let private login (ami: AmiSettings) (session: Session) ct =
        stage (fun () -> session.Send(Actions.login ami.Username ami.Secret, ct)) LoginFailed (fun p -> {
            p with
                Stages.AmiLogin = true
        })

    /// Records the call in the store (queued) before anything is dialled: no Originate for a call that
    /// could not be recorded, since nobody could ever read its status.
    let private record (tracking: Callback.Calls.CallTracking) callId attempt request ct (progress: Progress) =
        task {
            match! tracking.Spooling callId attempt request ct with
            | true -> return Ok progress
            | false -> return Error(NotRecorded, progress)
        }

    /// Whether Asterisk's answer proves it did not place the call (refused, or never sent). Without an
    /// answer (a timeout, a lost link) it may have: that call stays queued, for the monitor to follow.
    let private refusedOutright (error: ActionError) =
        match error with
        | Rejected _
        | Unexpected _
        | Unencodable _
        | NotReady _ -> true
        | NoResponse
        | LinkFailed _ -> false

    let private originate
        (tracking: Callback.Calls.CallTracking)
        (settings: Settings)
        (session: Session)
        (callId, attempt)
        request
        ct
        (progress: Progress)
        =
        let action = originateAction settings.Originate callId attempt request

        let send () =
            task {
                let! answer = session.Send(action, ct)

                match answer with
                | Error e when refusedOutright e -> do! tracking.Refused callId attempt
                | _ -> ()

                return answer
            }

        let spooled (p: Progress) = {
            Stages = {
                p.Stages with
                    AmiOrig = true
                    CallSpooled = true
            }
            CallId = Some(CallId.value callId)
        }

        task {
            match! record tracking callId attempt request ct progress with
            | Ok recorded -> return! stage send OriginateFailed spooled recorded
            | failed -> return failed
        }

    let private logoff (session: Session) ct =
        stage (fun () -> session.Send(Actions.logoff (), ct)) LogoffFailed (fun p -> { p with Stages.AmiLogoff = true })

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
    let private originateThenLogoff tracking settings session call request ct progress =
        task {
            let! afterOriginate = originate tracking settings session call request ct progress
            let! afterLogoff = logoff session ct (progressOf afterOriginate)
            return outcome afterOriginate afterLogoff
        }

    let private session tracking (settings: Settings) call (request: CallbackRequest) (ct: CancellationToken) =
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
                // The same session layer as the long-lived monitor: one reader loop, answers by ActionID.
                // It owns the connection and closes it when disposed.
                let options = SessionOptions(ResponseTimeout = settings.Ami.ResponseTimeout)
                use session = new Session(connection, options)

                let start = {
                    Stages = { StageResults.None with Socket = true }
                    CallId = None
                }

                let! loggedIn = login settings.Ami session ct start

                let! result =
                    match loggedIn with
                    | Error _ as failed -> Task.FromResult(outcome failed failed)
                    | Ok progress -> originateThenLogoff tracking settings session call request ct progress

                return {
                    result with
                        SkippedMessages = connection.SkippedMessages
                }
        }

    /// Places attempt `attempt` of call `callId`, in one of the gate's session slots (waiting at most the
    /// connect timeout for one). Never throws for a network or protocol fault: every fault ends as the
    /// stage booleans reached plus the failure. The Originate is sent at most once, and only once
    /// `tracking` agreed to it (`Spooling`: the store marked the attempt sent).
    let place
        (tracking: Callback.Calls.CallTracking)
        (settings: Settings)
        (gate: SessionGate)
        (callId: CallId, attempt: Attempt)
        (request: CallbackRequest)
        (ct: CancellationToken)
        =
        task {
            match!
                gate.Run(
                    settings.Ami.Endpoint.ConnectTimeout,
                    ct,
                    (fun () -> session tracking settings (callId, attempt) request ct)
                )
            with
            | Some outcome -> return outcome
            | None ->
                return {
                    Stages = StageResults.None
                    CallId = None
                    Failure = Some NoFreeSession
                    SkippedMessages = 0L
                }
        }

    /// `place` for a new call id, attempt 1: `tracking` hears of it just before its Originate is sent,
    /// and of its refusal.
    let runTracked tracking settings gate request ct =
        place tracking settings gate (CallId.create (), Attempt.first) request ct

    /// `runTracked` without a monitor.
    let run settings gate request ct =
        runTracked Callback.Calls.CallTracking.none settings gate request ct
