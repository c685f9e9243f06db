/// The bad-input corpus (`tests/fixtures/bad-inputs/*.txt`, one request per line) and random bodies: every
/// one is refused with a 4xx in the contract, and nothing reaches the fake Asterisk.
module Callback.Tests.BadInputTests

open System
open System.IO
open System.Net
open System.Net.Http
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Callback.Tests.FakeAmi
open Callback.Tests.TestSidecar

/// One line of the corpus.
type Case = {
    Source: string
    Status: int
    Method: string
    Path: string
    ContentType: string option
    Chunked: bool
    Body: byte[]
}

/// The corpus's escapes: `\r \n \t \0 \\`, `\xHH` (a raw byte), `\u{HHHH}` (a character, as UTF-8).
let unescape (text: string) : byte[] =
    let out = ResizeArray<byte>()
    let utf8 (s: string) = out.AddRange(Encoding.UTF8.GetBytes s)
    let mutable i = 0

    while i < text.Length do
        if text[i] = '\\' then
            match text[i + 1] with
            | 'r' -> out.Add 13uy
            | 'n' -> out.Add 10uy
            | 't' -> out.Add 9uy
            | '0' -> out.Add 0uy
            | '\\' -> out.Add 92uy
            | 'x' -> out.Add(Convert.ToByte(text.Substring(i + 2, 2), 16))
            | 'u' ->
                let close = text.IndexOf('}', i)
                utf8 (Char.ConvertFromUtf32(Convert.ToInt32(text.Substring(i + 3, close - i - 3), 16)))
            | other -> failwithf "unknown escape \\%c in %s" other text

            i <-
                match text[i + 1] with
                | 'x' -> i + 4
                | 'u' -> text.IndexOf('}', i) + 1
                | _ -> i + 2
        else
            let rune = Rune.GetRuneAt(text, i)
            utf8 (rune.ToString())
            i <- i + rune.Utf16SequenceLength

    out.ToArray()

let private parse (file: string) (number: int) (line: string) =
    match line.Split('\t') with
    | [| status; target; contentType; framing; body |] ->
        let methodName, path =
            match target.Split(' ') with
            | [| m; p |] -> m, p
            | _ -> failwithf "%s:%d: the target is METHOD PATH" file number

        {
            Source = $"{file}:{number}"
            Status = int status
            Method = methodName
            Path = path
            ContentType = if contentType = "-" then None else Some contentType
            Chunked = (framing = "chunked")
            Body = unescape body
        }
    | _ -> failwithf "%s:%d: five TAB-separated columns expected" file number

/// Every case of every file of the corpus.
let corpus =
    let folder = Path.Combine(AppContext.BaseDirectory, "fixtures", "bad-inputs")

    [
        for path in Directory.GetFiles(folder, "*.txt") |> Array.sort do
            let file = Path.GetFileName path

            for number, line in File.ReadAllLines path |> Array.indexed do
                if line <> "" && not (line.StartsWith "#") then
                    parse file (number + 1) line
    ]

let private request (case: Case) =
    let message = new HttpRequestMessage(HttpMethod case.Method, case.Path)

    let content =
        if case.Chunked then
            chunkedBody case.Body
        else
            new ByteArrayContent(case.Body) :> HttpContent

    content.Headers.ContentType <- null

    case.ContentType
    |> Option.iter (fun ct -> content.Headers.TryAddWithoutValidation("Content-Type", ct) |> ignore)

    message.Content <- content
    message

/// One fake Asterisk and one sidecar for the whole corpus: any byte that reached the fake fails the case
/// that sent it (the cases run one after another).
let private shared =
    lazy
        (let server = new Server(script asterisk, Some pki.Value.Server)

         let sidecar =
             new Sidecar(
                 fakeAmiConfig
                     [
                         "Ami:ResponseTimeout", "5000"
                         // The whole corpus comes from one client; the rate limits have tests of their own.
                         "Callback:PerClientPerMinute", "100000"
                     ]
                     server.Port
             )

         server, sidecar)

let private send (sidecar: Sidecar) (message: HttpRequestMessage) =
    use response = sidecar.Client.SendAsync(message).Result
    response, response.Content.ReadAsStringAsync().Result

let private noAmi (server: Server) =
    Expect.equal server.ReceivedByteCount 0L "zero bytes at the fake Asterisk"
    Expect.equal server.Sessions 0 "no AMI connection"

let private describe (case: Case) =
    let body = Encoding.UTF8.GetString case.Body

    let shown =
        if body.Length > 50 then
            body.Substring(0, 50) + "…"
        else
            body

    $"{case.Source} {case.Status} {case.Method} {case.Path} {shown}"

[<Tests>]
let badInputs =
    testSequenced
    <| testList "Bad-input corpus" [
        yield test "holds at least 300 cases" { Expect.isGreaterThanOrEqual corpus.Length 300 "300 cases" }

        for case in corpus ->
            test (describe case) {
                let server, sidecar = shared.Value
                use message = request case
                let response, body = send sidecar message
                Expect.equal (int response.StatusCode) case.Status $"status of {case.Source}"
                Expect.equal (string response.Content.Headers.ContentType.MediaType) "application/json" "JSON"
                Expect.equal (stages body) [ false; false; false; false; false ] "five false booleans"
                Expect.isNonEmpty (errorFields body) "an error says why"
                noAmi server
            }
    ]

let private randomBody =
    gen {
        let! bytes = Gen.arrayOf (Gen.map byte (Gen.choose (0, 255))) |> Gen.resize 300

        let! printable =
            Gen.arrayOf (Gen.elements ("phoneNumber=language&%{}\":,[]5140enFR\\u\r\n\0 +" |> Seq.map byte))
            |> Gen.resize 120
        // A JSON object whose strings hold random bytes and escapes: it parses, so what is inside the
        // strings (invalid UTF-8, lone surrogates, control characters) reaches the decoder.
        let! inside =
            Gen.elements [ "\\ud800"; "\\udfff"; "\\u0000"; "\\r\\n"; "5"; "e" ]
            |> Gen.map Encoding.ASCII.GetBytes
            |> Gen.arrayOf
            |> Gen.map Array.concat

        let! raw = Gen.arrayOf (Gen.map byte (Gen.choose (0x80, 0xFF))) |> Gen.resize 6

        let jsonObject =
            Array.concat [ "{\"phoneNumber\":\""B; inside; raw; "\",\"language\":\"en\"}"B ]

        let! which = Gen.elements [ bytes; printable; jsonObject ]
        let! json = Gen.elements [ true; false ]
        return which, json
    }

[<Tests>]
let randomBodies =
    testSequenced
    <| testList "Random bodies" [
        testPropertyWithConfig
            {
                FsCheckConfig.defaultConfig with
                    maxTest = 300
            }
            "any bytes under either content type are never a 5xx and never reach Asterisk"
        <| Prop.forAll (Arb.fromGen randomBody) (fun (body, json) ->
            let server, sidecar = shared.Value
            use message = new HttpRequestMessage(HttpMethod.Post, "/callback")
            message.Content <- new ByteArrayContent(body)

            message.Content.Headers.TryAddWithoutValidation(
                "Content-Type",
                if json then
                    "application/json"
                else
                    "application/x-www-form-urlencoded"
            )
            |> ignore

            let response, _ = send sidecar message
            int response.StatusCode < 500 && server.Sessions = 0)
    ]
