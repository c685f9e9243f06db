namespace Callback.Domain

/// Why a visitor's input is not a number we will ring.
type PhoneNumberError =
    | Missing
    | TooLong
    | ControlCharacter
    | NonAsciiDigit
    | InvalidCharacter of char
    | MisplacedPlus
    | WrongLength of digits: int
    | ServiceCode of string
    | PremiumRate
    | NotUsOrCanada

/// A North American number we could call back: exactly 11 ASCII digits, the first one `1`, a valid US
/// or Canadian number according to libphonenumber, neither premium-rate nor an N11 service code. The
/// only way to get one is `PhoneNumber.tryParse`, so nothing downstream checks it again; which of these
/// the owner pays to ring is the `DestinationPolicy`'s decision.
[<Struct; CustomEquality; NoComparison>]
type PhoneNumber =
    private
    | PhoneNumber of digits: string * kind: PhoneNumbers.PhoneNumberType

    /// The 11-digit dial string, e.g. `15145550123`.
    member this.Digits =
        let (PhoneNumber(digits, _)) = this
        digits

    /// What libphonenumber says the number is (fixed line, mobile, toll-free, personal, …), found while
    /// parsing, for the destination policy.
    member this.NumberType =
        let (PhoneNumber(_, kind)) = this
        kind

    /// The area code (NPA), e.g. `514`.
    member this.AreaCode = this.Digits.Substring(1, 3)

    /// The exchange (NXX), e.g. `555`.
    member this.Exchange = this.Digits.Substring(4, 3)

    /// The last four digits, the line number within the exchange.
    member this.Line = this.Digits.Substring 7

    override this.Equals other =
        match other with
        | :? PhoneNumber as p -> p.Digits = this.Digits
        | _ -> false

    override this.GetHashCode() = this.Digits.GetHashCode()
    override this.ToString() = this.Digits

[<RequireQualifiedAccess>]
module PhoneNumber =
    open System

    /// Longer input is refused before any work is done on it: no real number needs it.
    [<Literal>]
    let MaxInputLength = 40

    let private util = PhoneNumbers.PhoneNumberUtil.GetInstance()

    let private isFormatting c =
        c = ' ' || c = '-' || c = '.' || c = '(' || c = ')'

    /// The ASCII digits of the input and whether a `+` came before them (the number is then
    /// international), or why the input is not just digits and formatting. The `+` is found by this scan
    /// itself, so formatting before it, as in "(+36) 1 234 5678", cannot hide it.
    let private digitsOf (input: string) : Result<struct (string * bool), PhoneNumberError> =
        let digits = Text.StringBuilder(11)
        let mutable error = None
        let mutable international = false
        let mutable i = 0

        while error.IsNone && i < input.Length do
            let c = input[i]

            if Char.IsAsciiDigit c then
                digits.Append c |> ignore
            elif c = '+' then
                if digits.Length > 0 || international then
                    error <- Some MisplacedPlus
                else
                    international <- true
            elif isFormatting c then
                ()
            elif Char.IsControl c then
                error <- Some ControlCharacter
            elif Char.IsDigit c || Char.IsNumber c then
                error <- Some NonAsciiDigit
            else
                error <- Some(InvalidCharacter c)

            i <- i + 1

        match error with
        | Some e -> Error e
        | None -> Ok(struct (digits.ToString(), international))

    /// Ten digits get the leading 1; eleven are kept only when they start with 1. After a `+` the digits
    /// are an international number, so they must start with North America's country code 1: "+36 1 234
    /// 5678" is a Budapest number, not Corpus Christi's 1 361 234 5678.
    let private toNanp (struct (digits: string, international: bool)) =
        match digits.Length with
        | 0 -> Error Missing
        | _ when international && digits[0] <> '1' -> Error NotUsOrCanada
        | 10 when international -> Error NotUsOrCanada
        | 10 -> Ok("1" + digits)
        | 11 when digits[0] = '1' -> Ok digits
        | n -> Error(WrongLength n)

    /// N11 codes (211 … 911) reach emergency and community services, whether dialled as an area code or
    /// as an exchange; 900 and the 976 exchange are premium-rate. None of them is ever originated.
    let private checkReserved (nanp: string) =
        let area = nanp.Substring(1, 3)
        let exchange = nanp.Substring(4, 3)
        let isN11 (code: string) = code[1] = '1' && code[2] = '1'

        if isN11 area then Error(ServiceCode area)
        elif isN11 exchange then Error(ServiceCode exchange)
        elif area = "900" || exchange = "976" then Error PremiumRate
        else Ok nanp

    let private checkWithLibphonenumber (nanp: string) =
        try
            let parsed = util.Parse("+" + nanp, "US")

            match util.GetRegionCodeForNumber parsed with
            | "US"
            | "CA" when util.IsValidNumber parsed ->
                match util.GetNumberType parsed with
                | PhoneNumbers.PhoneNumberType.PREMIUM_RATE -> Error PremiumRate
                | kind -> Ok(PhoneNumber(nanp, kind))
            | _ -> Error NotUsOrCanada
        with :? PhoneNumbers.NumberParseException ->
            Error NotUsOrCanada

    /// Parses what a visitor typed: digits with spaces, `-`, `.`, `(`, `)` and one `+` before the digits
    /// (formatting may come first, as in "(+1) 514 555 0123").
    let tryParse (input: string) : Result<PhoneNumber, PhoneNumberError> =
        if String.IsNullOrWhiteSpace input then
            Error Missing
        elif input.Length > MaxInputLength then
            Error TooLong
        else
            digitsOf input
            |> Result.bind toNanp
            |> Result.bind checkReserved
            |> Result.bind checkWithLibphonenumber

    /// A sentence for the visitor, in the words of the form.
    let describe (error: PhoneNumberError) =
        match error with
        | Missing -> "Enter a phone number."
        | TooLong -> $"A phone number has at most {MaxInputLength} characters."
        | ControlCharacter -> "Line breaks and control characters are not allowed."
        | NonAsciiDigit -> "Use the digits 0-9 only."
        | InvalidCharacter _ -> "Only digits, spaces, '-', '.', '(', ')' and a leading '+' are allowed."
        | MisplacedPlus -> "A '+' may appear only once, before the digits."
        | WrongLength n -> $"A North American number has 10 digits, or 11 starting with 1 (got {n})."
        | ServiceCode code -> $"Service codes such as {code} cannot be called back."
        | PremiumRate -> "Premium-rate numbers cannot be called back."
        | NotUsOrCanada -> "This is not a valid US or Canadian phone number."

    /// Enough of the number to recognise a call in the log or its status, not enough to call the visitor.
    let masked (number: PhoneNumber) =
        let digits = number.Digits
        digits.Substring(0, 4) + "*****" + digits.Substring(9)
