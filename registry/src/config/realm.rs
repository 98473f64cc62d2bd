//! The configured token realm (`auth.token.realm`): where clients fetch
//! tokens. A realm must be an address every client can reach, so loopback and bare host names are refused
//! (seed 000: `http://localhost/service/token` worked on one machine only,
//! and a bare `proxy` host made docker push to Docker Hub).

use std::net::IpAddr;

/// Why docker reads a bare host name as something else.
pub const DOCKER_RULE: &str = "docker treats the first part of an image reference as a registry host only when it \
contains a dot or a port, or is `localhost`; a bare name such as `proxy` is read as a Docker Hub namespace, so \
`docker push proxy/app` goes to Docker Hub";

/// Checks that a configured realm URL names a host clients elsewhere can reach.
pub fn check(realm: &str) -> Result<(), String> {
    let rest = realm
        .strip_prefix("https://")
        .or_else(|| realm.strip_prefix("http://"))
        .ok_or_else(|| format!("realm `{realm}` must be an http:// or https:// URL, or `auto`"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| format!("realm `{realm}` has a malformed IPv6 host"))?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("realm `{realm}` has no host"));
    }
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return Err(format!(
            "realm `{realm}` is on localhost: every client would fetch tokens from itself, which works on one \
             machine only; use the registry's DNS name (in Kubernetes, the operator sets \
             <service>.<namespace>.svc.<cluster-domain>), or `realm: auto`"
        ));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        if ip.is_loopback() || ip.is_unspecified() {
            return Err(format!(
                "realm `{realm}` is a loopback address, reachable from this machine only; use the registry's DNS name or `realm: auto`"
            ));
        }
        return Ok(());
    }
    if !host.contains('.') && port.is_none() {
        return Err(format!(
            "realm `{realm}` uses the single-label host `{host}`: {DOCKER_RULE}. Use a fully qualified name (e.g. \
             {host}.example.com or <service>.<namespace>.svc.cluster.local) or add a port"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_only_works_on_one_machine() {
        for bad in [
            "http://localhost/service/token",
            "http://LOCALHOST:5001/token",
            "http://127.0.0.1/token",
            "http://127.8.9.10:80/token",
            "http://[::1]:5000/token",
            "http://0.0.0.0/token",
            "http://proxy/service/token",
            "ftp://registry.example.com/token",
            "registry.example.com/token",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert!(check("http://proxy/token").unwrap_err().contains("namespace"));
        for ok in [
            "https://registry.example.com/auth/token",
            "http://proxy.local/token",
            "http://proxy:5000/token",
            "http://198.18.0.10:5000/token",
            "https://wharf.team-a.svc.cluster.local:5000/auth/token",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
    }
}
