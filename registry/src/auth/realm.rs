//! The realm for `realm: auto`, taken from the request; what a configured
//! realm may be is checked in `crate::config::realm`.

/// The realm for `realm: auto`: the address the client has just reached.
/// `scheme` and `host` come from the request (`X-Forwarded-*` only when a
/// trusted proxy sent them; see `api::forwarded`); without a host the realm
/// is the bare path.
pub fn auto(scheme: &str, host: Option<&str>, path: &str) -> String {
    match host {
        Some(host) => format!("{scheme}://{host}{path}"),
        None => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_realm_follows_the_request() {
        assert_eq!(auto("http", Some("reg.example.com:5000"), "/auth/token"), "http://reg.example.com:5000/auth/token");
        assert_eq!(auto("https", None, "/auth/token"), "/auth/token");
    }
}
