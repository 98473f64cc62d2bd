//! The operator's own settings, and where the cluster domain comes from.
//!
//! The cluster domain is taken from the operator's configuration; when that
//! is unset, from the search list of `/etc/resolv.conf` (a pod's list reads
//! `<ns>.svc.<domain> svc.<domain> <domain>`); when that says nothing, it is
//! `cluster.local`.

use std::time::Duration;

/// The cluster domain when nothing says otherwise.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// The registry image that matches this operator's version.
pub fn default_registry_image() -> String {
    format!("ghcr.io/wharf-dev/wharf-registry:{}", env!("CARGO_PKG_VERSION"))
}

/// The operator's namespace when nothing says otherwise.
pub const DEFAULT_NAMESPACE: &str = "wharf-system";

/// Settings every reconcile reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// DNS domain of the cluster, e.g. `cluster.local`.
    pub cluster_domain: String,
    /// Image of registries whose spec names none.
    pub default_image: String,
    /// Node access: where the plan goes and the admin's policy.
    pub node: NodeSettings,
    /// Lifetimes of the operator's CA and the certificates it issues.
    pub tls: TlsSettings,
}

/// Lifetimes of the operator's CA and serving certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// How long a new CA is valid.
    pub ca_lifetime: Duration,
    /// How long a serving certificate is valid.
    pub cert_lifetime: Duration,
    /// How long before its end a serving certificate is issued again.
    pub renew_before: Duration,
    /// Domains under which a resource's Ingress host may go into its serving
    /// certificate (the admin's choice: every Pod trusting the CA trusts it).
    pub ingress_domains: Vec<String>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        TlsSettings {
            ca_lifetime: Duration::from_secs(10 * 365 * DAY),
            cert_lifetime: Duration::from_secs(90 * DAY),
            renew_before: Duration::from_secs(30 * DAY),
            ingress_domains: Vec::new(),
        }
    }
}

/// Node access, as the cluster admin configured it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSettings {
    /// The operator's namespace, where the node plan ConfigMap lives.
    pub namespace: String,
    /// Who may map which hosts on the nodes.
    pub policy: crate::node_access::policy::Policy,
}

impl Default for NodeSettings {
    fn default() -> Self {
        NodeSettings { namespace: DEFAULT_NAMESPACE.into(), policy: Default::default() }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.into(),
            default_image: default_registry_image(),
            node: NodeSettings::default(),
            tls: TlsSettings::default(),
        }
    }
}

/// Where the cluster domain came from, for the startup log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainSource {
    /// `--cluster-domain` / `WHARF_CLUSTER_DOMAIN`.
    Configured,
    /// The search list of /etc/resolv.conf.
    ResolvConf,
    /// Nothing said otherwise.
    Default,
}

/// Picks the cluster domain: configured, else from `resolv_conf` (its text, if readable), else the default.
pub fn cluster_domain(configured: Option<&str>, resolv_conf: Option<&str>) -> (String, DomainSource) {
    if let Some(d) = configured.map(|d| d.trim().trim_matches('.')).filter(|d| !d.is_empty()) {
        return (d.to_string(), DomainSource::Configured);
    }
    if let Some(d) = resolv_conf.and_then(domain_from_resolv_conf) {
        return (d, DomainSource::ResolvConf);
    }
    (DEFAULT_CLUSTER_DOMAIN.to_string(), DomainSource::Default)
}

/// Finds the cluster domain in resolv.conf text: the first `search` entry of
/// the form `svc.<domain>`. The last `search` line wins, as in the resolver.
pub fn domain_from_resolv_conf(text: &str) -> Option<String> {
    let search = text
        .lines()
        .map(|l| l.split(['#', ';']).next().unwrap_or_default())
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("search")).then(|| words.map(str::to_string).collect::<Vec<_>>())
        })
        .next_back()?;
    search.iter().find_map(|entry| {
        let entry = entry.trim_end_matches('.');
        let domain = entry.strip_prefix("svc.")?;
        (!domain.is_empty()).then(|| domain.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_resolv_conf() {
        let text =
            "search team-a.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n";
        assert_eq!(domain_from_resolv_conf(text).as_deref(), Some("cluster.local"));
    }

    #[test]
    fn custom_domain_and_extra_entries() {
        let text = "nameserver 10.0.0.10\nsearch wharf-system.svc.k8s.corp.example svc.k8s.corp.example k8s.corp.example corp.example\n";
        assert_eq!(domain_from_resolv_conf(text).as_deref(), Some("k8s.corp.example"));
    }

    #[test]
    fn trailing_dots_comments_and_last_search_line() {
        let text = "search old.svc.ignored.example svc.ignored.example\n# search svc.commented.out\nsearch  svc.real.domain.  \n";
        assert_eq!(domain_from_resolv_conf(text).as_deref(), Some("real.domain"));
    }

    #[test]
    fn no_cluster_search_entry() {
        assert_eq!(domain_from_resolv_conf("search example.com\nnameserver 1.1.1.1\n"), None);
        assert_eq!(domain_from_resolv_conf("nameserver 1.1.1.1\n"), None);
        assert_eq!(domain_from_resolv_conf(""), None);
        assert_eq!(domain_from_resolv_conf("search svc.\n"), None);
    }

    #[test]
    fn precedence() {
        let rc = "search svc.from.resolv\n";
        assert_eq!(
            cluster_domain(Some("configured.example."), Some(rc)),
            ("configured.example".into(), DomainSource::Configured)
        );
        assert_eq!(cluster_domain(Some("  "), Some(rc)), ("from.resolv".into(), DomainSource::ResolvConf));
        assert_eq!(cluster_domain(None, None), ("cluster.local".into(), DomainSource::Default));
        assert_eq!(cluster_domain(None, Some("nameserver 8.8.8.8")), ("cluster.local".into(), DomainSource::Default));
    }

    #[test]
    fn default_image_is_versioned() {
        assert!(default_registry_image().ends_with(env!("CARGO_PKG_VERSION")));
    }
}
