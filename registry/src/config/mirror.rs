//! The `proxy` section of config.yml: registry:2's pull-through cache keys
//! (`remoteurl`, `username`, `password`, `ttl`) plus wharf's extensions
//! (several upstreams, local repositories, a size bound, pass-through
//! credentials), and the safe-start rule that keeps an upstream account's
//! private images from leaking to unauthenticated clients (seed 004).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::values::{ConfigError, GoDuration, key_error, redact, scalar_string};

/// registry:2's default `ttl`: cached content unused for a week is removed.
pub const DEFAULT_TTL: Duration = Duration::from_secs(168 * 3600);
/// How long a cached tag is trusted before a HEAD request revalidates it.
pub const DEFAULT_TAG_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// registry:2: the one upstream (every repository outside `localprefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remoteurl: Option<String>,
    #[serde(default, deserialize_with = "scalar_string", skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(
        default,
        deserialize_with = "scalar_string",
        serialize_with = "redact",
        skip_serializing_if = "Option::is_none"
    )]
    pub password: Option<String>,
    /// registry:2: cached content not used for this long is removed (`0` keeps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<GoDuration>,
    /// wharf: a cached tag is served without asking the upstream for this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tagttl: Option<GoDuration>,
    /// wharf: more upstreams, chosen by containerd's `ns` parameter or a name prefix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<UpstreamConfig>,
    /// wharf: repositories under this prefix are ordinary, pushable ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub localprefix: Option<String>,
    /// wharf: the cache's size bound (`50Gi`, `500M`); least recently used blobs go first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxsize: Option<ByteSize>,
    /// wharf: the explicit declaration that every client may pull everything
    /// the configured upstream accounts can read.
    #[serde(default)]
    pub exposeupstreamaccount: bool,
    /// wharf: each client's own Basic credentials are used upstream.
    #[serde(default)]
    pub passthrough: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The registry's name as clients write it (`docker.io`, `ghcr.io`).
    pub name: String,
    pub url: String,
    #[serde(default, deserialize_with = "scalar_string", skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usernamefile: Option<String>,
    #[serde(
        default,
        deserialize_with = "scalar_string",
        serialize_with = "redact",
        skip_serializing_if = "Option::is_none"
    )]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passwordfile: Option<String>,
    /// Hosts besides the upstream's own that may serve its token realm.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub realmhosts: Vec<String>,
    /// PEM CA certificates trusted for this upstream besides the system's
    /// (a private upstream's own CA); verification stays on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cafile: Option<String>,
}

impl UpstreamConfig {
    fn has_credentials(&self) -> bool {
        self.username.is_some() || self.usernamefile.is_some() || self.password.is_some() || self.passwordfile.is_some()
    }
}

/// A size in bytes: `1024`, `500M`/`500MB` (powers of 1000) or `50Gi` (powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(s: &str) -> Option<u64> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().ok()?;
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "K" | "KB" | "k" | "kB" => 1000,
            "M" | "MB" => 1000u64.pow(2),
            "G" | "GB" => 1000u64.pow(3),
            "T" | "TB" => 1000u64.pow(4),
            "Ki" | "KiB" => 1 << 10,
            "Mi" | "MiB" => 1 << 20,
            "Gi" | "GiB" => 1 << 30,
            "Ti" | "TiB" => 1 << 40,
            _ => return None,
        };
        n.checked_mul(scale)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_yaml::Value::deserialize(d)?;
        let s = match &v {
            serde_yaml::Value::Number(n) => n.to_string(),
            serde_yaml::Value::String(s) => s.clone(),
            _ => return Err(serde::de::Error::custom("a size like 50Gi, 500M or 1073741824")),
        };
        ByteSize::parse(&s)
            .map(ByteSize)
            .ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not a size (use e.g. 50Gi, 500M, 1073741824)")))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.0)
    }
}

/// What the safe-start refusal says (seed 004).
pub const LEAK_EXPLANATION: &str = "upstream credentials are configured but clients are not authenticated \
(no auth section): every client that can reach this mirror could pull every private image the upstream account \
can read, without logging in, and the images would stay in the cache for anyone (this is how a registry:2 Docker Hub \
mirror leaked an account's private images, seed 004). Configure auth (its access rules then decide who pulls which \
mirrored repositories), use proxy.passthrough: true so each client's own credentials are used upstream, or set \
proxy.exposeupstreamaccount: true to declare that every client may see everything the account sees";

