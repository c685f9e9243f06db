/// Every answer carries the contract (five false booleans and `errors`), whoever gives it: our handlers,
/// routing, a body Kestrel could not read, an unexpected exception.
module Callback.Tests.HttpContractTests

open System
open System.Net
open System.Net.Http
open System.Text
open Expecto
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.TestHost
open Microsoft.Extensions.Logging
open Callback.Http
open Callback.Tests.FakeAmi
open Callback.Tests.TestSidecar

let private allFalse = [ false; false; false; false; false ]

/// The sidecar on a fake Asterisk that counts what reaches it.
let withSidecar (f: Server -> Sidecar -> unit) =
    use server = new Server(script asterisk, Some pki.Value.Server)

    use sidecar =
        new Sidecar(fakeAmiConfig [ "Ami:ResponseTimeout", "5000" ] server.Port)

    f server sidecar

/// The answer is the contract: five false booleans and at least one error.
let expectContract (body: string) =
    Expect.equal (stages body) allFalse "five false booleans"
    Expect.isNonEmpty (errorFields body) "an error says why"

let private bytes (parts: obj list) = [|
    for p in parts do
        match p with
        | :? string as s -> yield! Encoding.ASCII.GetBytes s
        | :? (byte[]) as b -> yield! b
        | _ -> failwith "string or bytes"
|]

let private rawJson (body: byte[]) =
    let content = new ByteArrayContent(body)
    content.Headers.ContentType <- Headers.MediaTypeHeaderValue "application/json"
    content :> HttpContent

/// A bare app with only the error answers and `POST /boom` answered by `endpoint`: what the middleware
/// does, apart from any handler of ours.
let private bareApp (endpoint: RequestDelegate) (f: HttpClient -> CapturedLog -> unit) =
    let log = new CapturedLog()
    let builder = WebApplication.CreateBuilder()
    builder.WebHost.UseTestServer() |> ignore
    builder.Logging.ClearProviders().AddProvider log |> ignore
    ErrorAnswers.addServices builder.Services
    use app = builder.Build()
    ErrorAnswers.usePipeline app
    app.MapPost("/boom", endpoint) |> ignore
    app.StartAsync().Wait()
    use client = app.GetTestClient()
    f client log
    app.StopAsync().Wait()

/// The bare app whose `POST /boom` throws `error`.
let throwing (error: exn) =
    bareApp (RequestDelegate(fun _ -> raise error))

let private stackTraceIn (lines: string list) =
    lines |> List.exists (fun line -> line.Contains "   at ")

[<Tests>]
let frameworkAnswers =
    testList "Every answer in the contract" [
        test "GET /callback answers 405 in the contract, with Allow: POST" {
            withSidecar (fun server sidecar ->
                let response = sidecar.Client.GetAsync("/callback").Result
                Expect.equal response.StatusCode HttpStatusCode.MethodNotAllowed "405"
                Expect.equal (response.Content.Headers.ContentType.MediaType) "application/json" "JSON"
                expectContract (response.Content.ReadAsStringAsync().Result)
                Expect.equal (errorFields (response.Content.ReadAsStringAsync().Result)) [ "method" ] "method named"
                Expect.contains (response.Content.Headers.Allow) "POST" "Allow: POST"
                Expect.equal server.Sessions 0 "no AMI")
        }

        test "an unknown path answers 404 in the contract and does not echo the path" {
            withSidecar (fun _ sidecar ->
                let response = sidecar.Client.GetAsync("/callback/5145550234").Result
                let body = response.Content.ReadAsStringAsync().Result
                Expect.equal response.StatusCode HttpStatusCode.NotFound "404"
                expectContract body
                Expect.isFalse (body.Contains "5145550234") "path not echoed")
        }

        test "an answer left empty (as a rate limiter's 429 or a refusal at shutdown) gets the contract's body" {
            for status in [ 403; 429; 503 ] do
                let empty =
                    RequestDelegate(fun ctx ->
                        ctx.Response.StatusCode <- status
                        Threading.Tasks.Task.CompletedTask)

                bareApp empty (fun client _ ->
                    let response = client.PostAsync("/boom", new StringContent("x")).Result
                    Expect.equal (int response.StatusCode) status "the status is kept"
                    expectContract (response.Content.ReadAsStringAsync().Result))
        }

        test "an unexpected exception answers 500 in the contract and logs neither body nor secret" {
            throwing (InvalidOperationException "boom") (fun client log ->
                let response =
                    client.PostAsync("/boom", new StringContent("phoneNumber=5145550234&secret=s3cret")).Result

                Expect.equal response.StatusCode HttpStatusCode.InternalServerError "500"
                expectContract (response.Content.ReadAsStringAsync().Result)
                Expect.exists log.Lines (fun l -> l.Contains "boom") "the exception is logged"
                Expect.all log.Lines (fun l -> not (l.Contains "5145550234" || l.Contains "s3cret")) "no body")
        }

        test "a body Kestrel cannot read answers its own status, logged as one line without a stack trace" {
            throwing (BadHttpRequestException("Reading the request body timed out.", 408)) (fun client log ->
                let response = client.PostAsync("/boom", new StringContent("x")).Result
                Expect.equal response.StatusCode HttpStatusCode.RequestTimeout "408, not 500"
                expectContract (response.Content.ReadAsStringAsync().Result)
                let ours = log.Lines |> List.filter (fun l -> l.Contains "ClientErrors")
                let loud = log.Lines |> List.filter (fun l -> not (l.StartsWith "Information"))
                Expect.equal ours.Length 1 "one line of ours"
                Expect.isEmpty loud "no warning or error from the framework either"
                Expect.isFalse (stackTraceIn log.Lines) "no stack trace")
        }
    ]

