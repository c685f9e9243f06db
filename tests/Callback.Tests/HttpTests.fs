module Callback.Tests.HttpTests

open System
open System.Net
open System.Net.Http
open System.Text
open System.Text.Json
open Expecto
open Callback.Tests.FakeAmi
open Callback.Tests.Loopback
open Callback.Tests.TestSidecar

let private secret = "s3cret-Value"

/// The sidecar configured for a fake AMI server on `port`, trusting the test CA.
let private fakeAmiSidecarWith (extra: (string * string) list) (port: int) =
    new Sidecar(fakeAmiConfig (("Ami:Secret", secret) :: ("Ami:ResponseTimeout", "400") :: extra) port)

let private fakeAmiSidecar = fakeAmiSidecarWith []

let private withSidecar (answer: ReceivedAction -> Reply) (f: Server -> Sidecar -> unit) =
    use server = new Server(script answer, Some pki.Value.Server)
    use sidecar = fakeAmiSidecar server.Port
    f server sidecar

let private valid = [ "phoneNumber", TestNumbers.Allowed; "language", "EN" ]

let private allTrue = [ true; true; true; true; true ]

/// `content` sent as a form (application/x-www-form-urlencoded), whatever its bytes and however it is sent.
let private asForm (content: HttpContent) =
    content.Headers.ContentType <- Headers.MediaTypeHeaderValue "application/x-www-form-urlencoded"
    content

[<Tests>]
let statuses =
    testList "POST /callback" [
        test "a form that Asterisk spools answers 200, five true booleans and the call id" {
            withSidecar asterisk (fun server sidecar ->
                let status, body = sidecar.Post(form valid)
                Expect.equal status HttpStatusCode.OK "200"
                Expect.equal (stages body) allTrue "booleans"
                Expect.isTrue (hasProperty "callId" body) "callId"

                Expect.stringContains
                    server.Received
                    $"Channel: PJSIP/{TestNumbers.AllowedDigits}@trunk\r\n"
                    "number normalised"

                Expect.stringContains server.Received "Context: callback-en\r\n" "language context")
        }

        test "a JSON body works like the form" {
            withSidecar asterisk (fun _ sidecar ->
                let status, body =
                    sidecar.Post(jsonBody (sprintf """{"phoneNumber":"%s","language":"fr"}""" TestNumbers.Allowed))

                Expect.equal status HttpStatusCode.OK "200"
                Expect.equal (stages body) allTrue "booleans")
        }

        test "an unreachable Asterisk answers 503 with socket false" {
            use sidecar = fakeAmiSidecar (freePort ())
            let status, body = sidecar.Post(form valid)
            Expect.equal status HttpStatusCode.ServiceUnavailable "503"
            Expect.equal (stages body) [ false; false; false; false; false ] "booleans"
            Expect.isFalse (hasProperty "callId" body) "no callId"
        }

        test "a refused Login answers 502 with amiLogin false, and the secret is in no log line" {
            withSidecar (refusing "Login" "Authentication failed") (fun _ sidecar ->
                let status, body = sidecar.Post(form valid)
                Expect.equal status HttpStatusCode.BadGateway "502"
                Expect.equal (stages body) [ true; false; false; false; false ] "booleans"
                Expect.isNonEmpty sidecar.Log "the failure is logged"
                Expect.all sidecar.Log (fun line -> not (line.Contains secret)) "secret never logged"

                Expect.all
                    sidecar.Log
                    (fun line -> not (line.Contains(TestNumbers.AllowedDigits.Substring 1)))
                    "number masked")
        }

        test "a refused Originate answers 502 with Logoff still true" {
            withSidecar (refusing "Originate" "Originate failed") (fun _ sidecar ->
                let status, body = sidecar.Post(form valid)
                Expect.equal status HttpStatusCode.BadGateway "502"
                Expect.equal (stages body) [ true; true; false; true; false ] "booleans")
        }

        test "a failed Logoff after a spooled call still answers 200" {
            withSidecar (asteriskExcept "Logoff" (fun _ -> Close)) (fun _ sidecar ->
                let status, body = sidecar.Post(form valid)
                Expect.equal status HttpStatusCode.OK "200"
                Expect.equal (stages body) [ true; true; true; false; true ] "booleans")
        }

        test "invalid fields answer 422 with every error and open no AMI connection" {
            withSidecar asterisk (fun server sidecar ->
                let status, body = sidecar.Post(form [ "phoneNumber", "911"; "language", "de" ])
                Expect.equal status HttpStatusCode.UnprocessableEntity "422"
                Expect.equal (errorFields body) [ "phoneNumber"; "language" ] "both fields reported"
                Expect.equal (stages body) [ false; false; false; false; false ] "booleans"
                Expect.equal server.Sessions 0 "no connection")
        }

        test "another content type answers 415" {
            withSidecar asterisk (fun server sidecar ->
                let status, _ =
                    sidecar.Post(new StringContent("phoneNumber=5145550234", Encoding.UTF8, "text/plain"))

                Expect.equal status HttpStatusCode.UnsupportedMediaType "415"
                Expect.equal server.Sessions 0 "no connection")
        }

        test "a body over 8 KiB answers 413, with or without Content-Length" {
            withSidecar asterisk (fun server sidecar ->
                let big = String('1', 9000)
                let status, _ = sidecar.Post(form [ "phoneNumber", big; "language", "en" ])
                Expect.equal status HttpStatusCode.RequestEntityTooLarge "413 with a length"

                // Truly chunked: no Content-Length, so only the streaming limit in readBody can refuse
                // it (without that check the whole body is read and answered 422).
                let chunked = asForm (chunkedBody (Encoding.UTF8.GetBytes("phoneNumber=" + big)))
                Expect.isFalse chunked.Headers.ContentLength.HasValue "no Content-Length is sent"
                let status, body = sidecar.Post chunked
                Expect.equal status HttpStatusCode.RequestEntityTooLarge "413 without a length"
                Expect.equal (errorFields body) [ "body" ] "the body is named"
                Expect.equal server.Sessions 0 "no connection")
        }

        test "malformed JSON and a form that is not UTF-8 answer 400" {
            withSidecar asterisk (fun server sidecar ->
                let status, _ = sidecar.Post(jsonBody """{"phoneNumber": "5145550234", """)
                Expect.equal status HttpStatusCode.BadRequest "broken JSON"

                let notUtf8 =
                    asForm (new ByteArrayContent([| yield! Encoding.ASCII.GetBytes "phoneNumber="; 0xFFuy; 0xFEuy |]))

                let status, _ = sidecar.Post notUtf8
                Expect.equal status HttpStatusCode.BadRequest "broken form"
                Expect.equal server.Sessions 0 "no connection")
        }

        test "GET is not allowed on /callback" {
            withSidecar asterisk (fun _ sidecar ->
                let response = sidecar.Client.GetAsync("/callback").Result
                Expect.equal response.StatusCode HttpStatusCode.MethodNotAllowed "405")
        }

        test "the demo page is served at / only when Demo__Enabled is true" {
            use server = new Server(script asterisk, Some pki.Value.Server)
            use plain = fakeAmiSidecar server.Port
            Expect.equal (plain.Client.GetAsync("/").Result.StatusCode) HttpStatusCode.NotFound "off by default"
            use demo = fakeAmiSidecarWith [ "Demo:Enabled", "true" ] server.Port
            let response = demo.Client.GetAsync("/").Result
            Expect.equal response.StatusCode HttpStatusCode.OK "on"
            Expect.equal (string response.Content.Headers.ContentType.MediaType) "text/html" "HTML"
            Expect.stringContains (response.Content.ReadAsStringAsync().Result) "<form id=\"callback\">" "the form"
        }

        test "/healthz answers 200 without touching AMI" {
            withSidecar asterisk (fun server sidecar ->
                let response = sidecar.Client.GetAsync("/healthz").Result
                Expect.equal response.StatusCode HttpStatusCode.OK "200"
                Expect.equal server.Sessions 0 "no connection")
        }
    ]

