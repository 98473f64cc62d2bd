//! The cluster admin's node-access policy: who may make the nodes' container
//! runtime send which hosts' pulls where.
//!
//! It is a file the operator reads at start (the chart renders it from
//! `nodeAccess.policy` into a ConfigMap, and rolls the operator when it
//! changes), never a field of a tenant's resource. With no file, the
//! defaults hold: a resource may map its own in-cluster name, and nobody may
//! redirect any other host.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// A resource may map its own in-cluster host (`<svc>.<ns>.svc.<domain>:<port>`)
    /// and, for a mirror, upstream hosts in its own namespace's cluster DNS. These
    /// names carry the namespace, so no tenant can take another's. Default: true.
    #[serde(default = "yes")]
    pub own_names: bool,
    /// Which namespaces may redirect which other hosts (`docker.io`, `ghcr.io`, …).
    /// Default: none.
    #[serde(default)]
    pub upstreams: Vec<UpstreamRule>,
}

fn yes() -> bool {
    true
}

impl Default for Policy {
    fn default() -> Self {
        Policy { own_names: true, upstreams: Vec::new() }
    }
}

/// One grant: the listed namespaces may point the nodes' pulls of the listed hosts at their mirrors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamRule {
    /// Namespace names; `*` is every namespace.
    pub namespaces: Vec<String>,
    /// Hosts as containerd names them (`docker.io`, `registry.example.com:5000`); `*` is every host.
    pub hosts: Vec<String>,
}

/// Why the policy file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unreadable.
    #[error("reading the node-access policy {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Not a policy.
    #[error("the node-access policy {path} is malformed: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: serde_yaml::Error,
    },
}

impl Policy {
    /// Parses a policy document (YAML or JSON). An empty document is the default policy.
    pub fn parse(text: &str) -> Result<Policy, serde_yaml::Error> {
        if text.trim().is_empty() {
            return Ok(Policy::default());
        }
        serde_yaml::from_str(text)
    }

    /// Reads the policy file; `None` is the default policy.
    pub fn load(path: Option<&Path>) -> Result<Policy, Error> {
        let Some(path) = path else {
            return Ok(Policy::default());
        };
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: shown.clone(), source })?;
        Policy::parse(&text).map_err(|source| Error::Parse { path: shown, source })
    }

    /// Whether resources in `namespace` may redirect `host`, a host outside their own names.
    pub fn allows_upstream(&self, namespace: &str, host: &str) -> bool {
        self.upstreams.iter().any(|r| {
            r.namespaces.iter().any(|n| n == "*" || n == namespace) && r.hosts.iter().any(|h| h == "*" || h == host)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_allows_own_names_and_no_upstream() {
        let p = Policy::parse("").expect("empty");
        assert_eq!(p, Policy::default());
        assert!(p.own_names);
        assert!(!p.allows_upstream("wharf-system", "docker.io"));
        assert!(!p.allows_upstream("team-a", "docker.io"));
    }

    #[test]
    fn rules_match_namespace_and_host() {
        let p = Policy::parse(
            "ownNames: false\nupstreams:\n  - {namespaces: [wharf-system], hosts: [docker.io, ghcr.io]}\n  - {namespaces: ['*'], hosts: [quay.io]}\n",
        )
        .expect("parses");
        assert!(!p.own_names);
        assert!(p.allows_upstream("wharf-system", "docker.io"));
        assert!(!p.allows_upstream("team-a", "docker.io"));
        assert!(p.allows_upstream("team-a", "quay.io"));
        assert!(!p.allows_upstream("wharf-system", "docker.io:443"), "a host with a port is another host");
    }

    #[test]
    fn typos_are_refused() {
        let err = Policy::parse("upstream: []").expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `upstream`"), "{err}");
        let err = Policy::parse("upstreams: [{namespaces: [a]}]").expect_err("missing hosts");
        assert!(err.to_string().contains("hosts"), "{err}");
    }
}
