/// The socket stage of the pipeline: TCP, TLS (chain and host name) and the greeting, each failure
/// ending the train before a single AMI byte is sent.
module Callback.Tests.PipelineSocketTests

open System
open System.Diagnostics
open System.Threading
open Expecto
open Callback
open Callback.Domain
open Callback.Ami
open Callback.Tests.FakeAmi
open Callback.Tests.Loopback
open Callback.Tests.PipelineTests

[<Tests>]
let tests =
    testList "Pipeline socket stage" [
        test "plain TCP works when TLS is turned off" {
            use server = new Server(script asterisk)

            let outcome =
                (Pipeline.run (settingsFor server.Port PlainTcp) roomyGate frenchCallback CancellationToken.None).Result

            Expect.equal outcome.Stages (stagesOf (true, true, true, true, true)) "all five stages"
        }

        test "a refused connection fails the socket stage at once" {
            let watch = Stopwatch.StartNew()

            let outcome =
                (Pipeline.run
                    (settingsFor (freePort ()) (trustedTls ()))
                    roomyGate
                    frenchCallback
                    CancellationToken.None)
                    .Result

            Expect.equal outcome.Stages StageResults.None "nothing succeeded"
            Expect.equal outcome.Failure (Some(SocketFailed Refused)) "refused"
            Expect.isLessThan watch.Elapsed (TimeSpan.FromSeconds 1.0) "does not wait for the connect timeout"
        }

        test "a certificate from an authority the client does not trust fails the socket stage" {
            use server = new Server(script asterisk, Some pki.Value.Server)

            let outcome =
                (Pipeline.run (settingsFor server.Port (Tls [])) roomyGate frenchCallback CancellationToken.None).Result

            Expect.equal outcome.Stages StageResults.None "nothing succeeded"

            match outcome.Failure with
            | Some(SocketFailed(TlsRejected _)) -> ()
            | other -> failtestf "expected a TLS rejection, got %A" other

            Expect.equal server.ReceivedByteCount 0L "no AMI byte was sent"
        }

        // The server is reached at the address and name the client asked for; only its certificate names
        // another host, so the handshake itself must refuse it. Catches host-name checking turned off.
        test "a certificate for another host name fails the socket stage even from a trusted authority" {
            for host in [ "localhost"; "127.0.0.1" ] do
                use server = new Server(script asterisk, Some pki.Value.OtherHost)

                let settings =
                    settingsFor server.Port (trustedTls ())
                    |> withEndpoint (fun e -> { e with Host = host })

                let outcome =
                    (Pipeline.run settings roomyGate frenchCallback CancellationToken.None).Result

                match outcome.Failure with
                | Some(SocketFailed(TlsRejected _)) -> ()
                | other -> failtestf "%s: expected a TLS rejection, got %A" host other

                Expect.equal outcome.Stages StageResults.None "nothing succeeded"
                Expect.equal server.ReceivedByteCount 0L "no AMI byte was sent"
        }

        test "a server that does not greet as Asterisk fails the socket stage and is sent nothing" {
            use server =
                new Server(
                    {
                        Greeting = Some "SSH-2.0-OpenSSH_9.2\r\n"
                        Answer = asterisk
                    },
                    Some pki.Value.Server
                )

            let outcome =
                (Pipeline.run (settingsFor server.Port (trustedTls ())) roomyGate frenchCallback CancellationToken.None)
                    .Result

            Expect.equal outcome.Stages StageResults.None "nothing succeeded"
            Expect.equal outcome.Failure (Some(SocketFailed(NotAsterisk "SSH-2.0-OpenSSH_9.2"))) "named"
            Expect.equal server.ReceivedByteCount 0L "nothing sent"
        }

        test "a greeting that never comes fails the socket stage within the connect timeout" {
            use server =
                new Server({ Greeting = None; Answer = asterisk }, Some pki.Value.Server)

            let settings =
                settingsFor server.Port (trustedTls ())
                |> withEndpoint (fun e -> {
                    e with
                        ConnectTimeout = TimeSpan.FromMilliseconds 300.0
                })

            let watch = Stopwatch.StartNew()

            let outcome =
                (Pipeline.run settings roomyGate frenchCallback CancellationToken.None).Result

            Expect.equal outcome.Failure (Some(SocketFailed ConnectTimedOut)) "timed out"
            Expect.isLessThan watch.Elapsed (TimeSpan.FromSeconds 2.0) "bounded by the connect timeout"
        }

    ]
