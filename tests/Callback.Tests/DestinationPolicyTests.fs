module Callback.Tests.DestinationPolicyTests

open Expecto
open Callback.Domain
open Callback.Tests

let private parsed (input: string) =
    match PhoneNumber.tryParse input with
    | Ok number -> number
    | Error e -> failtestf "%A should parse (%A)" input e

let private checkWith policy input =
    DestinationPolicy.check policy (parsed input) |> Result.map _.Digits

let private allows policy input =
    Expect.isOk (checkWith policy input) $"%A{input} should be allowed"

let private refuses policy input (expected: DestinationRefusal) =
    Expect.equal (checkWith policy input) (Error expected) $"%A{input} should be refused"

let private defaults = DestinationPolicy.defaults

[<Tests>]
let tests =
    testList "DestinationPolicy" [
        testList "by default" [
            test "the shared test number is FIXED_LINE_OR_MOBILE and allowed" {
                Expect.equal (parsed TestNumbers.Allowed).NumberType PhoneNumberType.FIXED_LINE_OR_MOBILE "its type"
                Expect.equal (checkWith defaults TestNumbers.Allowed) (Ok TestNumbers.AllowedDigits) "allowed"

                for n in [ 0; 42; 99 ] do
                    let number = TestNumbers.distinct n
                    Expect.equal (checkWith defaults number.Typed) (Ok number.Digits) number.Typed
            }

            test "ordinary US and Canadian numbers are allowed" {
                for input in [ "212 555 0234"; "(416) 555-0200"; "+1 604 555 9876"; "1 202 456 1111" ] do
                    allows defaults input
            }

            // Catches a default that allows every type libphonenumber knows.
            test "personal-communications 5XX numbers are refused" {
                for area in [ "500"; "533"; "544"; "566"; "577"; "588" ] do
                    refuses defaults $"{area} 234 5678" (NumberTypeNotAllowed PhoneNumberType.PERSONAL_NUMBER)
            }

            test "toll-free numbers are refused" {
                for area in [ "800"; "833"; "844"; "855"; "866"; "877"; "888" ] do
                    refuses defaults $"1 {area} 234 5678" (NumberTypeNotAllowed PhoneNumberType.TOLL_FREE)
            }

            // Catches a check on the exchange alone or on the line alone.
            test "directory assistance NXX-555-1212 is refused, in any area code" {
                for input in [ "514 555 1212"; "+1 (212) 555-1212"; "1-416-555-1212" ] do
                    refuses defaults input DirectoryAssistance

                allows defaults "514 556 1212"
                allows defaults "514 555 1213"
            }

            // Catches an off-by-one at either end of the fictional range.
            test "the fictional 555-0100 to 555-0199 range is refused, its neighbours are not" {
                for input in [ "(514) 555-0123"; "514 555 0100"; "514 555 0199"; "+1 212 555 0150" ] do
                    refuses defaults input FictionalNumber

                allows defaults "514 555 0099"
                allows defaults "514 555 0200"
                allows defaults "514 554 0123"
            }
        ]

        testList "as configured" [
            test "TOLL_FREE, when allowed, lets toll-free numbers through" {
                let policy = {
                    defaults with
                        AllowedTypes = defaults.AllowedTypes.Add PhoneNumberType.TOLL_FREE
                }

                allows policy "1 800 234 5678"
                refuses policy "500 234 5678" (NumberTypeNotAllowed PhoneNumberType.PERSONAL_NUMBER)
            }

            test "the built-in rules hold whatever types are allowed" {
                let everything = {
                    defaults with
                        AllowedTypes = DestinationPolicy.configurableTypes |> List.map snd |> Set.ofList
                }

                refuses everything "514 555 0123" FictionalNumber
                refuses everything "514 555 1212" DirectoryAssistance
                allows everything "500 234 5678"
            }

            test "a denied area code is refused, others are not" {
                let policy = {
                    defaults with
                        DeniedAreaCodes = set [ "212"; "438" ]
                }

                refuses policy "212 555 0234" (AreaCodeDenied "212")
                refuses policy "+1 438 555 0234" (AreaCodeDenied "438")
                allows policy TestNumbers.Allowed
            }

            test "with allowed area codes, only those are rung" {
                let policy = {
                    defaults with
                        AllowedAreaCodes = set [ "514"; "438" ]
                }

                allows policy TestNumbers.Allowed
                allows policy "438 555 0234"
                refuses policy "212 555 0234" (AreaCodeNotAllowed "212")
            }
        ]

        testList "settings" [
            test "type names are libphonenumber's, case ignored; anything else is not a type" {
                Expect.equal (DestinationPolicy.tryParseType "TOLL_FREE") (Some PhoneNumberType.TOLL_FREE) "exact"
                Expect.equal (DestinationPolicy.tryParseType "toll_free") (Some PhoneNumberType.TOLL_FREE) "lower"

                for bad in [ "PREMIUM_RATE"; "UNKNOWN"; "1"; "TOLL FREE"; ""; "mobiles" ] do
                    Expect.isNone (DestinationPolicy.tryParseType bad) bad
            }

            test "an area code is three digits, the first 2 to 9" {
                Expect.equal (DestinationPolicy.tryParseAreaCode "514") (Some "514") "514"

                for bad in [ "014"; "114"; "51"; "5140"; "5l4"; "٥١٤" ] do
                    Expect.isNone (DestinationPolicy.tryParseAreaCode bad) bad
            }

            test "every refusal has a sentence for the visitor that never holds the number" {
                let refusals = [
                    NumberTypeNotAllowed PhoneNumberType.TOLL_FREE
                    NumberTypeNotAllowed PhoneNumberType.PERSONAL_NUMBER
                    DirectoryAssistance
                    FictionalNumber
                    AreaCodeDenied "212"
                    AreaCodeNotAllowed "212"
                ]

                for r in refusals do
                    let sentence = DestinationPolicy.describe r
                    Expect.isNotEmpty sentence $"%A{r}"
                    Expect.isFalse (sentence.Contains TestNumbers.AllowedDigits) "no number"

                Expect.stringContains (DestinationPolicy.describe (AreaCodeDenied "212")) "212" "names the area"

                Expect.stringContains
                    (DestinationPolicy.describe (NumberTypeNotAllowed PhoneNumberType.TOLL_FREE))
                    "toll-free"
                    "names the kind"
            }
        ]
    ]
