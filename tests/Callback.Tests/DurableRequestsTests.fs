/// `POST /callback` is durable, against the fake AMI: the request is recorded before any AMI traffic (a
/// store that cannot record it means 503 and no connection at all); a request for a number with a call
/// gets that call, across a restart too; a call that never reached Asterisk blocks nothing and is never
/// dialled later; after a restart a claimed attempt is placed and a sent one is reconciled, never redialled.
module Callback.Tests.DurableRequestsTests

open System
open System.IO
open System.Text.Json
open System.Threading
open Expecto
open Microsoft.Data.Sqlite
open Callback.Calls
open Callback.Domain
open Callback.Tests.FakeAmi
open Callback.Tests.TestSidecar
open Callback.Tests.MonitorTests

let private cancel = CancellationToken.None

let private visitor = [ "phoneNumber", TestNumbers.Allowed; "language", "en" ]

let private dataDirectory () =
    Directory.CreateTempSubdirectory("callback-durable-").FullName

let private root (body: string) = JsonDocument.Parse(body).RootElement

let private callIdOf (body: string) =
    (root body).GetProperty("callId").GetString()

/// Runs `sql` on the store's file beside the sidecar (a fault, or a look at its rows).
let private onFile (directory: string) (sql: string) =
    use connection =
        new SqliteConnection($"Data Source={Path.Combine(directory, SqliteStore.FileName)}")

    connection.Open()
    use command = connection.CreateCommand()
    command.CommandText <- sql
    let result = command.ExecuteScalar()
    connection.Close()
    SqliteConnection.ClearPool connection
    result

/// The store in `directory`, for a test to record what an earlier process left there.
let private withStore (directory: string) (f: SqliteCallStore -> unit) =
    match SqliteCallStore.Open(directory, cancel).Result with
    | Ok store ->
        try
            f store
        finally
            (store :> IDisposable).Dispose()
    | Result.Error message -> failtest message

let private originates (server: Server) =
    server.Actions |> List.filter (fun a -> a.Name = "Originate")

