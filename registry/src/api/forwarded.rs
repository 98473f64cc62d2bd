//! Who the client is and which address it reached, from the connection and
//! the headers a reverse proxy adds. `X-Forwarded-For`, `-Host` and `-Proto`
//! are believed only when the connection comes from a proxy listed in
//! `http.trustedproxies`; anyone else could write them, to dodge the login
//! back-off or to point `realm: auto` and `Location` at another host.

use std::net::IpAddr;

use axum::http::{HeaderMap, Uri, header};

pub use crate::config::TrustedProxies;

/// The client and the address it reached, as far as they can be believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The client's address: the socket peer, or from `X-Forwarded-For` when the peer is a trusted proxy.
    pub client: Option<IpAddr>,
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]` the client reached, when known and well-formed.
    pub host: Option<String>,
}

impl Origin {
    pub fn resolve(
        headers: &HeaderMap,
        uri: &Uri,
        peer: Option<IpAddr>,
        tls: bool,
        proxies: &TrustedProxies,
    ) -> Origin {
        let via_proxy = peer.is_some_and(|p| proxies.trusts(p));
        let first = |name: &str| {
            let v = headers.get(name)?.to_str().ok()?;
            Some(v.split(',').next().unwrap_or(v).trim().to_string())
        };
        let client = if via_proxy { forwarded_for(headers, proxies).or(peer) } else { peer };
        let scheme = via_proxy
            .then(|| first("x-forwarded-proto"))
            .flatten()
            .map(|p| p.to_ascii_lowercase())
            .filter(|p| p == "http" || p == "https")
            .unwrap_or_else(|| if tls { "https" } else { "http" }.to_string());
        let host = via_proxy
            .then(|| first("x-forwarded-host"))
            .flatten()
            .filter(|h| is_authority(h))
            .or_else(|| first(header::HOST.as_str()).filter(|h| is_authority(h)))
            .or_else(|| uri.authority().map(|a| a.as_str().to_string()).filter(|h| is_authority(h)));
        Origin { client: client.map(|c| c.to_canonical()), scheme, host }
    }
}

/// The client in `X-Forwarded-For`: the rightmost address that is not a
/// trusted proxy (entries left of it were written by the client itself).
fn forwarded_for(headers: &HeaderMap, proxies: &TrustedProxies) -> Option<IpAddr> {
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        for part in value.to_str().ok()?.split(',') {
            hops.push(parse_hop(part.trim())?);
        }
    }
    hops.iter().rev().find(|ip| !proxies.trusts(**ip)).or(hops.first()).copied()
}

/// `1.2.3.4`, `1.2.3.4:567`, `::1` or `[::1]:567`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| s.strip_prefix('[')?.split(']').next()?.parse().ok())
}

/// A host name or address with an optional port, nothing else: it goes into
/// URLs and the `WWW-Authenticate` header.
fn is_authority(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 261
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8", "192.0.2.9"]).unwrap();
        let h = headers(&[
            ("host", "reg.internal:5000"),
            ("x-forwarded-for", "203.0.113.5, 198.51.100.1"),
            ("x-forwarded-for", "10.1.1.1"),
            ("x-forwarded-host", "registry.example.com"),
            ("x-forwarded-proto", "https"),
        ]);
        let uri = Uri::from_static("/v2/");
        let proxy: IpAddr = "10.2.3.4".parse().unwrap();
        let o = Origin::resolve(&h, &uri, Some(proxy), false, &proxies);
        assert_eq!(o.client, Some("198.51.100.1".parse().unwrap()), "rightmost untrusted hop");
        assert_eq!((o.scheme.as_str(), o.host.as_deref()), ("https", Some("registry.example.com")));

        let stranger: IpAddr = "198.51.100.77".parse().unwrap();
        let o = Origin::resolve(&h, &uri, Some(stranger), false, &proxies);
        assert_eq!(o.client, Some(stranger));
        assert_eq!((o.scheme.as_str(), o.host.as_deref()), ("http", Some("reg.internal:5000")));

        let mapped: IpAddr = "::ffff:192.0.2.9".parse().unwrap();
        assert!(proxies.trusts(mapped), "IPv4-mapped IPv6 peers match IPv4 ranges");
        assert!(TrustedProxies::parse(&["10.0.0.0/33"]).is_err());
    }

    #[test]
    fn hosts_that_are_not_authorities_are_dropped() {
        let h = headers(&[("host", "evil\",error=\"x")]);
        let o = Origin::resolve(&h, &Uri::from_static("/v2/"), None, true, &TrustedProxies::default());
        assert_eq!(o.host, None);
        assert_eq!(o.scheme, "https");
    }
}
