namespace Callback.Calls

open System
open System.IO
open System.Security.Cryptography
open System.Text
open Callback.Domain

/// The install's secret for keying numbers: the store finds a number's calls by HMAC-SHA256 of its digits,
/// so once a call is final it holds no searchable full number (a plain hash of an 11-digit number is
/// reversed by trying them all; an HMAC is not, without the key).
type NumberKey = private NumberKey of byte[]

[<RequireQualifiedAccess>]
module NumberKey =

    /// The generated key's file in the data directory (owner read/write only).
    [<Literal>]
    let FileName = "number.key"

    /// The shortest `Data__NumberKey` taken: 32 characters.
    [<Literal>]
    let MinLength = 32

    /// A configured key (`Data__NumberKey`): its UTF-8 bytes, at least `MinLength` characters.
    let ofSecret (secret: string) =
        if isNull secret || secret.Trim().Length < MinLength then
            Result.Error $"Data__NumberKey must be at least {MinLength} characters."
        else
            Ok(NumberKey(Encoding.UTF8.GetBytes secret))

    /// The number's key: lower-case hex of HMAC-SHA256 over its 11 digits.
    let of' (NumberKey key) (number: PhoneNumber) =
        Convert.ToHexStringLower(HMACSHA256.HashData(key, Encoding.ASCII.GetBytes number.Digits))

    let private create (path: string) =
        let key = RandomNumberGenerator.GetBytes 32

        let options =
            FileStreamOptions(Mode = FileMode.CreateNew, Access = FileAccess.Write)

        if not (OperatingSystem.IsWindows()) then
            options.UnixCreateMode <- UnixFileMode.UserRead ||| UnixFileMode.UserWrite

        use file = new FileStream(path, options)
        file.Write(key, 0, key.Length)
        file.Flush true
        key

    /// `configured` if set; else the key generated once into `directory` (32 random bytes, mode 0600) and
    /// read back on every later start. A key file of another size is refused, never replaced: replacing it
    /// would forget every number's duplicates.
    let load (configured: string option) (directory: string) : Result<NumberKey, string> =
        match configured with
        | Some secret -> ofSecret secret
        | None ->
            let path = Path.Combine(directory, FileName)

            try
                let key =
                    try
                        create path
                    with :? IOException when File.Exists path ->
                        File.ReadAllBytes path

                if key.Length = 32 then
                    Ok(NumberKey key)
                else
                    Result.Error
                        $"Data__Path '{directory}': {FileName} is not a 32-byte key; restore it or set Data__NumberKey."
            with
            | :? UnauthorizedAccessException
            | :? IOException as e ->
                Result.Error $"Data__Path '{directory}': {FileName} cannot be read or made ({e.Message})."
