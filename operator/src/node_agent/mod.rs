//! `wharf-operator node-agent`: the node side of in-cluster image pulls.
//!
//! A node's containerd resolves names with the node's resolver, so it cannot
//! resolve `<svc>.<ns>.svc.<clusterDomain>`, the host in image references and
//! in the token realm. And containerd (1.6+) sends a pod's pull secret only
//! to hosts named like the image's registry host. So the agent, run by a
//! DaemonSet on every node:
//!
//! 1. adds `<ClusterIP> <fqdn>` lines to the node's hosts file, each marked
//!    `# wharf-node-access <ns>/<name>` ([`hosts_file`]);
//! 2. writes `<certs dir>/<host>/hosts.toml` for the registry (plain http, or
//!    https with the registry's certificate) and, for a mirror, for each
//!    upstream host, pointing containerd at the mirror ([`certs`]);
//! 3. waits for SIGTERM or SIGINT and undoes exactly its own changes.
//!
//! Parsing and file edits are plain functions; [`run`] is the thin loop.
//! The operator builds the DaemonSet that runs this
//! (`registry_controller::build::node_access`).

pub mod certs;
pub mod hosts_file;

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use certs::HostConfig;

/// Marker comment prefix of every line and file the agent writes.
pub const MARKER: &str = "wharf-node-access";

/// The command line of `wharf-operator node-agent`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// The node's hosts file (a hostPath mount of type File).
    #[arg(long, default_value = "/etc/hosts")]
    pub hosts_file: PathBuf,
    /// containerd's `config_path` (a hostPath mount at the same path as on the node,
    /// since `hosts.toml` names files by their node path).
    #[arg(long, default_value = "/etc/containerd/certs.d")]
    pub certs_dir: PathBuf,
    /// `<namespace>/<name>` of the Registry or RegistryMirror: the marker on everything written.
    #[arg(long, value_parser = parse_owner)]
    pub owner: Owner,
    /// `<ip>=<hostname>`: a hosts-file line (the Service's ClusterIP and its FQDN). Repeatable.
    #[arg(long = "host-entry", value_name = "IP=HOSTNAME", value_parser = parse_host_entry)]
    pub host_entries: Vec<HostEntry>,
    /// `<host[:port]>=<url>`: a registry reached by its own name. Repeatable.
    #[arg(long = "registry", value_name = "HOST=URL", value_parser = parse_route)]
    pub registries: Vec<Route>,
    /// `<upstream host[:port]>=<mirror url>`: pull images of the upstream host through the mirror. Repeatable.
    #[arg(long = "mirror", value_name = "HOST=URL", value_parser = parse_route)]
    pub mirrors: Vec<Route>,
    /// Leave `push` out of the registries' capabilities (a mirror refuses pushes).
    #[arg(long)]
    pub pull_only: bool,
    /// PEM certificate containerd trusts for the https URLs (copied next to each `hosts.toml`).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Human-readable logs instead of JSON.
    #[arg(long)]
    pub text_logs: bool,
}

/// `<namespace>/<name>` of the owning resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner(String);

