module Callback.Tests.PhoneNumberTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Callback.Domain

let private digitsOf (result: Result<PhoneNumber, PhoneNumberError>) = result |> Result.map _.Digits

let private accepts (input: string) (expected: string) =
    Expect.equal (digitsOf (PhoneNumber.tryParse input)) (Ok expected) $"%A{input} should give {expected}"

let private refuses (input: string) (expected: PhoneNumberError) =
    Expect.equal (digitsOf (PhoneNumber.tryParse input)) (Error expected) $"%A{input} should be refused"

let private isAllowed c =
    Char.IsAsciiDigit c
    || c = ' '
    || c = '-'
    || c = '.'
    || c = '('
    || c = ')'
    || c = '+'

/// Eleven ASCII digits, the first one `1`: the only shape an accepted number may have.
let private isNanpDialString (digits: string) =
    digits.Length = 11 && digits[0] = '1' && Seq.forall Char.IsAsciiDigit digits

// Area codes that are in service in the US and Canada; every exchange 200-999 but the N11 codes and 976
// is valid behind them according to libphonenumber.
let private areaCodes =
    "201 202 206 212 213 303 305 312 404 415 416 418 438 450 503 514 604 613 617 647 702 713 778 819 905".Split ' '

let private exchange =
    Gen.choose (200, 999)
    |> Gen.map string
    |> Gen.filter (fun e -> not (e[1] = '1' && e[2] = '1') && e <> "976")

/// Ten digits that make a real US or Canadian number.
let private nationalNumber =
    gen {
        let! area = Gen.elements areaCodes
        let! exchange = exchange
        let! line = Gen.choose (0, 9999)
        return $"{area}{exchange}{line:D4}"
    }

/// The same number as a visitor may write the country code in front of it.
let private withCountryCode national =
    Gen.elements [ national; "1" + national; "+1" + national ]

let private stringOf (chars: Gen<char>) (length: int) =
    Gen.sequenceToList (List.replicate length chars)
    |> Gen.map (Array.ofList >> String)

let private formatting =
    Gen.choose (0, 2)
    |> Gen.bind (stringOf (Gen.elements [ ' '; '-'; '.'; '('; ')' ]))

/// Puts up to two formatting characters before, between and after the characters of `s`; for the 12
/// characters or fewer it is given, the result stays within `MaxInputLength`.
let private sprinkle (s: string) =
    gen {
        let! runs = Gen.sequenceToList (List.replicate (s.Length + 1) formatting)
        return String.Concat(Seq.map2 (+) runs (Seq.append (Seq.map string s) [ "" ]))
    }

let private validInput = nationalNumber |> Gen.bind withCountryCode

let private digitString =
    Gen.choose (0, 12) |> Gen.bind (stringOf (Gen.elements [ '0' .. '9' ]))

/// Strings that look like phone numbers: valid ones, digit strings of every length, and valid ones with
/// one character swapped for something a visitor (or an attacker) might type.
let private digitHeavy =
    let oddOne =
        // letters, a stray '+', symbols, control characters, non-ASCII digits, a no-break space, more digits
        Gen.elements (List.ofSeq "ax+#*/\t\r\n\000٥５\u00A0910")

    let withOddOne =
        gen {
            let! input = validInput
            let! at = Gen.choose (0, input.Length - 1)
            let! c = oddOne
            let! replace = Gen.elements [ true; false ]
            return input.Remove(at, (if replace then 1 else 0)).Insert(at, string c)
        }

    Gen.frequency [
        4, validInput |> Gen.bind sprinkle
        3, digitString |> Gen.bind sprinkle
        3, withOddOne
    ]

/// Any Unicode scalar, from ASCII to the supplementary planes, as a 1- or 2-char string.
let private anyCodePoint =
    Gen.frequency [
        3, Gen.choose (0x20, 0x7E)
        2, Gen.choose (0, 0xD7FF)
        2, Gen.choose (0xE000, 0xFFFF)
        2, Gen.choose (0x10000, 0x10FFFF)
    ]
    |> Gen.map Char.ConvertFromUtf32

let private unicodeString =
    Gen.choose (0, 45)
    |> Gen.bind (fun n -> Gen.sequenceToList (List.replicate n anyCodePoint))
    |> Gen.map String.Concat

/// A character (or surrogate pair) that has no place in a phone number, lone surrogates included.
let private foreignText =
    Gen.oneof [
        anyCodePoint |> Gen.filter (fun s -> not (s.Length = 1 && isAllowed s[0]))
        Gen.choose (0xD800, 0xDFFF) |> Gen.map (char >> string)
    ]

let private insertSomewhere (text: Gen<string>) (input: string) =
    gen {
        let! at = Gen.choose (0, input.Length)
        let! t = text
        return input.Insert(at, t)
    }

