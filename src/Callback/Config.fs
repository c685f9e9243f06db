namespace Callback

open System
open System.IO
open System.Net
open System.Security.Cryptography.X509Certificates
open Microsoft.Extensions.Configuration
open FsToolkit.ErrorHandling
open Callback.Ami
open Callback.Domain

/// How to reach and log in to Asterisk's manager interface.
type AmiSettings = {
    Endpoint: Endpoint
    Username: string
    Secret: Secret
    ResponseTimeout: TimeSpan
    /// AMI sessions open at once, at most; more callbacks wait for a free one.
    MaxSessions: int
    /// Callbacks waiting for a session, at most; past it a callback is refused at once (503).
    MaxQueued: int
    /// The largest AMI message read; a longer one is skipped (and logged), the session goes on.
    MaxMessageBytes: int
}

/// The call monitor's own manager user (`[callback-monitor]` in asterisk/manager.conf), on the host, port and
/// TLS settings of `Ami__`: one long-lived session that watches the calls this sidecar placed.
type MonitorSettings = { Username: string; Secret: Secret }

/// The fixed parts of every Originate. `Channel` holds `{number}` and `Context` may hold `{language}`.
type OriginateSettings = {
    Channel: string
    Context: string
    Exten: string
    Priority: int
    CallerId: string option
    Timeout: TimeSpan
}

/// The reverse proxies allowed to say who the client is (`X-Forwarded-For`). Both empty means ASP.NET
/// Core's default: loopback only.
type ProxySettings = {
    KnownProxies: IPAddress list
    KnownNetworks: IPNetwork list
}

/// Abuse protection of the public endpoint: which sites' pages may post, and how often calls are placed.
type ProtectionSettings = {
    /// Sites whose pages may post; empty means any site (warned at start-up).
    AllowedOrigins: SiteOrigin list
    /// Callbacks per client address (as the trusted proxy reports it) per minute.
    PerClientPerMinute: int
    /// Callbacks per minute for the whole sidecar: a ceiling on the trunk bill.
    GlobalPerMinute: int
    /// The shortest time between two calls to one number.
    PerNumberInterval: TimeSpan
    /// Calls to one number per day.
    PerNumberPerDay: int
}

/// Everything the sidecar reads from configuration, checked once at start-up.
type Settings = {
    Ami: AmiSettings
    Originate: OriginateSettings
    Proxy: ProxySettings
    Protection: ProtectionSettings
    /// Which valid numbers may be rung (`Callback__AllowedNumberTypes`, `Callback__…AreaCodes`).
    Destination: DestinationPolicy
    DemoEnabled: bool
    /// None without `Monitor__Username`: no call is tracked, everything else works as before.
    Monitor: MonitorSettings option
}

/// The longest one callback can take, waiting for a session slot included.
[<RequireQualifiedAccess>]
module CallbackDuration =
    /// `2 × ConnectTimeout + 3 × ResponseTimeout`: the slot wait, the connect, then Login, Originate, Logoff.
    let longest (ami: AmiSettings) =
        ami.Endpoint.ConnectTimeout * 2.0 + ami.ResponseTimeout * 3.0

