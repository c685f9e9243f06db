namespace Callback.Domain

open System

/// A web site's origin as browsers send it in `Origin`: scheme, host and a port other than the scheme's
/// default, lower case (`https://www.example.org`). Two spellings of one site compare equal.
[<Struct; CustomEquality; NoComparison>]
type SiteOrigin =
    private
    | SiteOrigin of string

    member this.Value =
        let (SiteOrigin v) = this
        v

    override this.Equals other =
        match other with
        | :? SiteOrigin as o -> o.Value = this.Value
        | _ -> false

    override this.GetHashCode() = this.Value.GetHashCode()
    override this.ToString() = this.Value

[<RequireQualifiedAccess>]
module SiteOrigin =

    /// The origin of an absolute `http`/`https` URL (an `Origin` value, or a `Referer`'s page address);
    /// `None` for anything else, including the `null` origin of sandboxed and privacy-stripped requests.
    let tryParse (text: string) : SiteOrigin option =
        match Uri.TryCreate(text, UriKind.Absolute) with
        | true, uri when
            (uri.Scheme = Uri.UriSchemeHttps || uri.Scheme = Uri.UriSchemeHttp)
            && uri.Host <> ""
            ->
            // `Authority` leaves out user info and a default port, as an `Origin` header does.
            Some(SiteOrigin($"{uri.Scheme}://{uri.Authority}".ToLowerInvariant()))
        | _ -> None
