/// Reading the callback's fields from a body, without HTTP: which format a content type names, and what
/// each body gives.
module Callback.Tests.BodyTests

open System.Text
open System.Text.Json
open Expecto
open Callback.Domain
open Callback.Http

let private utf8 (text: string) = Encoding.UTF8.GetBytes text

let private statusOf (result: Result<_, BodyRefusal>) =
    match result with
    | Ok _ -> None
    | Error refusal -> Some refusal.Status

let private fields (result: Result<BoundForm, BodyRefusal>) =
    match result with
    | Ok form -> form.PhoneNumber, form.Language
    | Error refusal -> failtestf "refused with %d" refusal.Status

let private callAtOf (result: Result<BoundForm, BodyRefusal>) =
    match result with
    | Ok form -> form.CallAt
    | Error refusal -> failtestf "refused with %d" refusal.Status

let private once name : BoundField =
    Error {
        Field = name
        Message = "Give this field once."
    }

[<Tests>]
let tests =
    testList "Body" [
        test "JSON and forms are read, in UTF-8 only, and the media type in any case" {
            Expect.equal (Body.format "application/json") (Ok Json) "JSON"
            Expect.equal (Body.format "Application/JSON; charset=UTF-8") (Ok Json) "any case, UTF-8"
            Expect.equal (Body.format "application/x-www-form-urlencoded; charset=\"utf8\"") (Ok Form) "utf8, quoted"
            Expect.equal (statusOf (Body.format "application/json; charset=utf-16")) (Some 415) "UTF-16"
            Expect.equal (statusOf (Body.format "text/plain")) (Some 415) "another type"
            Expect.equal (statusOf (Body.format null)) (Some 415) "no content type"
        }

        test "bytes that are not UTF-8 are refused with 400 in either format, before parsing" {
            for format in [ Json; Form ] do
                Expect.equal (statusOf (Body.read format [| 0x7Buy; 0xFFuy; 0x7Duy |])) (Some 400) $"{format}"
        }

        test "a lone surrogate escape anywhere in the JSON is refused with 400" {
            for text in [ """{"phoneNumber":"\ud800"}"""; """{"x":["\udfff"]}"""; """{"\ud800":1}""" ] do
                Expect.equal (statusOf (Body.read Json (utf8 text))) (Some 400) text
        }

        test "a JSON body that is not an object is refused with 422, naming the body" {
            match Body.read Json (utf8 "[1]") with
            | Error refusal ->
                Expect.equal refusal.Status 422 "422"
                Expect.equal (refusal.Errors |> List.map _.Field) [ "body" ] "the body"
            | Ok _ -> failtest "an array is no form"
        }

        test "each JSON field is read on its own: a wrong type does not hide the other field" {
            let phone, language =
                fields (Body.read Json (utf8 """{"phoneNumber":5,"language":"xx"}"""))

            Expect.isError phone "a number is not a string"
            Expect.equal language (Ok(Some "xx")) "the language is still read"
        }

        test "a JSON key given twice, in any case, is refused like a repeated form field" {
            let json = """{"phoneNumber":"1","PhoneNumber":"2","language":"en"}"""
            Expect.equal (fst (fields (Body.read Json (utf8 json)))) (once "phoneNumber") "JSON"
            let form = "phoneNumber=1&PhoneNumber=2&language=en"
            Expect.equal (fst (fields (Body.read Form (utf8 form)))) (once "phoneNumber") "form"
        }

        test "null and an absent field are both not given" {
            let phone, language = fields (Body.read Json (utf8 """{"phoneNumber":null}"""))
            Expect.equal phone (Ok None) "null"
            Expect.equal language (Ok None) "absent"
        }

        // Catches callAt left unbound in one format, or bound without the checks the other fields get.
        test "callAt is read from JSON and forms like the other fields: absent, a string, given once" {
            let text = "2026-12-03T09:30:00+01:00"

            Expect.equal (callAtOf (Body.read Json (utf8 $"""{{"callAt":"{text}"}}"""))) (Ok(Some text)) "JSON"
            Expect.equal (callAtOf (Body.read Json (utf8 $"""{{"CALLAT":"{text}"}}"""))) (Ok(Some text)) "any case"

            Expect.equal
                (callAtOf (Body.read Form (utf8 "callAt=2026-12-03T09%3A30%3A00%2B01%3A00")))
                (Ok(Some text))
                "form"

            Expect.equal (callAtOf (Body.read Json (utf8 """{"phoneNumber":"1"}"""))) (Ok None) "absent"
            Expect.isError (callAtOf (Body.read Json (utf8 """{"callAt":1764750600}"""))) "a number is not a string"
            Expect.equal (callAtOf (Body.read Form (utf8 "callAt=a&callAt=b"))) (once "callAt") "twice"
        }

        test "every string of a document is Unicode text, or the document is not" {
            use good = JsonDocument.Parse """{"a":["é",{"b":"\ud83d\ude00"}]}"""
            use bad = JsonDocument.Parse """{"a":["é",{"b":"\ude00"}]}"""
            Expect.isTrue (JsonText.isUnicode good.RootElement) "a surrogate pair is text"
            Expect.isFalse (JsonText.isUnicode bad.RootElement) "a lone one is not"
        }
    ]
