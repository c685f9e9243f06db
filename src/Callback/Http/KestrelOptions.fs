namespace Callback.Http

open System
open System.Text
open Microsoft.AspNetCore.Server.Kestrel.Core

/// Reads a `Content-Length` value only if it is digits, as RFC 9110 says (`1*DIGIT`). Kestrel itself
/// takes `+34` for 34, which a proxy in front may read differently (request smuggling). Kestrel asks
/// `RequestHeaderEncodingSelector` how to decode each header, Content-Length included, and answers its
/// own 400 to a `BadHttpRequestException` thrown while it parses headers.
type ContentLengthDigits() =
    inherit Encoding()

    static let refuse () =
        raise (Microsoft.AspNetCore.Http.BadHttpRequestException("Content-Length must be digits only (RFC 9110).", 400))

    static let check (bytes: ReadOnlySpan<byte>) =
        for b in bytes do
            if b < byte '0' || b > byte '9' then
                refuse ()

    override _.GetByteCount(_: char[], _: int, count: int) = count

    override _.GetBytes(chars: char[], charIndex: int, charCount: int, bytes: byte[], byteIndex: int) =
        Encoding.ASCII.GetBytes(chars, charIndex, charCount, bytes, byteIndex)

    override _.GetCharCount(bytes: byte[], index: int, count: int) =
        check (ReadOnlySpan(bytes, index, count))
        count

    override _.GetChars(bytes: byte[], byteIndex: int, byteCount: int, chars: char[], charIndex: int) =
        check (ReadOnlySpan(bytes, byteIndex, byteCount))
        Encoding.ASCII.GetChars(bytes, byteIndex, byteCount, chars, charIndex)

    override _.GetMaxByteCount count = count
    override _.GetMaxCharCount count = count

/// How Kestrel is set up: deliberate limits instead of defaults made for any web app.
[<RequireQualifiedAccess>]
module KestrelOptions =

    let private contentLengthDigits = ContentLengthDigits()

    /// Kestrel's limits, set on purpose rather than left at defaults made for any web app. The sidecar reads
    /// one tiny form per request, normally from nginx on the same host.
    let private limits (kestrel: KestrelServerOptions) =
        let l = kestrel.Limits
        // Longer than nginx's upstream `keepalive_timeout` (60 s): nginx must close an idle connection
        // first, or it may send a callback on one the sidecar is closing and, with `proxy_next_upstream
        // off`, answer 502 for a call never placed. Kestrel's default is 130 s.
        l.KeepAliveTimeout <- TimeSpan.FromSeconds 75.0
        // A request's headers arrive in one go from a browser or nginx; the default 30 s lets a slow
        // client hold a connection for nothing.
        l.RequestHeadersTimeout <- TimeSpan.FromSeconds 10.0
        // The body is at most 8 KiB: at 1 KiB/s after a 3 s grace it arrives in under 11 s.
        l.MinRequestBodyDataRate <- MinDataRate(1024.0, TimeSpan.FromSeconds 3.0)
        // Each callback holds an AMI session for seconds; far fewer connections are ever useful, and a cap
        // keeps a flood of idle sockets from exhausting file descriptors. nginx keeps 4.
        l.MaxConcurrentConnections <- Nullable 1000L
        // Cookies of the site in front pass through nginx, so the total stays at Kestrel's 32 KiB; but no
        // browser sends 100 headers, and our paths are short.
        l.MaxRequestHeadersTotalSize <- 32 * 1024
        l.MaxRequestHeaderCount <- 64
        l.MaxRequestLineSize <- 2048
        // MaxRequestBodySize stays at 30 MB on purpose: `Handlers.readBody` stops at 8 KiB while
        // streaming and answers 413 in the contract itself, which a Kestrel limit that small would pre-empt.
        kestrel.AddServerHeader <- false

    /// Kestrel's limits and header parsing for the sidecar.
    let configure (kestrel: KestrelServerOptions) =
        limits kestrel

        kestrel.RequestHeaderEncodingSelector <-
            Func<string, Encoding>(fun name ->
                if String.Equals(name, "Content-Length", StringComparison.OrdinalIgnoreCase) then
                    contentLengthDigits
                else
                    null)