/// Whether `s` is one component of a repository name (`docker.io`, `ghcr.io`).
/// `host` or `host:port`, as containerd sends it in `?ns=`.
fn valid_upstream_name(s: &str) -> bool {
    match s.split_once(':') {
        Some((host, port)) => valid_component(host) && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => valid_component(s),
    }
}

/// The repository-name component an upstream's content is stored under, and
/// clients may select it by: its name, with a port's `:` (not allowed in a
/// repository name) written as `_` (`registry.svc.cluster.local_5000`).
pub fn prefix_of(name: &str) -> String {
    name.replace(':', "_")
}

fn valid_component(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
        && b[b.len() - 1].is_ascii_lowercase() | b[b.len() - 1].is_ascii_digit()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-'))
}

fn check_url(path: &str, url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| key_error(path, format!("`{url}` must start with https:// (or http:// for a test upstream)")))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains('@') {
        return Err(key_error(path, format!("`{url}` names no host (user@host URLs are refused: use username)")));
    }
    Ok(())
}

impl MirrorConfig {
    /// Checks the section; `auth_configured` says whether clients must authenticate.
    pub fn validate(&self, auth_configured: bool) -> Result<(), ConfigError> {
        if self.remoteurl.is_none() && self.upstreams.is_empty() {
            return Err(key_error("proxy", "names no upstream: set remoteurl or upstreams"));
        }
        if let Some(url) = &self.remoteurl {
            check_url("proxy.remoteurl", url)?;
        } else if self.username.is_some() || self.password.is_some() {
            return Err(key_error("proxy.username", "needs proxy.remoteurl (upstreams carry their own credentials)"));
        }
        if self.username.is_some() != self.password.is_some() {
            return Err(key_error("proxy", "set both username and password, or neither"));
        }
        let mut names = std::collections::BTreeSet::<String>::new();
        for (i, u) in self.upstreams.iter().enumerate() {
            let path = format!("proxy.upstreams[{i}]");
            if !valid_upstream_name(&u.name) {
                return Err(key_error(
                    &format!("{path}.name"),
                    format!(
                        "`{}` must be a lowercase registry host as clients write it, with an optional port \
                         (docker.io, ghcr.io, registry.team.svc.cluster.local:5000)",
                        u.name
                    ),
                ));
            }
            // The path prefix selects the upstream too, so prefixes must differ (`a:5000`, `a_5000`).
            if !names.insert(prefix_of(&u.name)) {
                return Err(key_error(
                    &format!("{path}.name"),
                    format!("`{}` is used twice (as a name or as the path prefix `{}`)", u.name, prefix_of(&u.name)),
                ));
            }
            check_url(&format!("{path}.url"), &u.url)?;
            if u.username.is_some() && u.usernamefile.is_some() {
                return Err(key_error(&path, "set username or usernamefile, not both"));
            }
            if u.password.is_some() && u.passwordfile.is_some() {
                return Err(key_error(&path, "set password or passwordfile, not both"));
            }
            let has_user = u.username.is_some() || u.usernamefile.is_some();
            let has_password = u.password.is_some() || u.passwordfile.is_some();
            if has_user != has_password {
                return Err(key_error(&path, "set a username and a password, or neither"));
            }
        }
        if let Some(p) = &self.localprefix
            && (p.is_empty() || !p.split('/').all(valid_component))
        {
            return Err(key_error("proxy.localprefix", format!("`{p}` is not a repository name prefix")));
        }
        if let Some(p) = &self.localprefix
            && let Some(u) = self.upstreams.iter().find(|u| prefix_of(&u.name) == p.split('/').next().unwrap_or(""))
        {
            return Err(key_error("proxy.localprefix", format!("`{p}` overlaps the upstream named `{}`", u.name)));
        }
        let credentials = self.username.is_some() || self.upstreams.iter().any(UpstreamConfig::has_credentials);
        if self.passthrough {
            if credentials {
                return Err(key_error(
                    "proxy.passthrough",
                    "uses each client's own credentials upstream; remove the configured upstream credentials",
                ));
            }
            if auth_configured {
                return Err(key_error(
                    "proxy.passthrough",
                    "forwards each client's Basic credentials to the upstream, so it cannot be combined with the \
                     auth section (clients would need two sets of credentials in one header)",
                ));
            }
        }
        if credentials && !auth_configured && !self.exposeupstreamaccount {
            let at = if self.username.is_some() { "proxy.username" } else { "proxy.upstreams" };
            return Err(key_error(at, LEAK_EXPLANATION));
        }
        Ok(())
    }

