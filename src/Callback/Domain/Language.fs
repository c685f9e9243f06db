namespace Callback.Domain

/// The language of the announcement the visitor hears.
type Language =
    | French
    | English

[<RequireQualifiedAccess>]
module Language =
    open System

    /// `FR` or `EN`, in any case; anything else is not a language we announce in.
    let tryParse (input: string) : Result<Language, string> =
        match input with
        | null -> Error "Choose FR or EN."
        | s when String.Equals(s, "FR", StringComparison.OrdinalIgnoreCase) -> Ok French
        | s when String.Equals(s, "EN", StringComparison.OrdinalIgnoreCase) -> Ok English
        | _ -> Error "Choose FR or EN."

    /// The lower-case code used in dialplan context names and `CHANNEL(language)`: `fr` or `en`.
    let code language =
        match language with
        | French -> "fr"
        | English -> "en"