impl Owner {
    /// The comment text that marks what this owner wrote, without the `#`.
    pub fn marker_comment(&self) -> String {
        format!("{MARKER} {}", self.0)
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One hosts-file line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEntry {
    /// Address (a Service's ClusterIP).
    pub ip: IpAddr,
    /// Fully qualified host name.
    pub host: String,
}

/// A host as containerd looks it up (`<certs dir>/<host>/`), and the URL it is sent to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Host, with a port when not the default.
    pub host: String,
    /// `http(s)://host[:port]`.
    pub url: String,
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

/// Parses `--owner`.
pub fn parse_owner(s: &str) -> Result<Owner, String> {
    match s.split_once('/') {
        Some((ns, name)) if is_dns_label(ns) && is_host_name(name) => Ok(Owner(s.to_string())),
        _ => Err(format!("`{s}` is not <namespace>/<name> (lowercase DNS names)")),
    }
}

/// Parses `--host-entry <ip>=<hostname>`.
pub fn parse_host_entry(s: &str) -> Result<HostEntry, String> {
    let (ip, host) = s.split_once('=').ok_or_else(|| format!("`{s}` is not <ip>=<hostname>"))?;
    let ip: IpAddr = ip.parse().map_err(|_| format!("`{s}`: `{ip}` is not an IP address"))?;
    if !is_host_name(host) || !host.contains('.') {
        return Err(format!("`{s}`: `{host}` is not a fully qualified lowercase host name"));
    }
    Ok(HostEntry { ip, host: host.to_string() })
}

/// Parses `--registry` and `--mirror`: `<host[:port]>=<http(s)://host[:port]>`.
pub fn parse_route(s: &str) -> Result<Route, String> {
    let (host, url) = s.split_once('=').ok_or_else(|| format!("`{s}` is not <host[:port]>=<url>"))?;
    if !is_host_port(host) {
        return Err(format!("`{s}`: `{host}` is not a lowercase host name with an optional port"));
    }
    let authority = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("`{s}`: the URL must start with http:// or https://"))?;
    if !is_host_port(authority) {
        return Err(format!("`{s}`: the URL must be scheme://host[:port], without a path or user info"));
    }
    Ok(Route { host: host.to_string(), url: url.to_string() })
}

/// Why the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing to do: the arguments name no entry.
    #[error("nothing to do: give at least one --host-entry, --registry or --mirror")]
    NothingToDo,
    /// An https URL without `--ca-file`, or the file is unreadable.
    #[error("reading the CA file {path}: {source}")]
    ReadCa {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Editing the hosts file failed.
    #[error("editing the hosts file {path}: {source}")]
    EditHostsFile {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing or removing containerd host configuration failed.
    #[error("updating containerd host configuration at {path}: {source}")]
    HostsToml {
        /// The file or directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Everything the agent writes, derived from the arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Owner marker.
    pub owner: Owner,
    /// Hosts file path.
    pub hosts_file: PathBuf,
    /// Certs dir.
    pub certs_dir: PathBuf,
    /// Hosts-file lines.
    pub host_entries: Vec<HostEntry>,
    /// `hosts.toml` files.
    pub hosts: Vec<HostConfig>,
}

/// Builds the plan; `ca_pem` is the content of `--ca-file`, read by the caller.
pub fn plan(args: &Args, ca_pem: Option<&[u8]>) -> Result<Plan, Error> {
    if args.host_entries.is_empty() && args.registries.is_empty() && args.mirrors.is_empty() {
        return Err(Error::NothingToDo);
    }
    let routes = args.registries.iter().map(|r| (r, false)).chain(args.mirrors.iter().map(|r| (r, true)));
    let hosts = routes
        .map(|(route, mirror)| {
            let https = route.url.starts_with("https://");
            let ca = ca_pem.filter(|_| https);
            let ca_path = ca.map(|_| args.certs_dir.join(&route.host).join(certs::CA_FILE));
            HostConfig {
                host: route.host.clone(),
                toml: certs::hosts_toml(&args.owner, route, mirror, !args.pull_only, ca_path.as_deref()),
                ca_pem: ca.map(<[u8]>::to_vec),
            }
        })
        .collect();
    Ok(Plan {
        owner: args.owner.clone(),
        hosts_file: args.hosts_file.clone(),
        certs_dir: args.certs_dir.clone(),
        host_entries: args.host_entries.clone(),
        hosts,
    })
}

/// Writes the plan's lines and files; idempotent, and replaces this owner's earlier ones.
pub fn install(plan: &Plan) -> Result<(), Error> {
    let changed = hosts_file::edit(&plan.hosts_file, |t| hosts_file::with_entries(t, &plan.owner, &plan.host_entries))
        .map_err(|source| Error::EditHostsFile { path: plan.hosts_file.clone(), source })?;
    let entries: Vec<String> = plan.host_entries.iter().map(|e| format!("{} {}", e.ip, e.host)).collect();
    tracing::info!(owner = %plan.owner, file = %plan.hosts_file.display(), ?entries, changed, "hosts file entries in place");
    let report = certs::apply(&plan.certs_dir, &plan.owner, &plan.hosts)
        .map_err(|(path, source)| Error::HostsToml { path, source })?;
    tracing::info!(
        owner = %plan.owner,
        certs_dir = %plan.certs_dir.display(),
        written = ?report.written,
        removed = ?report.removed,
        "containerd host configuration in place"
    );
    if !report.foreign.is_empty() {
        tracing::warn!(
            owner = %plan.owner,
            hosts = ?report.foreign,
            "left alone: these hosts already have a hosts.toml the agent did not write"
        );
    }
    Ok(())
}

/// Removes this owner's lines and files (and only those).
pub fn uninstall(owner: &Owner, hosts_file_path: &Path, certs_dir: &Path) -> Result<(), Error> {
    let changed = hosts_file::edit(hosts_file_path, |t| hosts_file::without_owner(t, owner))
        .map_err(|source| Error::EditHostsFile { path: hosts_file_path.to_path_buf(), source })?;
    tracing::info!(owner = %owner, file = %hosts_file_path.display(), changed, "hosts file entries removed");
    let removed = certs::remove_all(certs_dir, owner).map_err(|(path, source)| Error::HostsToml { path, source })?;
    tracing::info!(owner = %owner, certs_dir = %certs_dir.display(), ?removed, "containerd host configuration removed");
    Ok(())
}

/// Installs, waits for `shutdown`, uninstalls. A failed install is undone before the error is returned.
pub async fn run(args: Args, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let ca_pem = match &args.ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|source| Error::ReadCa { path: path.clone(), source })?),
        None => None,
    };
    let plan = plan(&args, ca_pem.as_deref())?;
    if let Err(e) = install(&plan) {
        tracing::error!(error = %e, "install failed; undoing what was written");
        if let Err(undo) = uninstall(&plan.owner, &plan.hosts_file, &plan.certs_dir) {
            tracing::error!(error = %undo, "undo failed too");
        }
        return Err(e);
    }
    tracing::info!(owner = %plan.owner, "node access in place; waiting for SIGTERM");
    shutdown.await;
    uninstall(&plan.owner, &plan.hosts_file, &plan.certs_dir)?;
    tracing::info!(owner = %plan.owner, "node access removed; exiting");
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::Parser;