let private config = {
    FsCheckConfig.defaultConfig with
        maxTest = 500
}

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

            test "formatting before the + is allowed" { accepts " +1 (416) 555-0123" "14165550123" }

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

        testList "properties" [
            testPropertyWithConfig config "parsing its own digits gives the same number back"
            <| Prop.forAll (Arb.fromGen (validInput |> Gen.bind sprinkle)) (fun input ->
                match PhoneNumber.tryParse input with
                | Ok p ->
                    Expect.equal (PhoneNumber.tryParse p.Digits) (Ok p) "11 digits"
                    Expect.equal (PhoneNumber.tryParse (p.Digits.Substring 1)) (Ok p) "10 digits"
                | Error e -> failtest $"a valid number was refused: %A{input} %A{e}")

            testPropertyWithConfig
                config
                "adding or removing spaces, dashes, dots and brackets does not change the result"
            <| Prop.forAll
                (Arb.fromGen (
                    Gen.oneof [ validInput; digitString ]
                    |> Gen.bind (fun plain -> sprinkle plain |> Gen.map (fun s -> plain, s))
                ))
                (fun (plain, sprinkled) ->
                    Expect.equal
                        (digitsOf (PhoneNumber.tryParse sprinkled))
                        (digitsOf (PhoneNumber.tryParse plain))
                        $"%A{sprinkled} vs %A{plain}")

            testPropertyWithConfig config "a generated valid number is accepted"
            <| Prop.forAll (Arb.fromGen validInput) (fun input -> Expect.isOk (PhoneNumber.tryParse input) input)

            testPropertyWithConfig config "every accepted string is 11 ASCII digits starting with 1: arbitrary strings"
            <| fun (input: string) ->
                match PhoneNumber.tryParse input with
                | Ok p -> isNanpDialString p.Digits
                | Error _ -> true

            testPropertyWithConfig
                config
                "every accepted string is 11 ASCII digits starting with 1, the input's own digits"
            <| Prop.forAll (Arb.fromGen digitHeavy) (fun input ->
                let result = PhoneNumber.tryParse input

                let holds =
                    match result with
                    | Ok p ->
                        let typed = String(input.ToCharArray() |> Array.filter Char.IsAsciiDigit)
                        isNanpDialString p.Digits && (p.Digits = typed || p.Digits = "1" + typed)
                    | Error _ -> true

                holds |> Prop.classify (Result.isOk result) "accepted")

            test "the digit-heavy inputs are accepted often enough for that property to mean something" {
                let samples = Gen.sample 500 digitHeavy

                let accepted =
                    samples |> Array.filter (PhoneNumber.tryParse >> Result.isOk) |> Array.length

                Expect.isGreaterThan accepted 100 $"accepted {accepted} of {samples.Length}"
                Expect.isLessThan accepted 450 $"accepted {accepted} of {samples.Length}"
            }

            testPropertyWithConfig config "any input containing CR, LF or NUL is rejected"
            <| Prop.forAll
                (Arb.fromGen (
                    Gen.oneof [ digitHeavy; unicodeString ]
                    |> Gen.bind (insertSomewhere (Gen.elements [ "\r"; "\n"; "\000" ]))
                ))
                (fun input -> Expect.isError (PhoneNumber.tryParse input) $"%A{input}")

            testPropertyWithConfig config "CR, LF or NUL put into a valid number is a ControlCharacter"
            <| Prop.forAll
                (Arb.fromGen (
                    validInput
                    |> Gen.bind (insertSomewhere (Gen.elements [ "\r"; "\n"; "\000"; "\r\n" ]))
                ))
                (fun input ->
                    Expect.equal (digitsOf (PhoneNumber.tryParse input)) (Error ControlCharacter) $"%A{input}")

            testPropertyWithConfig config "random Unicode, supplementary planes included, never throws"
            <| Prop.forAll (Arb.fromGen unicodeString) (fun input ->
                match PhoneNumber.tryParse input with
                | Ok p -> isNanpDialString p.Digits
                | Error _ -> true)

            testPropertyWithConfig config "a character other than 0-9, space, - . ( ) + never yields a value"
            <| Prop.forAll
                (Arb.fromGen (Gen.oneof [ digitHeavy; validInput ] |> Gen.bind (insertSomewhere foreignText)))
                (fun input -> Expect.isError (PhoneNumber.tryParse input) $"%A{input}")

            testPropertyWithConfig
                config
                "an arbitrary string with a character outside 0-9, space, - . ( ) + never yields a value"
            <| fun (input: string) ->
                (not (isNull input) && Seq.exists (isAllowed >> not) input)
                ==> lazy Result.isError (PhoneNumber.tryParse input)
        ]
    ]