    pub fn ttl(&self) -> Duration {
        self.ttl.map_or(DEFAULT_TTL, |d| d.0)
    }

    pub fn tag_ttl(&self) -> Duration {
        self.tagttl.map_or(DEFAULT_TAG_TTL, |d| d.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(yaml: &str) -> MirrorConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("50Gi"), Some(50 << 30));
        assert_eq!(ByteSize::parse("500M"), Some(500_000_000));
        assert_eq!(ByteSize::parse("1024"), Some(1024));
        assert_eq!(ByteSize::parse("3MiB"), Some(3 << 20));
        assert_eq!(ByteSize::parse("lots"), None);
        assert_eq!(ByteSize::parse("5Q"), None);
    }

    #[test]
    fn credentials_without_client_auth_are_refused_with_the_leak_explained() {
        let p = proxy("{remoteurl: https://registry-1.docker.io, username: u, password: p}");
        let e = p.validate(false).unwrap_err().to_string();
        assert!(e.starts_with("proxy.username:") && e.contains("private images") && e.contains("seed 004"), "{e}");
        p.validate(true).unwrap();
        let mut exposed = p.clone();
        exposed.exposeupstreamaccount = true;
        exposed.validate(false).unwrap();
        let p = proxy("{upstreams: [{name: docker.io, url: https://r.example, usernamefile: /u, passwordfile: /p}]}");
        assert!(p.validate(false).unwrap_err().to_string().contains("private images"));
        // Anonymous upstreams need no client auth.
        proxy("{remoteurl: https://registry-1.docker.io}").validate(false).unwrap();
    }

    #[test]
    fn mistakes_are_named() {
        let e = |y: &str, auth: bool| proxy(y).validate(auth).unwrap_err().to_string();
        assert!(e("{}", false).contains("no upstream"));
        assert!(e("{remoteurl: registry-1.docker.io}", false).contains("https://"));
        assert!(e("{upstreams: [{name: Docker.io, url: https://x}]}", false).contains("name"));
        assert!(e("{upstreams: [{name: a, url: https://x}, {name: a, url: https://y}]}", false).contains("twice"));
        assert!(
            e("{upstreams: [{name: a, url: https://x, username: u, usernamefile: f, password: p}]}", true)
                .contains("not both")
        );
        assert!(e("{upstreams: [{name: a, url: https://x, username: u}]}", true).contains("neither"));
        assert!(e("{remoteurl: https://x, passthrough: true}", true).contains("auth"));
        assert!(e("{remoteurl: https://x, username: u, password: p, passthrough: true}", false).contains("remove"));
        assert!(e("{upstreams: [{name: a, url: https://x}], localprefix: a}", false).contains("overlaps"));
        assert!(e("{remoteurl: https://x, localprefix: Local}", false).contains("localprefix"));
        assert!(e("{upstreams: [{name: 'a:99999', url: https://x}]}", false).contains("port"));
        assert!(e("{upstreams: [{name: 'a:', url: https://x}]}", false).contains("port"));
        assert!(
            e("{upstreams: [{name: 'a:5000', url: https://x}, {name: a_5000, url: https://y}]}", false)
                .contains("path prefix `a_5000`")
        );
        assert!(e("{upstreams: [{name: 'a:5000', url: https://x}], localprefix: a_5000}", false).contains("overlaps"));
    }

    #[test]
    fn an_upstream_with_a_port_is_stored_under_a_prefix_without_the_colon() {
        // In-cluster registries are always `<svc>.<ns>.svc.<domain>:<port>`; containerd sends that as ?ns=.
        proxy(
            "{upstreams: [{name: 'reg.team.svc.cluster.local:5000', url: 'http://reg.team.svc.cluster.local:5000'}]}",
        )
        .validate(false)
        .unwrap();
        assert_eq!(prefix_of("reg.team.svc.cluster.local:5000"), "reg.team.svc.cluster.local_5000");
        assert_eq!(prefix_of("docker.io"), "docker.io");
    }
}