let private badForms = [
    "CR in the number", [ "phoneNumber", "514 555 0234\r"; "language", "fr" ]
    "LF in the number", [ "phoneNumber", "5145550234\nAction: Originate"; "language", "fr" ]
    "CR LF in the language", [ "phoneNumber", "5145550234"; "language", "fr\r\nAction: Originate" ]
    "NUL in the number", [ "phoneNumber", "514555\u00000234"; "language", "en" ]
    "Arabic-Indic digits", [ "phoneNumber", "٥١٤٥٥٥٠٢٣٤"; "language", "en" ]
    "full-width digits", [ "phoneNumber", "５１４５５５０２３４"; "language", "en" ]
    "40 digits", [ "phoneNumber", String('5', 40); "language", "en" ]
    "an empty number", [ "phoneNumber", ""; "language", "en" ]
    "an empty language", [ "phoneNumber", "5145550234"; "language", "" ]
    "a language we do not announce in", [ "phoneNumber", "5145550234"; "language", "de" ]
    "no fields at all", []
    "an emergency number", [ "phoneNumber", "911"; "language", "en" ]
    "a premium-rate number", [ "phoneNumber", "1 900 555 0123"; "language", "en" ]
    "the number given twice", [ "phoneNumber", "5145550234"; "phoneNumber", "5145550235"; "language", "en" ]
]

let private badJson = [
    "a number as a JSON number", """{"phoneNumber": 5145550234, "language": "fr"}"""
    "a number as an array", """{"phoneNumber": ["5145550234"], "language": "fr"}"""
    "a language as a boolean", """{"phoneNumber": "5145550234", "language": true}"""
    "a number as an object", """{"phoneNumber": {"digits": "5145550234"}, "language": "fr"}"""
    "an array body", """["5145550234", "fr"]"""
    "a string body", "\"5145550234\""
    "an escaped CR LF", """{"phoneNumber": "5145550234\r\nAction: Originate", "language": "fr"}"""
]

[<Tests>]
let badInput =
    testSequenced
    <| testList "bad input gets a 4xx and no AMI traffic" [
        let cases = [
            for name, fields in badForms -> $"form: {name}", (fun () -> form fields)
            for name, text in badJson -> $"JSON: {name}", (fun () -> jsonBody text)
        ]

        for name, content in cases ->
            test name {
                withSidecar asterisk (fun server sidecar ->
                    let status, body = sidecar.Post(content ())
                    Expect.isGreaterThanOrEqual (int status) 400 "4xx"
                    Expect.isLessThan (int status) 500 "4xx"
                    Expect.equal (stages body) [ false; false; false; false; false ] "five false booleans"
                    Expect.isNonEmpty (errorFields body) "an error says why"
                    Expect.equal server.ReceivedByteCount 0L "zero AMI bytes"
                    Expect.equal server.Sessions 0 "no AMI connection")
            }
    ]
