//! What the agent writes, from the operator's plan, checked. Pure and free
//! of the operator's other modules (std and serde only), so the fuzz target
//! compiles it as it is: the plan is the agent's only input.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{certs, hosts_file};

/// Marker comment prefix of every line and file the agent writes.
pub const MARKER: &str = "wharf-node-access";

/// One hosts-file line on every node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanEntry {
    /// The Service's ClusterIP.
    pub ip: String,
    /// The FQDN it answers for.
    pub host: String,
    /// `<namespace>/<name>` of the resource, for the marker.
    pub owner: String,
}

/// One `<certs dir>/<host>/hosts.toml` on every node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanHost {
    /// The host as containerd looks it up.
    pub host: String,
    /// `<namespace>/<name>` of the resource, for the marker.
    pub owner: String,
    /// The registry's URL.
    pub url: String,
    /// An upstream served by a mirror (no `server` line), rather than the registry's own host.
    pub mirror: bool,
    /// Whether containerd may push there.
    pub push: bool,
    /// PEM to trust for an https `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

/// Everything the node agent writes, on every node. The operator publishes it
/// in a ConfigMap in its own namespace (`crate::node_access`); the agent only reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlan {
    /// Hosts-file lines.
    pub entries: Vec<PlanEntry>,
    /// containerd host files.
    pub hosts: Vec<PlanHost>,
}

/// `<namespace>/<name>` of the resource a line or file serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner(String);

impl Owner {
    /// The comment text that marks what the agent wrote for this owner, without the `#`.
    pub fn marker_comment(&self) -> String {
        format!("{MARKER} {}", self.0)
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_host_name(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Host name with an optional `:port`: what may name a directory under the certs dir.
fn is_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => is_host_name(host) && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => is_host_name(s),
    }
}

/// Parses an owner, `<namespace>/<name>`.
pub fn parse_owner(s: &str) -> Result<Owner, String> {
    match s.split_once('/') {
        Some((ns, name)) if is_dns_label(ns) && is_host_name(name) => Ok(Owner(s.to_string())),
        _ => Err(format!("`{s}` is not <namespace>/<name> (lowercase DNS names)")),
    }
}

/// Checks a registry URL: `http(s)://host[:port]`, nothing else.
fn check_url(url: &str) -> Result<(), String> {
    let authority = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("`{url}`: the URL must start with http:// or https://"))?;
    if !is_host_port(authority) {
        return Err(format!("`{url}`: the URL must be scheme://host[:port], without a path or user info"));
    }
    Ok(())
}

/// What the agent writes for a plan, checked: entries that could escape the
/// certs dir or break the hosts file are dropped and reported, never written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Files {
    /// Hosts-file lines.
    pub lines: Vec<hosts_file::Line>,
    /// `hosts.toml` files.
    pub hosts: Vec<certs::HostConfig>,
    /// What was dropped, and why.
    pub rejected: Vec<String>,
}

/// Turns the operator's plan into the node files under `certs_dir`.
pub fn files(plan: &NodePlan, certs_dir: &Path) -> Files {
    let mut out = Files::default();
    for e in &plan.entries {
        let checked = parse_owner(&e.owner).and_then(|owner| {
            let ip = e.ip.parse().map_err(|_| format!("`{}` is not an IP address", e.ip))?;
            if !is_host_name(&e.host) || !e.host.contains('.') {
                return Err(format!("`{}` is not a fully qualified lowercase host name", e.host));
            }
            Ok(hosts_file::Line { ip, host: e.host.clone(), owner })
        });
        match checked {
            Ok(line) => out.lines.push(line),
            Err(why) => out.rejected.push(why),
        }
    }
    for h in &plan.hosts {
        let checked = parse_owner(&h.owner).and_then(|owner| {
            if !is_host_port(&h.host) {
                return Err(format!("`{}` is not a lowercase host name with an optional port", h.host));
            }
            check_url(&h.url)?;
            let ca = h.ca_pem.as_ref().filter(|_| h.url.starts_with("https://"));
            let ca_path = ca.map(|_| certs_dir.join(&h.host).join(certs::CA_FILE));
            Ok(certs::HostConfig {
                host: h.host.clone(),
                toml: certs::hosts_toml(&owner, &h.url, h.mirror, h.push, ca_path.as_deref()),
                ca_pem: ca.map(|p| p.clone().into_bytes()),
            })
        });
        match checked {
            Ok(c) => out.hosts.push(c),
            Err(why) => out.rejected.push(why),
        }
    }
    out
}
