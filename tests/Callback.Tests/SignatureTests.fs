module Callback.Tests.SignatureTests

open System
open Microsoft.AspNetCore.Http
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Callback.Webhooks

let private secretOf text =
    WebhookSecret.tryParse text |> Result.defaultWith failwith

let private idOf text =
    MessageId.tryCreate text |> Option.defaultWith (fun () -> failwith text)

let private bytes (text: string) =
    ReadOnlyMemory(Encoding.UTF8.GetBytes text)

/// The `StandardWebhooks` package's verifier as the receiver, written apart from our signer: throws
/// `WebhookVerificationException` unless one signature matches and the timestamp is within 5 minutes.
let private verify (secret: string) (headers: (string * string) list) (body: string) =
    let received = HeaderDictionary()

    for name, value in headers do
        received[name] <- Microsoft.Extensions.Primitives.StringValues value

    StandardWebhooks.StandardWebhook(secret).Verify(body, received)

let private refused secret headers body =
    Expect.throwsT<StandardWebhooks.Diagnostics.WebhookVerificationException>(fun () -> verify secret headers body)

// The specification's published example (its reference libraries test against the same vector).
let private vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

let private body =
    Gen.elements [ "{}"; """{"type":"call.completed"}"""; "été ☎ 日本"; "a.b.c"; "" ]
    |> Gen.zip (Gen.elements [ "msg_1"; "0123456789abcdef0123456789abcdef"; "call-2-queued" ])
    |> Arb.fromGen

[<Tests>]
let tests =
    testList "Webhook signature" [
        // Catches another signed content (order, separator), hex instead of base64, or the key's text used
        // instead of its base64-decoded bytes.
        test "the specification's example vector is signed as published" {
            let signature =
                Signature.sign
                    [ secretOf vectorSecret ]
                    (idOf "msg_p5jXN8AQM9LWM0D4loKWxJek")
                    (DateTimeOffset.FromUnixTimeSeconds 1614265330L)
                    (bytes """{"test": 2432232314}""")

            Expect.equal signature "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" "v1 HMAC-SHA256"
        }

        // Catches headers with other names, a timestamp in milliseconds, or a signature of other bytes.
        testProperty "the reference verifier accepts what the sidecar sends, whatever the body and id"
        <| Prop.forAll body (fun (id, text) ->
            let secret = WebhookSecret.generate ()

            let headers =
                Signature.headers [ secretOf secret ] (idOf id) DateTimeOffset.UtcNow (bytes text)

            verify secret headers text)

        // Catches a signature that does not cover the body, the id or the timestamp.
        test "the reference verifier refuses the delivery if the body, the id or the timestamp changes" {
            let secret = WebhookSecret.generate ()
            let sentAt = DateTimeOffset.UtcNow

            let headers =
                Signature.headers [ secretOf secret ] (idOf "msg_1") sentAt (bytes "{}")

            verify secret headers "{}"
            refused secret headers "{ }" "another body"

            let replace name value =
                headers |> List.map (fun (n, v) -> n, (if n = name then value else v))

            refused secret (replace Signature.IdHeader "msg_2") "{}" "another id"

            refused
                secret
                (replace Signature.TimestampHeader (Signature.timestamp (sentAt.AddSeconds 1.0)))
                "{}"
                "another timestamp"

            refused (WebhookSecret.generate ()) headers "{}" "another secret"
        }

        // Catches a rollover that signs with one secret only or joins signatures otherwise than by a space.
        // The package's verifier never reaches the last of several signatures (its loop ends first), so
        // each signature is also given to it alone.
        test "with two secrets the header holds one signature per secret, separated by a space" {
            let oldSecret, newSecret = WebhookSecret.generate (), WebhookSecret.generate ()

            let headers =
                Signature.headers
                    [ secretOf oldSecret; secretOf newSecret ]
                    (idOf "msg_1")
                    DateTimeOffset.UtcNow
                    (bytes "{}")

            let signatures =
                (headers |> List.find (fst >> (=) Signature.SignatureHeader) |> snd).Split ' '

            Expect.equal signatures.Length 2 "two signatures"
            verify oldSecret headers "{}"

            for secret, signature in Array.zip [| oldSecret; newSecret |] signatures do
                let alone =
                    headers
                    |> List.map (fun (n, v) -> n, (if n = Signature.SignatureHeader then signature else v))

                verify secret alone "{}"
        }

        test "the timestamp is whole seconds since the Unix epoch" {
            Expect.equal
                (Signature.timestamp (DateTimeOffset(2021, 2, 25, 15, 2, 10, 999, TimeSpan.Zero)))
                "1614265330"
                "seconds"
        }

        // Catches a secret accepted without its prefix, with bad base64, or too short to be one.
        test "a secret is whsec_ then the base64 of 24 to 64 bytes, and its message never shows it" {
            let key n =
                Convert.ToBase64String(Array.create n 7uy)

            for bad in
                [
                    key 32
                    "whsec_" + key 23
                    "whsec_" + key 65
                    "whsec_not base64!"
                    "WHSEC_" + key 32
                    null
                ] do
                match WebhookSecret.tryParse bad with
                | Ok _ -> failtest $"accepted {bad}"
                | Error message ->
                    if not (isNull bad) then
                        Expect.isFalse (message.Contains(key 32)) "the key is not in the message"

            Expect.isOk (WebhookSecret.tryParse ("whsec_" + key 24)) "24 bytes"
            Expect.isOk (WebhookSecret.tryParse ("whsec_" + key 64)) "64 bytes"
            Expect.equal (string (secretOf vectorSecret)) "whsec_…" "ToString hides it"
        }

        // Catches an id with a dot (ambiguous signed content) or a line break (header injection).
        test "a message id is 1 to 64 letters, digits, underscores or dashes" {
            for bad in [ ""; "a.b"; "msg\r\n1"; String('a', 65); "é"; null ] do
                Expect.isNone (MessageId.tryCreate bad) $"{bad}"

            Expect.isSome (MessageId.tryCreate (String('a', 64))) "64 characters"
        }
    ]
