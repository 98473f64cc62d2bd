//! containerd's per-host configuration: `<certs dir>/<host>/hosts.toml`.
//!
//! Every file the agent writes starts with a marker line naming the resource
//! it serves; a directory is only ever changed or removed when its
//! `hosts.toml` carries the marker. A `hosts.toml` written by anyone else is
//! left alone (and reported), so the agent never takes over a host the node's
//! admin configured, and removing the agent restores the node as it was. The
//! CA file has a name of its own ([`CA_FILE`]) so that it cannot clobber a
//! `ca.crt` someone else put there.

use std::io;
use std::path::{Path, PathBuf};

use super::files::{MARKER, Owner};

/// Name of containerd's per-host file.
pub const HOSTS_TOML: &str = "hosts.toml";
/// Name of the CA certificate the agent writes next to it.
pub const CA_FILE: &str = "wharf-node-access-ca.crt";

/// One `hosts.toml` the agent wants: its directory name and content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostConfig {
    /// The host as it appears in image references (`docker.io`, `reg.ns.svc.cluster.local:5000`).
    pub host: String,
    /// The `hosts.toml` text.
    pub toml: String,
    /// PEM to write as [`CA_FILE`], for an https endpoint.
    pub ca_pem: Option<Vec<u8>>,
}

/// What applying did, for the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Hosts whose file was written (or already right).
    pub written: Vec<String>,
    /// Hosts left alone because someone else's `hosts.toml` is there.
    pub foreign: Vec<String>,
    /// Hosts the agent wrote earlier and no longer wants, removed.
    pub removed: Vec<String>,
}