    /// A directory under the system temp dir, removed on drop.
    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!("wharf-node-agent-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).expect("temp dir");
            TempDir(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Result<Args, String> {
        Cli::try_parse_from(std::iter::once("node-agent").chain(argv.iter().copied()))
            .map(|c| c.args)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn malformed_arguments_say_what_is_wrong() {
        let cases = [
            (vec!["--owner", "reg"], "is not <namespace>/<name>"),
            (vec!["--owner", "ns/r", "--host-entry", "10.0.0.1"], "is not <ip>=<hostname>"),
            (vec!["--owner", "ns/r", "--host-entry", "10.0.0.300=r.ns.svc"], "is not an IP address"),
            (vec!["--owner", "ns/r", "--host-entry", "10.0.0.1=registry"], "fully qualified"),
            (vec!["--owner", "ns/r", "--registry", "r.ns:5000=ftp://r.ns:5000"], "http:// or https://"),
            (vec!["--owner", "ns/r", "--mirror", "docker.io=http://m.ns:5000/path"], "without a path"),
            (vec!["--owner", "ns/r", "--mirror", "../etc=http://m.ns:5000"], "not a lowercase host name"),
            (vec!["--host-entry", "10.0.0.1=r.ns.svc"], "--owner"),
        ];
        for (argv, want) in cases {
            let err = parse(&argv).expect_err("rejected");
            assert!(err.contains(want), "{argv:?}: {err}");
        }
        let ok = parse(&["--owner", "ns/r"]).expect("parses");
        assert!(matches!(plan(&ok, None), Err(Error::NothingToDo)));
    }

    #[test]
    fn run_installs_then_undoes_on_shutdown() {
        let dir = TempDir::new("run");
        let hosts = dir.path().join("hosts");
        let certs_dir = dir.path().join("certs.d");
        let ca = dir.path().join("ca.crt");
        std::fs::write(&hosts, "127.0.0.1 localhost\n").expect("hosts");
        std::fs::write(&ca, "PEM").expect("ca");
        let args = parse(&[
            "--hosts-file",
            hosts.to_str().expect("utf-8"),
            "--certs-dir",
            certs_dir.to_str().expect("utf-8"),
            "--owner",
            "team-a/hub",
            "--host-entry",
            "10.96.0.20=hub.team-a.svc.cluster.local",
            "--registry",
            "hub.team-a.svc.cluster.local:5000=https://hub.team-a.svc.cluster.local:5000",
            "--mirror",
            "docker.io=https://hub.team-a.svc.cluster.local:5000",
            "--pull-only",
            "--ca-file",
            ca.to_str().expect("utf-8"),
        ])
        .expect("parses");
        let (hosts2, certs2) = (hosts.clone(), certs_dir.clone());
        // The shutdown future is first polled after install: it checks what is on disk, then lets the agent undo.
        let shutdown = async move {
            let text = std::fs::read_to_string(&hosts2).expect("hosts");
            assert!(text.contains("10.96.0.20\thub.team-a.svc.cluster.local\t# wharf-node-access team-a/hub"));
            let toml = std::fs::read_to_string(certs2.join("docker.io/hosts.toml")).expect("toml");
            assert!(toml.contains("capabilities = [\"pull\", \"resolve\"]"), "{toml}");
            let ca_path = certs2.join("docker.io").join(certs::CA_FILE);
            assert!(toml.contains(&format!("ca = \"{}\"", ca_path.display())), "{toml}");
            let own =
                std::fs::read_to_string(certs2.join("hub.team-a.svc.cluster.local:5000/hosts.toml")).expect("toml");
            assert!(own.contains("server = \"https://hub.team-a.svc.cluster.local:5000\""), "{own}");
            assert!(!own.contains("push"), "--pull-only: {own}");
        };
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let result = rt.block_on(run(args, shutdown));
        result.expect("agent exits cleanly");
        assert_eq!(std::fs::read_to_string(&hosts).expect("hosts"), "127.0.0.1 localhost\n");
        assert_eq!(std::fs::read_dir(&certs_dir).expect("certs dir").count(), 0, "every file it wrote is gone");
    }
}