[<Tests>]
let tests =
    testSequenced
    <| testList "Durable requests" [
        // Catches a request recorded after the socket stage (or not at all): Asterisk would hear of a call
        // nobody can follow.
        test "a store that cannot record the request: 503 in the contract and no AMI connection at all" {
            use server = new Server(script asterisk, Some pki.Value.Server)
            let directory = dataDirectory ()
            use sidecar = new Sidecar(fakeAmiConfig [ "Data:Path", directory ] server.Port)
            onFile directory "ALTER TABLE calls RENAME TO calls_gone" |> ignore
            let status, body = sidecar.Post(form visitor)
            Expect.equal (int status) 503 body
            Expect.equal (stages body) [ false; false; false; false; false ] "five false booleans"
            Expect.equal (errorFields body) [ "server" ] "the server's fault"
            Expect.equal server.Sessions 0 "no connection to Asterisk"
        }

        // Catches a second call placed for a visitor who pressed twice, or an answer that is not the first's.
        test
            "a second request for the number gets the first call: 200, same callId, its booleans, duplicate, nothing placed" {
            use server = new Server(script asterisk, Some pki.Value.Server)
            use sidecar = new Sidecar(fakeAmiConfig [] server.Port)
            let _, first = sidecar.Post(form visitor)

            let status, again =
                sidecar.Post(form [ "phoneNumber", "+1 514 555 0234"; "language", "fr" ])

            Expect.equal (int status) 200 again
            Expect.equal (callIdOf again) (callIdOf first) "the same call"
            Expect.equal ((root again).GetProperty("statusUrl").GetString()) $"/calls/{callIdOf first}" "its statusUrl"
            Expect.isTrue ((root again).GetProperty("duplicate").GetBoolean()) "duplicate"
            Expect.isFalse (hasProperty "duplicate" first) "the first is no duplicate"
            Expect.equal (stages again) (stages first) "the booleans the first request got"
            Expect.equal server.Sessions 1 "one call placed"
        }

        // Catches a duplicate window kept in memory (lost by a restart).
        test "the duplicate window holds across a restart: the new process places nothing" {
            let directory = dataDirectory ()
            use before = new Server(script asterisk, Some pki.Value.Server)

            let first =
                using (new Sidecar(fakeAmiConfig [ "Data:Path", directory ] before.Port)) (fun sidecar ->
                    snd (sidecar.Post(form visitor)))

            use after = new Server(script asterisk, Some pki.Value.Server)
            use restarted = new Sidecar(fakeAmiConfig [ "Data:Path", directory ] after.Port)
            let status, again = restarted.Post(form visitor)
            Expect.equal (int status) 200 again
            Expect.equal (callIdOf again) (callIdOf first) "the call of the first process"
            Expect.equal after.Sessions 0 "nothing placed after the restart"
        }

        // Catches a window that counts calls the visitor was told failed, or a failed call dialled later.
        test "a call whose socket failed ends failed/error, blocks no new request, and is never dialled after" {
            let directory = dataDirectory ()
            let closed = Loopback.freePort ()

            using (new Sidecar(fakeAmiConfig [ "Data:Path", directory ] closed)) (fun sidecar ->
                let status, body = sidecar.Post(form visitor)
                Expect.equal (int status) 503 body)

            Expect.equal
                (string (onFile directory "SELECT state || '/' || outcome || '/' || IFNULL(number, 'none') FROM calls"))
                "failed/error/none"
                "given up in the store, its digits dropped"

            use server = new Server(script asterisk, Some pki.Value.Server)
            use sidecar = new Sidecar(fakeAmiConfig [ "Data:Path", directory ] server.Port)
            let status, body = sidecar.Post(form visitor)
            Expect.equal (int status) 200 body
            Expect.isFalse (hasProperty "duplicate" body) "a new call"
            Thread.Sleep 300
            Expect.equal (originates server).Length 1 "only the new call is dialled"
        }

        // Catches claimed attempts left claimed after a crash (never placed) or placed as a new attempt.
        test "after a restart an attempt claimed but never sent is placed, as the same attempt" {
            let directory = dataDirectory ()

            let request =
                RequestStoreTests.request TestNumbers.AllowedDigits DateTimeOffset.UtcNow None

            withStore directory (fun store ->
                Expect.equal ((store :> IRequestStore).Accept(request, cancel).Result) Accepted "claimed")

            use server = new Server(script asterisk, Some pki.Value.Server)
            use _sidecar = new Sidecar(fakeAmiConfig [ "Data:Path", directory ] server.Port)
            let channelId = ChannelId.format request.CallId Attempt.first
            eventually "placed by the dispatcher" (fun () -> (originates server).Length = 1)
            Expect.equal (originates server).Head.ActionId channelId "its ChannelId"
            Expect.equal ((originates server).Head.Get "ChannelId") channelId "attempt 1"
        }

        // Catches a recovery that re-sends the Originate of an attempt marked sent (a second ring).
        test "killed between the sent mark and the Originate: after the restart the call ends lost, never redialled" {
            let directory = dataDirectory ()

            let request =
                RequestStoreTests.request TestNumbers.AllowedDigits DateTimeOffset.UtcNow None

            withStore directory (fun store ->
                let requests = store :> IRequestStore
                requests.Accept(request, cancel).Result |> ignore

                Expect.isTrue
                    (requests.MarkSent(request.CallId, Attempt.first, DateTimeOffset.UtcNow, cancel).Result)
                    "sent")

            use server = tlsAsterisk ()

            use sidecar =
                new Sidecar(
                    fakeAmiConfig
                        [
                            "Data:Path", directory
                            "Monitor:Username", "callback-monitor"
                            "Monitor:Secret", "monitor-s3cret"
                        ]
                        server.Port
                )

            let store = sidecar.App.Services.GetService(typeof<ICallStore>) :?> ICallStore

            eventually "reconciled: lost" (fun () ->
                match store.Find(request.CallId, cancel).Result with
                | Some call -> Names.outcome call.Status = Some "lost"
                | None -> false)

            Thread.Sleep 300
            Expect.isEmpty (originates server) "no Originate sent again"
        }
    ]
