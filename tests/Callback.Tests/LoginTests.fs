/// Login as a long-lived session does it: the Events mask, and the MD5 challenge that keeps the secret off
/// a plain TCP link.
module Callback.Tests.LoginTests

open System
open System.Threading
open Expecto
open Callback.Ami
open Callback.Tests.FakeAmi
open Callback.Tests.SessionTests

let private openPlain (server: Server) =
    let endpoint = {
        Host = "127.0.0.1"
        Port = server.Port
        Transport = PlainTcp
        ConnectTimeout = TimeSpan.FromSeconds 2.0
    }

    match (Connection.Open(endpoint, CancellationToken.None)).Result with
    | Ok connection -> new Session(connection)
    | Error e -> failtestf "open failed: %s" (ConnectError.describe e)

let private login (session: Session) secret events md5 =
    session.Login("monitor", Secret secret, events, md5, CancellationToken.None)
    |> within 3.0

[<Tests>]
let tests =
    testList "Login" [
        // The vector is Python's hashlib.md5(b"418253967s3cret-pass").hexdigest().
        test "the MD5 key is the lower-case hex MD5 of the challenge followed by the secret" {
            Expect.equal
                (SessionActions.md5Key "418253967" (Secret "s3cret-pass"))
                "1da0d616044c8e87f15dc4fd7bf5a7f9"
                "key"
        }

        // Catches a Login that sends Secret on plain TCP, or a wrong key (the fake refuses it).
        test "MD5 login sends Challenge, then Login with the key: the secret never crosses the wire" {
            use server = new Server(script (md5Asterisk "s3cret-pass"))
            use session = openPlain server
            Expect.equal (login session "s3cret-pass" (EventMask.Of("call", "system")) true) (Ok()) "logged in"
            Expect.equal server.ActionNames [ "Challenge"; "Login" ] "challenge first"
            Expect.isFalse (server.Received.Contains "s3cret-pass") "no secret on the wire"
            Expect.isFalse (server.Received.Contains "Secret:") "no Secret line"
            Expect.equal (server.Actions[1].Get "Events") "call,system" "the Events mask"
        }

        test "MD5 login with the wrong secret is Rejected" {
            use server = new Server(script (md5Asterisk "s3cret-pass"))
            use session = openPlain server
            Expect.equal (login session "wrong" EventMask.Off true) (Error(Rejected "Authentication failed")) "rejected"
        }

        test "a Challenge answer without a Challenge line fails the login without sending Login" {
            use server = new Server(script (fun a -> Send(response "Success" a.ActionId "hm")))
            use session = openPlain server
            Expect.isError (login session "pw" EventMask.Off true) "failed"
            Expect.equal server.ActionNames [ "Challenge" ] "no Login sent"
        }

        test "plain login (over TLS) sends Username, Secret and the Events mask, and no Challenge" {
            use server = new Server(script asterisk)
            use session = openPlain server
            Expect.equal (login session "pw" EventMask.Off false) (Ok()) "logged in"
            Expect.equal server.ActionNames [ "Login" ] "no challenge"
            Expect.equal (server.Actions[0].Get "Secret") "pw" "secret"
            Expect.equal (server.Actions[0].Get "Events") "off" "events off"
        }

        test "the Events mask is off, on, or a list of lower-case classes; anything else is refused" {
            Expect.equal EventMask.Off.Value "off" "off"
            Expect.equal EventMask.On.Value "on" "on"
            Expect.equal (EventMask.Of("call", "system", "dialplan")).Value "call,system,dialplan" "classes"

            for bad in [ "call,system"; "Call"; ""; "call\r\n" ] do
                Expect.throwsT<ArgumentException> (fun () -> EventMask.Of bad |> ignore) bad

            Expect.throwsT<ArgumentException> (fun () -> EventMask.Of() |> ignore) "none"
        }
    ]
