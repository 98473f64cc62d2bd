//! `wharf-operator node-agent`: the node side of in-cluster image pulls.
//!
//! A node's containerd resolves names with the node's resolver, so it cannot
//! resolve `<svc>.<ns>.svc.<clusterDomain>`, the host in image references and
//! in the token realm. And containerd (1.6+) sends a pod's pull secret only
//! to hosts named like the image's registry host.
//!
//! One agent per node, run by the chart's DaemonSet in the operator's
//! namespace, makes the node match the operator's [`NodePlan`], which the
//! operator publishes in one ConfigMap after applying the cluster admin's
//! policy (`crate::node_access`). The agent decides nothing: it
//!
//! 1. keeps `<ClusterIP> <fqdn>` lines in the node's hosts file, each marked
//!    `# wharf-node-access <ns>/<name>` ([`hosts_file`]);
//! 2. keeps `<certs dir>/<host>/hosts.toml` for each planned host ([`certs`]);
//! 3. on SIGTERM (the chart removed, or the agent rolled) removes every line
//!    and file it wrote, and nothing else.
//!
//! Parsing and file edits are plain functions; [`run`] is the thin watch loop.

pub mod certs;
pub mod files;
pub mod hosts_file;

use std::future::Future;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt, watcher};

pub use files::{Files, MARKER, NodePlan, Owner, PlanEntry, PlanHost, files, parse_owner};

/// The ConfigMap key that holds the plan, as JSON.
pub const PLAN_KEY: &str = "plan.json";

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
    /// Namespace of the plan ConfigMap (the operator's).
    #[arg(long, env = "POD_NAMESPACE", default_value = "wharf-system")]
    pub namespace: String,
    /// Name of the ConfigMap the operator publishes the plan in.
    #[arg(long, default_value = crate::names::NODE_ACCESS_PLAN)]
    pub plan: String,
    /// Human-readable logs instead of JSON.
    #[arg(long)]
    pub text_logs: bool,
}