/// The `hosts.toml` for a route to `url`.
///
/// - A registry's own host (`mirror: false`) is its own server: the file only
///   says to speak plain http (or which CA to trust) to it. The host name is
///   the image's registry host, so containerd sends the pod's pull secret.
/// - A mirror route sets no `server`: containerd falls back to what it does
///   without this file (`https://<host>`, or registry-1.docker.io for
///   docker.io). The mirror gets `?ns=<host>` from containerd and picks the
///   upstream by it.
pub fn hosts_toml(owner: &Owner, url: &str, mirror: bool, push: bool, ca_path: Option<&Path>) -> String {
    let mut out = format!(
        "# {}\n# Written by `wharf-operator node-agent`; removed again when the agent stops. Do not edit.\n",
        owner.marker_comment()
    );
    if !mirror {
        out.push_str(&format!("server = \"{url}\"\n"));
    }
    let capabilities = if push && !mirror { r#"["pull", "resolve", "push"]"# } else { r#"["pull", "resolve"]"# };
    out.push_str(&format!("\n[host.\"{url}\"]\n  capabilities = {capabilities}\n"));
    if let Some(ca) = ca_path {
        out.push_str(&format!("  ca = \"{}\"\n", ca.display()));
    }
    out
}

/// Whether a `hosts.toml` text is the agent's.
pub fn is_ours(text: &str) -> bool {
    text.lines()
        .next()
        .and_then(|l| l.trim().strip_prefix("# "))
        .and_then(|c| c.strip_prefix(MARKER))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
}

fn read_opt(path: &Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `content` to `path` through a temporary file and a rename, so containerd never reads half a file.
fn write_atomic(path: &Path, content: &[u8]) -> io::Result<()> {
    if read_opt(path)?.is_some_and(|t| t.as_bytes() == content) {
        return Ok(());
    }
    let tmp = path.with_extension("wharf-tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)
}

/// The host directories under `certs_dir` whose `hosts.toml` the agent wrote.
pub fn our_hosts(certs_dir: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(certs_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        if read_opt(&entry.path().join(HOSTS_TOML))?.is_some_and(|t| is_ours(&t)) {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// Removes the agent's files for `host`, and the directory when nothing else is left in it.
pub fn remove_host(certs_dir: &Path, host: &str) -> io::Result<bool> {
    let dir = certs_dir.join(host);
    let toml = dir.join(HOSTS_TOML);
    if !read_opt(&toml)?.is_some_and(|t| is_ours(&t)) {
        return Ok(false);
    }
    for file in [dir.join(CA_FILE), toml] {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    // Fails, harmlessly, when someone else keeps files there.
    let _ = std::fs::remove_dir(&dir);
    Ok(true)
}

/// Makes the certs dir hold exactly `wanted` of the agent's files: writes each
/// host (unless someone else's file is there) and removes the agent's other hosts.
pub fn apply(certs_dir: &Path, wanted: &[HostConfig]) -> Result<Report, (PathBuf, io::Error)> {
    let mut report = Report::default();
    fn at(p: &Path) -> impl FnOnce(io::Error) -> (PathBuf, io::Error) + '_ {
        move |e| (p.to_path_buf(), e)
    }
    for stale in our_hosts(certs_dir).map_err(at(certs_dir))? {
        if !wanted.iter().any(|w| w.host == stale) {
            remove_host(certs_dir, &stale).map_err(at(&certs_dir.join(&stale)))?;
            report.removed.push(stale);
        }
    }
    for w in wanted {
        let dir = certs_dir.join(&w.host);
        let toml = dir.join(HOSTS_TOML);
        if read_opt(&toml).map_err(at(&toml))?.is_some_and(|t| !is_ours(&t)) {
            report.foreign.push(w.host.clone());
            continue;
        }
        std::fs::create_dir_all(&dir).map_err(at(&dir))?;
        if let Some(pem) = &w.ca_pem {
            let ca = dir.join(CA_FILE);
            write_atomic(&ca, pem).map_err(at(&ca))?;
        }
        write_atomic(&toml, w.toml.as_bytes()).map_err(at(&toml))?;
        report.written.push(w.host.clone());
    }
    Ok(report)
}

/// Removes every host the agent wrote; returns the hosts removed.
pub fn remove_all(certs_dir: &Path) -> Result<Vec<String>, (PathBuf, io::Error)> {
    apply(certs_dir, &[]).map(|r| r.removed)
}

#[cfg(test)]
mod tests {
    use super::super::parse_owner;
    use super::super::tests::TempDir;
    use super::*;

    fn config(owner: &str, host: &str, url: &str, mirror: bool) -> HostConfig {
        let o = parse_owner(owner).expect("owner");
        HostConfig { host: host.into(), toml: hosts_toml(&o, url, mirror, true, None), ca_pem: None }
    }

    #[test]
    fn registry_and_mirror_files() {
        let o = parse_owner("team-a/reg").expect("owner");
        assert_eq!(
            hosts_toml(&o, "http://reg.team-a.svc.cluster.local:5000", false, true, None),
            "# wharf-node-access team-a/reg\n\
             # Written by `wharf-operator node-agent`; removed again when the agent stops. Do not edit.\n\
             server = \"http://reg.team-a.svc.cluster.local:5000\"\n\n\
             [host.\"http://reg.team-a.svc.cluster.local:5000\"]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n"
        );
        let ca = Path::new("/etc/containerd/certs.d/docker.io/x.crt");
        let text = hosts_toml(&o, "https://hub.team-a.svc.cluster.local:5000", true, true, Some(ca));
        assert!(!text.contains("server ="), "{text}");
        assert!(text.contains("[host.\"https://hub.team-a.svc.cluster.local:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"/etc/containerd/certs.d/docker.io/x.crt\"\n"), "{text}");
        assert!(is_ours(&text));
        assert!(!is_ours("server = \"https://ghcr.io\"\n"));
        assert!(!is_ours("# wharf-node-accessory\n"));
    }

    #[test]
    fn write_rewrite_and_undo_leave_foreign_files() {
        let dir = TempDir::new("certs");
        let certs = dir.path();
        // Someone else's files: a foreign hosts.toml, and an extra file in a host we will write.
        std::fs::create_dir_all(certs.join("ghcr.io")).expect("mkdir");
        std::fs::write(certs.join("ghcr.io/hosts.toml"), "server = \"https://ghcr.io\"\n").expect("write");
        std::fs::create_dir_all(certs.join("quay.io")).expect("mkdir");
        std::fs::write(certs.join("quay.io/ca.crt"), "theirs").expect("write");

        let reg = "http://reg.team-a.svc.cluster.local:5000";
        let wanted = [
            config("team-a/reg", "reg.team-a.svc.cluster.local:5000", reg, false),
            config("team-a/reg", "ghcr.io", reg, true),
            config("team-a/reg", "quay.io", reg, true),
            config("team-b/hub", "docker.io", "http://hub.team-b.svc.cluster.local:5000", true),
        ];
        let report = apply(certs, &wanted).expect("apply");
        assert_eq!(report.foreign, vec!["ghcr.io".to_string()]);
        assert_eq!(report.written.len(), 3);
        assert_eq!(apply(certs, &wanted).expect("again"), report, "idempotent");

        // A plan without quay.io removes it, keeping the foreign ca.crt.
        let report = apply(certs, &[wanted[0].clone(), wanted[3].clone()]).expect("shrink");
        assert_eq!(report.removed, vec!["quay.io".to_string()]);
        assert_eq!(std::fs::read_to_string(certs.join("quay.io/ca.crt")).expect("theirs"), "theirs");

        let removed = remove_all(certs).expect("undo");
        assert_eq!(removed, vec!["docker.io".to_string(), "reg.team-a.svc.cluster.local:5000".to_string()]);
        assert!(!certs.join("reg.team-a.svc.cluster.local:5000").exists(), "empty dir removed");
        assert_eq!(
            std::fs::read_to_string(certs.join("ghcr.io/hosts.toml")).expect("foreign"),
            "server = \"https://ghcr.io\"\n"
        );
    }

    #[test]
    fn ca_file_is_written_and_removed() {
        let dir = TempDir::new("certs-ca");
        let mut c = config("ns/r", "r.ns.svc.cluster.local:5000", "https://r.ns.svc.cluster.local:5000", false);
        c.ca_pem = Some(b"PEM".to_vec());
        apply(dir.path(), &[c]).expect("apply");
        assert_eq!(std::fs::read(dir.path().join("r.ns.svc.cluster.local:5000").join(CA_FILE)).expect("ca"), b"PEM");
        remove_all(dir.path()).expect("undo");
        assert!(!dir.path().join("r.ns.svc.cluster.local:5000").exists());
    }
}
