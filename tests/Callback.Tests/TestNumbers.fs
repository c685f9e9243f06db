/// The phone numbers tests post. No test ever leaves loopback, so no phone really rings; but every number
/// here must pass the default destination policy, which refuses the fictional 555-0100 … 555-0199 range
/// that examples usually use. (514) 555-0123 stays only in the tests that prove it is refused.
module Callback.Tests.TestNumbers

/// A Montreal number the default policy allows; libphonenumber calls it FIXED_LINE_OR_MOBILE.
[<Literal>]
let Allowed = "(514) 555-0234"

/// `Allowed` as the 11-digit dial string the sidecar originates.
[<Literal>]
let AllowedDigits = "15145550234"

/// A number as a visitor types it and as the sidecar dials it.
type TestNumber = { Typed: string; Digits: string }

/// The `n`-th (0 … 99) of other allowed numbers, +1 514 555 03nn, for tests that find their own call in
/// a log shared with other calls.
let distinct (n: int) =
    if n < 0 || n > 99 then
        invalidArg (nameof n) "0 … 99"

    {
        Typed = $"+1 514 555 03{n:D2}"
        Digits = $"151455503{n:D2}"
    }