/// Why the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No API client (the agent runs in a pod with a service account).
    #[error("connecting to the Kubernetes API: {0}")]
    Client(#[source] kube::Error),
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

/// Makes the node hold exactly `plan`'s lines and files (of the agent's own); idempotent.
pub fn install(plan: &NodePlan, hosts_file_path: &Path, certs_dir: &Path) -> Result<(), Error> {
    let files = files(plan, certs_dir);
    if !files.rejected.is_empty() {
        tracing::error!(rejected = ?files.rejected, "plan entries refused; the rest is applied");
    }
    let changed = hosts_file::edit(hosts_file_path, |t| hosts_file::with_lines(t, &files.lines))
        .map_err(|source| Error::EditHostsFile { path: hosts_file_path.to_path_buf(), source })?;
    let entries: Vec<String> = files.lines.iter().map(|l| format!("{} {}", l.ip, l.host)).collect();
    tracing::info!(file = %hosts_file_path.display(), ?entries, changed, "hosts file entries in place");
    let report = certs::apply(certs_dir, &files.hosts).map_err(|(path, source)| Error::HostsToml { path, source })?;
    tracing::info!(
        certs_dir = %certs_dir.display(),
        written = ?report.written,
        removed = ?report.removed,
        "containerd host configuration in place"
    );
    if !report.foreign.is_empty() {
        tracing::warn!(hosts = ?report.foreign, "left alone: these hosts already have a hosts.toml the agent did not write");
    }
    Ok(())
}

/// Removes every line and file the agent wrote (and only those).
pub fn uninstall(hosts_file_path: &Path, certs_dir: &Path) -> Result<(), Error> {
    install(&NodePlan::default(), hosts_file_path, certs_dir)
}

/// The plan a ConfigMap holds; a malformed one is an error the caller logs (the node keeps what it has).
pub fn plan_of(cm: &ConfigMap) -> Result<NodePlan, String> {
    match cm.data.as_ref().and_then(|d| d.get(PLAN_KEY)) {
        None => Ok(NodePlan::default()),
        Some(text) => serde_json::from_str(text).map_err(|e| format!("{PLAN_KEY} is not a node plan: {e}")),
    }
}

/// Follows the plan ConfigMap until `shutdown`, then removes everything it wrote.
pub async fn run(args: Args, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let client = kube::Client::try_default().await.map_err(Error::Client)?;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, &args.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", args.plan));
    let mut events = watcher(api, config).default_backoff().boxed();
    tracing::info!(namespace = %args.namespace, plan = %args.plan, "following the node-access plan");
    let follow = async {
        let mut initial: Option<ConfigMap> = None;
        while let Some(event) = events.next().await {
            let current = match event {
                Ok(watcher::Event::Init) => {
                    initial = None;
                    continue;
                }
                Ok(watcher::Event::InitApply(cm)) => {
                    initial = Some(cm);
                    continue;
                }
                Ok(watcher::Event::InitDone) => initial.take(),
                Ok(watcher::Event::Apply(cm)) => Some(cm),
                Ok(watcher::Event::Delete(_)) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "watching the plan failed; the node keeps what it has");
                    continue;
                }
            };
            let plan = match current.as_ref().map(plan_of).unwrap_or_else(|| Ok(NodePlan::default())) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "the node keeps what it has");
                    continue;
                }
            };
            if let Err(e) = install(&plan, &args.hosts_file, &args.certs_dir) {
                tracing::error!(error = %e, "applying the plan failed; retrying at the next change");
            }
        }
    };
    tokio::select! {
        () = follow => tracing::warn!("the plan watch ended"),
        () = shutdown => {}
    }
    uninstall(&args.hosts_file, &args.certs_dir)?;
    tracing::info!("node access removed; exiting");
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

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

    fn host(host: &str, owner: &str, url: &str, mirror: bool) -> PlanHost {
        PlanHost { host: host.into(), owner: owner.into(), url: url.into(), mirror, push: !mirror, ca_pem: None }
    }

    #[test]
    fn hostile_plan_entries_are_dropped_not_written() {
        let plan = NodePlan {
            entries: vec![
                PlanEntry { ip: "198.19.0.1".into(), host: "r.ns.svc.cluster.local".into(), owner: "ns/r".into() },
                PlanEntry { ip: "10.0.0.300".into(), host: "x.ns.svc".into(), owner: "ns/x".into() },
                PlanEntry { ip: "198.19.0.2".into(), host: "registry".into(), owner: "ns/y".into() },
                PlanEntry { ip: "198.19.0.3".into(), host: "a.b\n1.2.3.4 evil".into(), owner: "ns/z".into() },
            ],
            hosts: vec![
                host("r.ns.svc.cluster.local:5000", "ns/r", "http://r.ns.svc.cluster.local:5000", false),
                host("../etc", "ns/r", "http://r.ns.svc.cluster.local:5000", true),
                host("docker.io", "ns/r", "http://r.ns:5000/path", true),
                host("ghcr.io", "ns/r", "ftp://r.ns:5000", true),
                host("quay.io", "reg", "http://r.ns:5000", true),
            ],
        };
        let f = files(&plan, Path::new("/etc/containerd/certs.d"));
        assert_eq!(f.lines.len(), 1);
        assert_eq!(f.hosts.len(), 1);
        assert_eq!(f.hosts[0].host, "r.ns.svc.cluster.local:5000");
        let why = f.rejected.join("\n");
        for want in [
            "not an IP address",
            "fully qualified",
            "not a lowercase host name",
            "without a path",
            "http://",
            "<namespace>/<name>",
        ] {
            assert!(why.contains(want), "{want} missing from {why}");
        }
    }

    #[test]
    fn install_follows_the_plan_and_uninstall_restores_the_node() {
        let dir = TempDir::new("install");
        let hosts = dir.path().join("hosts");
        let certs_dir = dir.path().join("certs.d");
        std::fs::write(&hosts, "127.0.0.1 localhost\n").expect("hosts");
        std::fs::create_dir_all(certs_dir.join("ghcr.io")).expect("mkdir");
        std::fs::write(certs_dir.join("ghcr.io/hosts.toml"), "server = \"https://ghcr.io\"\n").expect("foreign");
        let mirror = "https://hub.team-a.svc.cluster.local:5000";
        let mut plan = NodePlan {
            entries: vec![PlanEntry {
                ip: "198.19.0.20".into(),
                host: "hub.team-a.svc.cluster.local".into(),
                owner: "team-a/hub".into(),
            }],
            hosts: vec![
                host("hub.team-a.svc.cluster.local:5000", "team-a/hub", mirror, false),
                host("docker.io", "team-a/hub", mirror, true),
                host("ghcr.io", "team-a/hub", mirror, true),
            ],
        };
        plan.hosts[1].ca_pem = Some("PEM".into());
        install(&plan, &hosts, &certs_dir).expect("install");
        let text = std::fs::read_to_string(&hosts).expect("hosts");
        assert!(text.contains("198.19.0.20\thub.team-a.svc.cluster.local\t# wharf-node-access team-a/hub"), "{text}");
        let toml = std::fs::read_to_string(certs_dir.join("docker.io/hosts.toml")).expect("toml");
        assert!(toml.contains("capabilities = [\"pull\", \"resolve\"]"), "{toml}");
        let ca_path = certs_dir.join("docker.io").join(certs::CA_FILE);
        assert!(toml.contains(&format!("ca = \"{}\"", ca_path.display())), "{toml}");
        assert_eq!(std::fs::read(&ca_path).expect("ca"), b"PEM");
        assert_eq!(
            std::fs::read_to_string(certs_dir.join("ghcr.io/hosts.toml")).expect("foreign"),
            "server = \"https://ghcr.io\"\n",
            "someone else's file is never taken over"
        );
        // The owner changes (the next claimant took docker.io): the file follows.
        plan.hosts[1].owner = "team-b/hub".into();
        install(&plan, &hosts, &certs_dir).expect("reinstall");
        let toml = std::fs::read_to_string(certs_dir.join("docker.io/hosts.toml")).expect("toml");
        assert!(toml.starts_with("# wharf-node-access team-b/hub\n"), "{toml}");

        uninstall(&hosts, &certs_dir).expect("uninstall");
        assert_eq!(std::fs::read_to_string(&hosts).expect("hosts"), "127.0.0.1 localhost\n");
        let left: Vec<_> = std::fs::read_dir(&certs_dir).expect("dir").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("ghcr.io")], "only the foreign host is left");
    }

    #[test]
    fn plan_of_reads_the_configmap() {
        let mut cm = ConfigMap::default();
        assert_eq!(plan_of(&cm), Ok(NodePlan::default()));
        cm.data = Some([(PLAN_KEY.to_string(), "{\"entries\": [], \"hosts\": []}".to_string())].into());
        assert_eq!(plan_of(&cm), Ok(NodePlan::default()));
        cm.data = Some([(PLAN_KEY.to_string(), "nope".to_string())].into());
        assert!(plan_of(&cm).expect_err("malformed").contains("is not a node plan"));
    }
}
