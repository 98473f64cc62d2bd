//! skopeo and crane, run with deadlines.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::*;

// ---------------------------------------------------------------- skopeo / crane

pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

pub fn skopeo() -> Command {
    let mut c = Command::new(tool("skopeo"));
    // A policy that accepts everything, kept in the tool cache, so no
    // /etc/containers configuration is needed or used.
    let policy = cache_dir().join("skopeo-policy.json");
    if std::fs::read(&policy).ok().as_deref() != Some(SKOPEO_POLICY) {
        std::fs::create_dir_all(cache_dir()).unwrap();
        let tmp = policy.with_extension(format!("{}.tmp", std::process::id()));
        std::fs::write(&tmp, SKOPEO_POLICY).unwrap();
        std::fs::rename(&tmp, &policy).unwrap();
    }
    c.arg("--policy").arg(policy).arg("--insecure-policy");
    // No registries.conf or auth files from the machine.
    c.env("REGISTRY_AUTH_FILE", cache_dir().join("empty-auth.json"));
    c
}

const SKOPEO_POLICY: &[u8] = br#"{"default":[{"type":"insecureAcceptAnything"}]}"#;

pub fn crane() -> Command {
    let mut c = Command::new(tool("crane"));
    // No credential helpers or docker config from the environment (the directory need not exist).
    c.env("DOCKER_CONFIG", cache_dir().join("empty-docker-config"));
    c
}

/// `skopeo copy --all --preserve-digests oci:<layout>:<tag> docker://<addr>/<repo>:<tag>`.
pub fn skopeo_push(layout: &Path, tag: &str, addr: &str, repo: &str) -> Output {
    run_ok(
        skopeo()
            .args(["copy", "--all", "--preserve-digests", "--retry-times", "0", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{addr}/{repo}:{tag}")),
        CLIENT_TIMEOUT,
    )
}

/// `skopeo copy --all docker://<addr>/<repo>:<tag> oci:<out>:<tag>`.
pub fn skopeo_pull(addr: &str, repo: &str, tag: &str, out: &Path) -> Output {
    run_ok(
        skopeo()
            .args(["copy", "--all", "--preserve-digests", "--retry-times", "0", "--src-tls-verify=false"])
            .arg(format!("docker://{addr}/{repo}:{tag}"))
            .arg(format!("oci:{}:{tag}", out.display())),
        CLIENT_TIMEOUT,
    )
}

/// Pulls `repo:tag` with skopeo into a fresh layout and asserts the index
/// digest and the set of blobs equal `img`'s.
pub fn assert_pull_matches(addr: &str, repo: &str, tag: &str, img: &MultiArchImage, scratch: &Path) {
    let out = scratch.join(format!("pull-{}-{tag}", repo.replace('/', "_")));
    let _ = std::fs::remove_dir_all(&out);
    skopeo_pull(addr, repo, tag, &out);
    let (top, blobs) = read_layout(&out, Some(tag));
    assert_eq!(top["digest"], img.index.digest.as_str(), "index digest of {repo}:{tag} changed: {top}");
    assert_eq!(top["mediaType"], MT_INDEX, "{top}");
    let want: BTreeSet<String> = img.all_blobs().iter().map(|b| b.digest.clone()).collect();
    assert_eq!(blobs, want, "blobs pulled from {repo}:{tag} differ from those pushed");
}
