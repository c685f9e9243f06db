namespace Callback.Domain

/// libphonenumber's kinds of number (FIXED_LINE, MOBILE, TOLL_FREE, PERSONAL_NUMBER, …).
type PhoneNumberType = PhoneNumbers.PhoneNumberType

/// Which valid numbers the owner is willing to pay to ring. Every callback is a call the owner pays for,
/// so a public form must not become a way to ring numbers that cost more than a visitor's own phone
/// (toll fraud) or that no visitor has. `PhoneNumber.tryParse` has already refused premium-rate, N11 and
/// numbers outside the US and Canada; this adds the owner's choices on top.
type DestinationPolicy = {
    /// The kinds of number, as libphonenumber classifies them, that may be rung.
    AllowedTypes: Set<PhoneNumberType>
    /// Area codes (NPA) never rung, whatever the rest says.
    DeniedAreaCodes: Set<string>
    /// When not empty, only these area codes are rung.
    AllowedAreaCodes: Set<string>
}

/// Why a valid number is not one we ring.
type DestinationRefusal =
    | NumberTypeNotAllowed of PhoneNumberType
    /// NXX-555-1212, directory assistance: a paid service, not a visitor.
    | DirectoryAssistance
    /// 555-0100 … 555-0199, reserved for fiction: nobody answers it.
    | FictionalNumber
    | AreaCodeDenied of areaCode: string
    | AreaCodeNotAllowed of areaCode: string

[<RequireQualifiedAccess>]
module DestinationPolicy =

    /// The number types a visitor really has: fixed line and mobile (libphonenumber cannot tell the two
    /// apart in North America, so most numbers are FIXED_LINE_OR_MOBILE).
    let defaultTypes =
        set [
            PhoneNumberType.FIXED_LINE
            PhoneNumberType.MOBILE
            PhoneNumberType.FIXED_LINE_OR_MOBILE
        ]

    /// The default types, every area code of the US and Canada.
    let defaults = {
        AllowedTypes = defaultTypes
        DeniedAreaCodes = Set.empty
        AllowedAreaCodes = Set.empty
    }

    /// The types an owner may allow, by libphonenumber's names. PREMIUM_RATE is not among them: it is
    /// never rung. UNKNOWN is what libphonenumber says of invalid numbers, which never get this far.
    let configurableTypes = [
        "FIXED_LINE", PhoneNumberType.FIXED_LINE
        "MOBILE", PhoneNumberType.MOBILE
        "FIXED_LINE_OR_MOBILE", PhoneNumberType.FIXED_LINE_OR_MOBILE
        "TOLL_FREE", PhoneNumberType.TOLL_FREE
        "SHARED_COST", PhoneNumberType.SHARED_COST
        "VOIP", PhoneNumberType.VOIP
        "PERSONAL_NUMBER", PhoneNumberType.PERSONAL_NUMBER
        "PAGER", PhoneNumberType.PAGER
        "UAN", PhoneNumberType.UAN
        "VOICEMAIL", PhoneNumberType.VOICEMAIL
    ]

    /// A type by its libphonenumber name (`TOLL_FREE`, case ignored); `None` for any other text,
    /// numbers included.
    let tryParseType (name: string) =
        configurableTypes
        |> List.tryFind (fun (n, _) -> System.String.Equals(n, name, System.StringComparison.OrdinalIgnoreCase))
        |> Option.map snd

    /// An area code as the North American plan writes it: three digits, the first 2 to 9.
    let tryParseAreaCode (code: string) =
        if
            code.Length = 3
            && code[0] >= '2'
            && code[0] <= '9'
            && Seq.forall System.Char.IsAsciiDigit code
        then
            Some code
        else
            None

    let private checkReservedLines (number: PhoneNumber) =
        match number.Exchange, number.Line with
        | "555", "1212" -> Error DirectoryAssistance
        | "555", line when line.StartsWith "01" -> Error FictionalNumber
        | _ -> Ok number

    let private checkAreaCode policy (number: PhoneNumber) =
        let area = number.AreaCode

        if policy.DeniedAreaCodes.Contains area then
            Error(AreaCodeDenied area)
        elif
            not policy.AllowedAreaCodes.IsEmpty
            && not (policy.AllowedAreaCodes.Contains area)
        then
            Error(AreaCodeNotAllowed area)
        else
            Ok number

    let private checkType policy (number: PhoneNumber) =
        if policy.AllowedTypes.Contains number.NumberType then
            Ok number
        else
            Error(NumberTypeNotAllowed number.NumberType)

    /// The number when the policy lets us ring it, or the first reason it does not.
    let check (policy: DestinationPolicy) (number: PhoneNumber) : Result<PhoneNumber, DestinationRefusal> =
        checkReservedLines number
        |> Result.bind (checkAreaCode policy)
        |> Result.bind (checkType policy)

    let private typeInWords (kind: PhoneNumberType) =
        match kind with
        | PhoneNumberType.TOLL_FREE -> "toll-free"
        | PhoneNumberType.SHARED_COST -> "shared-cost"
        | PhoneNumberType.PERSONAL_NUMBER -> "personal (5XX)"
        | PhoneNumberType.PAGER -> "pager"
        | PhoneNumberType.UAN -> "universal access"
        | PhoneNumberType.VOICEMAIL -> "voicemail"
        | PhoneNumberType.VOIP -> "VoIP"
        | PhoneNumberType.MOBILE -> "mobile"
        | PhoneNumberType.FIXED_LINE -> "fixed-line"
        | _ -> "this kind of"

    /// A sentence for the visitor. It names the area code at most, never the number.
    let describe (refusal: DestinationRefusal) =
        match refusal with
        | NumberTypeNotAllowed kind ->
            $"We cannot call {typeInWords kind} numbers back; give a landline or mobile number."
        | DirectoryAssistance -> "Directory assistance numbers cannot be called back."
        | FictionalNumber -> "555-0100 to 555-0199 are reserved for fiction; give a real number."
        | AreaCodeDenied area
        | AreaCodeNotAllowed area -> $"We cannot call numbers in area code {area} back."