[<RequireQualifiedAccess>]
module Settings =

    /// Configuration keys as environment variables name them, so messages point at what to set.
    let private envName (key: string) = key.Replace(":", "__")

    let private text (config: IConfiguration) key =
        match config[key] with
        | null
        | "" -> None
        | v -> Some v

    let private required config key =
        text config key |> Result.requireSome $"{envName key} is required."

    /// A value that goes into an AMI line as it is: CR, LF or NUL would end the line (or the action)
    /// early, so it is refused here, naming the variable and never showing the value.
    let private singleLine key (value: string) =
        if value.IndexOfAny [| '\r'; '\n'; '\000' |] >= 0 then
            Error $"{envName key} must be a single line."
        else
            Ok value

    let private safeText config key fallback =
        text config key |> Option.defaultValue fallback |> singleLine key

    let private requiredLine config key =
        required config key |> Result.bind (singleLine key)

    let private number config key fallback (low: int) (high: int) =
        match text config key with
        | None -> Ok fallback
        | Some v ->
            match Int32.TryParse v with
            | true, n when n >= low && n <= high -> Ok n
            | _ -> Error $"{envName key} must be a whole number from {low} to {high} (got '{v}')."

    let private flag config key fallback =
        match text config key with
        | None -> Ok fallback
        | Some v ->
            match Boolean.TryParse v with
            | true, b -> Ok b
            | _ -> Error $"{envName key} must be true or false (got '{v}')."

    let private milliseconds config key fallback low high =
        number config key fallback low high
        |> Result.map (float >> TimeSpan.FromMilliseconds)

    /// Every certificate of the PEM bundle, all trusted as roots: a bundle may hold the old and the new
    /// CA while Asterisk's certificate is being rolled over.
    let private caCertificates config =
        match text config "Ami:CaCertificate" with
        | None -> Ok []
        | Some path ->
            try
                let bundle = X509Certificate2Collection()
                bundle.ImportFromPemFile path

                if bundle.Count = 0 then
                    Error $"Ami__CaCertificate: '{path}' holds no PEM certificate."
                else
                    Ok(List.ofSeq bundle)
            with e ->
                Error $"Ami__CaCertificate: cannot read a PEM certificate from '{path}' ({e.GetType().Name})."

    /// The secret from `<section>__Secret` or from the file `<section>__SecretFile` names (a Docker secret,
    /// say), exactly one of the two. A file's trailing line end is not part of the secret. No message shows it.
    let private secretOf (section: string) config =
        let checkedSecret key (value: string) =
            match singleLine key value with
            | Ok v when v <> "" -> Ok(Secret v)
            | Ok _ -> Error $"{envName key} is empty."
            | Error e -> Error e

        match text config $"{section}:Secret", text config $"{section}:SecretFile" with
        | Some _, Some _ -> Error $"Set {section}__Secret or {section}__SecretFile, not both."
        | None, None -> Error $"{section}__Secret (or {section}__SecretFile) is required."
        | Some value, None -> checkedSecret $"{section}:Secret" value
        | None, Some path ->
            try
                File.ReadAllText path
                |> _.TrimEnd('\r', '\n')
                |> checkedSecret $"{section}:SecretFile"
            with e ->
                Error $"{section}__SecretFile: cannot read '{path}' ({e.GetType().Name})."

    let private secret config = secretOf "Ami" config

    /// The monitor only when `Monitor__Username` is set; then its secret is required, as for `Ami__`.
    let private monitor config =
        match text config "Monitor:Username" with
        | None -> Ok None
        | Some _ ->
            validation {
                let! username = requiredLine config "Monitor:Username"
                and! secret = secretOf "Monitor" config
                return Some { Username = username; Secret = secret }
            }

    let private channel config =
        requiredLine config "Originate:Channel"
        |> Result.bind (fun c ->
            if c.Contains "{number}" then
                Ok c
            else
                Error "Originate__Channel must contain {number}, e.g. PJSIP/{number}@trunk.")

    let private endpoint config =
        validation {
            let! host = required config "Ami:Host"
            and! port = number config "Ami:Port" 5039 1 65535
            and! useTls = flag config "Ami:UseTls" true
            and! roots = caCertificates config
            and! connectTimeout = milliseconds config "Ami:ConnectTimeout" 5000 100 60000

            return {
                Host = host
                Port = port
                Transport = if useTls then Tls roots else PlainTcp
                ConnectTimeout = connectTimeout
            }
        }

    /// 64 KiB at least (a channel with many variables is a few KiB), 64 MiB at most.
    let private maxMessageBytes config =
        number config "Ami:MaxMessageBytes" FrameReader.DefaultMaxMessageBytes 65536 (64 * 1024 * 1024)

    let private ami config =
        validation {
            let! endpoint = endpoint config
            and! username = requiredLine config "Ami:Username"
            and! secret = secret config
            and! responseTimeout = milliseconds config "Ami:ResponseTimeout" 5000 100 60000
            and! maxSessions = number config "Ami:MaxSessions" 8 1 1000
            and! maxQueued = number config "Ami:MaxQueued" 32 0 10000
            and! maxMessageBytes = maxMessageBytes config

            return {
                Endpoint = endpoint
                Username = username
                Secret = secret
                ResponseTimeout = responseTimeout
                MaxSessions = maxSessions
                MaxQueued = maxQueued
                MaxMessageBytes = maxMessageBytes
            }
        }

    let private originate config =
        validation {
            let! channel = channel config
            and! context = safeText config "Originate:Context" "callback-{language}"
            and! exten = safeText config "Originate:Exten" "s"
            and! priority = number config "Originate:Priority" 1 1 Int32.MaxValue
            and! callerId = safeText config "Originate:CallerId" ""
            and! timeout = milliseconds config "Originate:Timeout" 30000 1000 600000

            return {
                Channel = channel
                Context = context
                Exten = exten
                Priority = priority
                CallerId = if callerId = "" then None else Some callerId
                Timeout = timeout
            }
        }

    /// A comma-separated list, each item parsed by `parse`; every unparsable item is named.
    let private listOf config key (parse: string -> 'T option) : Validation<'T list, string> =
        let items =
            text config key
            |> Option.map (fun v ->
                v.Split(',', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries))
            |> Option.defaultValue [||]
            |> List.ofArray

        match items |> List.filter (parse >> Option.isNone) with
        | [] -> Ok(items |> List.choose parse)
        | bad -> Error [ for b in bad -> $"{envName key}: '{b}' is not valid." ]

    let private proxy config =
        validation {
            let! proxies =
                listOf config "ForwardedHeaders:KnownProxies" (fun s ->
                    match IPAddress.TryParse s with
                    | true, ip -> Some ip
                    | _ -> None)

            and! networks =
                listOf config "ForwardedHeaders:KnownNetworks" (fun s ->
                    match IPNetwork.TryParse s with
                    | true, n -> Some n
                    | _ -> None)

            return {
                KnownProxies = proxies
                KnownNetworks = networks
            }
        }

    let private protection config =
        validation {
            let! origins = listOf config "Callback:AllowedOrigins" SiteOrigin.tryParse
            and! perClient = number config "Callback:PerClientPerMinute" 5 1 100000
            and! perMinute = number config "Callback:GlobalPerMinute" 20 1 100000
            and! interval = number config "Callback:PerNumberIntervalSeconds" 120 1 86400
            and! perDay = number config "Callback:PerNumberPerDay" 5 1 1000

            return {
                AllowedOrigins = origins
                PerClientPerMinute = perClient
                GlobalPerMinute = perMinute
                PerNumberInterval = TimeSpan.FromSeconds(float interval)
                PerNumberPerDay = perDay
            }
        }

    /// The destination policy: the built-in rules always hold, these settings only narrow or widen the
    /// number types and area codes on top of them.
    let private destination config =
        validation {
            let! types =
                listOf config "Callback:AllowedNumberTypes" DestinationPolicy.tryParseType

            and! denied =
                listOf config "Callback:DeniedAreaCodes" DestinationPolicy.tryParseAreaCode

            and! allowed =
                listOf config "Callback:AllowedAreaCodes" DestinationPolicy.tryParseAreaCode

            return {
                AllowedTypes =
                    if types.IsEmpty then
                        DestinationPolicy.defaultTypes
                    else
                        Set.ofList types
                DeniedAreaCodes = Set.ofList denied
                AllowedAreaCodes = Set.ofList allowed
            }
        }
        |> Result.bind (fun policy ->
            match Set.intersect policy.DeniedAreaCodes policy.AllowedAreaCodes |> List.ofSeq with
            | [] -> Ok policy
            | both ->
                let codes = String.Join(", ", both)

                Error [
                    $"Callback__DeniedAreaCodes and Callback__AllowedAreaCodes both name {codes}."
                ])

    /// Reads and checks every setting, reporting all problems at once. Messages name the environment
    /// variable to set and never repeat the secret.
    let read (config: IConfiguration) : Result<Settings, string list> =
        validation {
            let! ami = ami config
            and! originate = originate config
            and! proxy = proxy config
            and! protection = protection config
            and! destination = destination config
            and! demo = flag config "Demo:Enabled" false
            and! monitor = monitor config

            return {
                Ami = ami
                Originate = originate
                Proxy = proxy
                Protection = protection
                Destination = destination
                DemoEnabled = demo
                Monitor = monitor
            }
        }

/// The PostgreSQL store's connection string (Npgsql's keywords). It prints as `***`: it holds the
/// database password, so a log line, an exception or a debugger view cannot leak it.
[<Sealed; AllowNullLiteral>]
type ConnectionString(value: string) =
    /// The clear text, for the one place that needs it: opening the store.
    member _.Reveal() = value
    override _.ToString() = "***"

    override _.Equals other =
        match other with
        | :? ConnectionString as other -> other.Reveal() = value
        | _ -> false

    override _.GetHashCode() = value.GetHashCode()

/// Which database holds the calls.
type StoreProvider =
    /// The embedded store (the default): one SQLite file in this directory (the image's volume, `/data`).
    | Sqlite of directory: string
    /// A PostgreSQL database, which several replicas can share.
    | Postgres of ConnectionString

/// Where the call store keeps its database, and how long it keeps the calls that are over.
type DataSettings = {
    Store: StoreProvider
    /// Final calls last moved longer ago than this are deleted; live calls are kept whatever their age.
    Retention: TimeSpan
    /// `Data__NumberKey`, the key of the numbers' HMAC; None: generated once into the SQLite directory
    /// (required with PostgreSQL, whose replicas share no directory).
    NumberKey: string option
}

[<RequireQualifiedAccess>]
module DataSettings =

    /// Kept at most ten years: past that a typing error is likelier than a wish.
    [<Literal>]
    let MaxRetentionDays = 3650

    let private directory (config: IConfiguration) (workingDirectory: string) =
        match config["Data:Path"] with
        | null
        | "" -> Ok(Path.Combine(workingDirectory, "data"))
        | path when path.IndexOfAny(Path.GetInvalidPathChars()) >= 0 ->
            Error "Data__Path holds characters a path cannot have."
        | path -> Ok(Path.GetFullPath(path, workingDirectory))

    let private retention (config: IConfiguration) =
        match config["Data:RetentionDays"] with
        | null
        | "" -> Ok(TimeSpan.FromDays 30.0)
        | v ->
            match Int32.TryParse v with
            | true, days when days >= 1 && days <= MaxRetentionDays -> Ok(TimeSpan.FromDays(float days))
            | _ -> Error $"Data__RetentionDays must be a whole number from 1 to {MaxRetentionDays} (got '{v}')."

    let private numberKey (config: IConfiguration) =
        match config["Data:NumberKey"] with
        | null
        | "" -> Ok None
        | key when key.Trim().Length < 32 -> Error "Data__NumberKey must be at least 32 characters."
        | key -> Ok(Some key)

    /// A connection string Npgsql can read, naming a host; the value is never repeated in the message.
    let private connectionString (value: string) =
        let valid =
            try
                not (String.IsNullOrWhiteSpace(Npgsql.NpgsqlConnectionStringBuilder(value).Host))
            with _ ->
                // A bad keyword or value: its message may quote the value, so it is not passed on.
                false

        if valid then
            Ok(ConnectionString value)
        else
            Error
                "Data__ConnectionString is not a PostgreSQL connection string with a Host (Host=…;Port=…;Username=…;Password=…;Database=…)."

    /// The connection string from `Data__ConnectionString` or from the file `Data__ConnectionStringFile`
    /// names (a Docker secret, say), at most one of the two; a file's trailing line end is not part of it.
    let private connectionText (config: IConfiguration) =
        let given key =
            match config[key] with
            | null
            | "" -> None
            | v -> Some v

        match given "Data:ConnectionString", given "Data:ConnectionStringFile" with
        | Some _, Some _ -> Error "Set Data__ConnectionString or Data__ConnectionStringFile, not both."
        | Some value, None -> Ok(Some value)
        | None, Some path ->
            try
                Ok(Some(File.ReadAllText(path).TrimEnd('\r', '\n')))
            with e ->
                Error $"Data__ConnectionStringFile: cannot read '{path}' ({e.GetType().Name})."
        | None, None -> Ok None

    let private provider (config: IConfiguration) =
        match config["Data:Provider"] with
        | null
        | "" -> Ok "sqlite"
        | given ->
            match given.ToLowerInvariant() with
            | "sqlite"
            | "postgres" as known -> Ok known
            | _ -> Error $"Data__Provider must be sqlite or postgres (got '{given}')."

    let private store (config: IConfiguration) (workingDirectory: string) =
        let connectionGiven =
            [ "Data:ConnectionString"; "Data:ConnectionStringFile" ]
            |> List.exists (fun key -> not (String.IsNullOrEmpty config[key]))

        match provider config with
        | Error e -> Error e
        | Ok "sqlite" when connectionGiven ->
            Error
                "Data__ConnectionString (or Data__ConnectionStringFile) is set but Data__Provider is not postgres: set Data__Provider=postgres, or remove it."
        | Ok "sqlite" -> directory config workingDirectory |> Result.map Sqlite
        | Ok _ ->
            match connectionText config with
            | Error e -> Error e
            | Ok None ->
                Error "Data__ConnectionString (or Data__ConnectionStringFile) is required with Data__Provider=postgres."
            | Ok(Some value) -> connectionString value |> Result.map Postgres

    /// The store as start-up logs it: the SQLite directory, or PostgreSQL's host, port and database, never
    /// the rest of the connection string (its password).
    let describe (store: StoreProvider) =
        match store with
        | Sqlite directory -> $"SQLite in {directory}"
        | Postgres connection ->
            let parts = Npgsql.NpgsqlConnectionStringBuilder(connection.Reveal())
            let database = parts.Database |> Option.ofObj |> Option.defaultValue "(the user's)"
            $"PostgreSQL, database {database} on {parts.Host}:{parts.Port}"

    /// Reads the store's settings, all problems at once. SQLite unless `Data__Provider=postgres`; without
    /// `Data__Path` its directory is `data` under `workingDirectory`, a relative one is taken from there too
    /// (whether it is usable is checked when the store opens it). `Data__Path` is not read for PostgreSQL.
    let read (config: IConfiguration) (workingDirectory: string) : Result<DataSettings, string list> =
        validation {
            let! store = store config workingDirectory
            and! retention = retention config
            and! numberKey = numberKey config

            return {
                Store = store
                Retention = retention
                NumberKey = numberKey
            }
        }
        |> Result.bind (fun data ->
            match data.Store, data.NumberKey with
            | Postgres _, None ->
                // No key file can be shared: each replica would generate its own and miss the others' duplicates.
                Error [
                    "Data__NumberKey is required with Data__Provider=postgres: every replica must key the numbers alike."
                ]
            | _ -> Ok data)