[<Tests>]
let jsonDefects =
    testList "JSON bodies the decoder must refuse" [
        for name, text in
            [
                "a lone high surrogate in the number", """{"phoneNumber":"\ud800","language":"en"}"""
                "a lone low surrogate in the language", """{"phoneNumber":"5145550234","language":"\udfff"}"""
                "a lone surrogate in a key we do not read",
                """{"phoneNumber":"5145550234","language":"en","\ud800":1}"""
            ] ->
            test $"{name} answers 400, not 500, with no error logged" {
                withSidecar (fun server sidecar ->
                    let status, body = sidecar.Post(jsonBody text)
                    Expect.equal status HttpStatusCode.BadRequest "400"
                    expectContract body
                    Expect.isFalse (stackTraceIn sidecar.Log) "no stack trace"
                    Expect.equal server.ReceivedByteCount 0L "no AMI")
            }

        for name, raw in
            [
                "FF", [| 0xFFuy |]
                "the overlong C0 AF", [| 0xC0uy; 0xAFuy |]
                "an encoded surrogate ED A0 80", [| 0xEDuy; 0xA0uy; 0x80uy |]
                "a Latin-1 é (E9)", [| 0xE9uy |]
            ] ->
            test $"raw invalid UTF-8 ({name}) inside a string answers 400" {
                withSidecar (fun server sidecar ->
                    let body = bytes [ """{"phoneNumber":"514555"""; raw; """0123","language":"en"}""" ]
                    let status, answer = sidecar.Post(rawJson body)
                    Expect.equal status HttpStatusCode.BadRequest "400"
                    expectContract answer
                    Expect.isFalse (stackTraceIn sidecar.Log) "no stack trace"
                    Expect.equal server.ReceivedByteCount 0L "no AMI")
            }

        yield
            test "a key given twice is refused with 422, like a repeated form field" {
                withSidecar (fun server sidecar ->
                    let status, body =
                        sidecar.Post(jsonBody """{"phoneNumber":"5145550234","phoneNumber":"9999","language":"en"}""")

                    Expect.equal status HttpStatusCode.UnprocessableEntity "422"
                    Expect.equal (errorFields body) [ "phoneNumber" ] "the field is named"
                    Expect.stringContains body "Give this field once." "same wording as the form"
                    Expect.equal server.ReceivedByteCount 0L "no AMI")
            }

        yield
            test "a type error and an invalid field are reported together" {
                withSidecar (fun _ sidecar ->
                    let status, body = sidecar.Post(jsonBody """{"phoneNumber": 5, "language": "xx"}""")
                    Expect.equal status HttpStatusCode.UnprocessableEntity "422"
                    Expect.equal (errorFields body) [ "phoneNumber"; "language" ] "both fields")
            }

        yield
            test "a JSON body that declares another charset than UTF-8 answers 415" {
                withSidecar (fun server sidecar ->
                    let content = jsonBody """{"phoneNumber":"5145550234","language":"en"}"""
                    content.Headers.ContentType.CharSet <- "utf-16"
                    let status, body = sidecar.Post content
                    Expect.equal status HttpStatusCode.UnsupportedMediaType "415"
                    expectContract body
                    Expect.equal server.Sessions 0 "no AMI")
            }
    ]
