module Callback.Tests.PhoneNumberTests

open System
open Expecto
open Callback.Domain

let private digitsOf (result: Result<PhoneNumber, PhoneNumberError>) = result |> Result.map _.Digits

let private accepts (input: string) (expected: string) =
    Expect.equal (digitsOf (PhoneNumber.tryParse input)) (Ok expected) $"%A{input} should give {expected}"

let private refuses (input: string) (expected: PhoneNumberError) =
    Expect.equal (digitsOf (PhoneNumber.tryParse input)) (Error expected) $"%A{input} should be refused"

[<Tests>]
let tests =
    testList "PhoneNumber" [
        testList "accepts" [
            test "the usual ways of writing a number all give the same 11 digits" {
                for input in
                    [
                        "(514) 555-0123"
                        "+1 514.555.0123"
                        "514 555 0123"
                        "1-514-555-0123"
                        "5145550123"
                    ] do
                    accepts input "15145550123"
            }

            test "ten digits get the leading 1" {
                accepts "2125550123" "12125550123"
                accepts "4165550199" "14165550199"
            }

            test "eleven digits starting with 1 are kept as they are" {
                accepts "12025550123" "12025550123"
                accepts "+16135550100" "16135550100"
            }

            test "formatting before the + is allowed" {
                accepts " +1 (416) 555-0123" "14165550123"
                accepts "(+1) 514 555 0123" "15145550123"
                accepts "(+1 514) 555-0123" "15145550123"
            }

            test "a toll-free number is a US number" { accepts "1 800 555 0123" "18005550123" }

            test "input of exactly MaxInputLength characters is still read" {
                let input = "514 555 0123".PadLeft PhoneNumber.MaxInputLength
                Expect.equal input.Length 40 "the padded input"
                accepts input "15145550123"
            }
        ]

        testList "refuses" [
            test "empty, blank and null input is Missing" {
                for input in [ ""; "   "; null; "\t \r\n" ] do
                    refuses input Missing
            }

            test "formatting without a single digit is Missing" { refuses "( ) - ." Missing }

            test "input longer than MaxInputLength characters is TooLong, whatever it holds" {
                refuses ("514 555 0123".PadLeft(PhoneNumber.MaxInputLength + 1)) TooLong
                refuses (String('5', 41)) TooLong
            }

            test "eleven digits not starting with 1 are WrongLength" { refuses "25145550123" (WrongLength 11) }

            test "nine, twelve and forty digits are WrongLength" {
                refuses "514555012" (WrongLength 9)
                refuses "151455501234" (WrongLength 12)
                refuses (String('5', 40)) (WrongLength 40)
            }

            // Bare N11 codes are too short to reach the N11 check: the visitor is told the length is wrong.
            test "a bare 911 or 411 is WrongLength" {
                refuses "911" (WrongLength 3)
                refuses "411" (WrongLength 3)
            }

            test "an N11 area code is a ServiceCode" {
                refuses "1 (911) 555 0123" (ServiceCode "911")
                refuses "(411) 555-0123" (ServiceCode "411")
                refuses "211 555 0123" (ServiceCode "211")
            }

            test "an N11 exchange is a ServiceCode" {
                refuses "514 911 1234" (ServiceCode "911")
                refuses "(212) 411-0123" (ServiceCode "411")
                refuses "+1 416 811 0123" (ServiceCode "811")
            }

            test "area code 900 and exchange 976 are PremiumRate" {
                refuses "1 900 555 0123" PremiumRate
                refuses "514 976 0123" PremiumRate
            }

            test "Arabic-Indic and full-width digits are NonAsciiDigit" {
                refuses "٥١٤٥٥٥٠١٢٣" NonAsciiDigit
                refuses "５１４５５５０１２３" NonAsciiDigit
                refuses "514 555 ０123" NonAsciiDigit
            }

            test "CR, LF or NUL anywhere is a ControlCharacter" {
                for c in [ '\r'; '\n'; '\000' ] do
                    for input in
                        [
                            $"{c}5145550123"
                            $"514{c}5550123"
                            $"5145550123{c}"
                            $"+1 514 555 0123{c}{c}"
                        ] do
                        refuses input ControlCharacter
            }

            test "tabs and other control characters are a ControlCharacter" {
                refuses "514\t555 0123" ControlCharacter
                refuses "514\u001b555 0123" ControlCharacter
                refuses "514\u0085555 0123" ControlCharacter
            }

            test "letters are an InvalidCharacter, named" {
                refuses "514 555 O123" (InvalidCharacter 'O')
                refuses "1-800-FLOWERS" (InvalidCharacter 'F')
                refuses "514 555 0123 ext 4" (InvalidCharacter 'e')
            }

            test "a second + or a + after digits is MisplacedPlus" {
                refuses "++1 514 555 0123" MisplacedPlus
                refuses "+1 +514 555 0123" MisplacedPlus
                refuses "1+514 555 0123" MisplacedPlus
                refuses "514 555 0123+" MisplacedPlus
                refuses "( + + 1 514 555 0123" MisplacedPlus
            }

            test "numbers libphonenumber does not know as US or Canadian are NotUsOrCanada" {
                refuses "(555) 555-0123" NotUsOrCanada
                refuses "000 555 0123" NotUsOrCanada
                refuses "514 055 0123" NotUsOrCanada
            }

            test "a number elsewhere in the North American plan (Jamaica) is NotUsOrCanada" {
                refuses "1 876 927 1234" NotUsOrCanada
            }

            // "+36 1 234 5678" (Budapest, Hungary) was once accepted as 13612345678 (Corpus Christi, Texas).
            test "a + followed by a country code other than 1 is not read as a North American number" {
                refuses "+36 1 234 5678" NotUsOrCanada
                refuses "+33 1 23 45 67 89" NotUsOrCanada
            }

            // Formatting before the + once hid it: "(+36) 1 234 5678" was read as the domestic 361 234 5678.
            test "a + after formatting still marks an international number" {
                refuses "(+36) 1 234 5678" NotUsOrCanada
                refuses " (+44) 20 7946 0958" NotUsOrCanada
                refuses "-+33 1 23 45 67 89" NotUsOrCanada
                refuses "( +49 ) 30 1234567" NotUsOrCanada
                refuses ".+7 495 123 4567" NotUsOrCanada
            }

            test "a + before a country code other than 1 is NotUsOrCanada, whatever the length" {
                refuses "+44 20 7946 0958" NotUsOrCanada
                refuses "+353 1 234 5678" NotUsOrCanada
                refuses "+86 10 1234 5678" NotUsOrCanada
            }

            test "after a + the North American country code 1 is kept" { accepts "+1 514 555 0123" "15145550123" }

            test "every error has a sentence for the visitor" {
                for e in
                    [
                        Missing
                        TooLong
                        ControlCharacter
                        NonAsciiDigit
                        InvalidCharacter 'x'
                        MisplacedPlus
                        WrongLength 9
                        ServiceCode "911"
                        PremiumRate
                        NotUsOrCanada
                    ] do
                    Expect.isNotEmpty (PhoneNumber.describe e) $"%A{e}"

                Expect.stringContains (PhoneNumber.describe (ServiceCode "411")) "411" "names the code"
                Expect.stringContains (PhoneNumber.describe (WrongLength 9)) "9" "names the count"
            }
        ]
    ]
