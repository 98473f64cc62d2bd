//! Retention policies (`storage.retention`, issue 13) against a running
//! wharf-registry, with images pushed by skopeo and `wharf-registry
//! retention` run as people run it. One test per policy field. Ages are
//! made by backdating the link files (the push time is the mtime of a tag's
//! `current/link`) and by writing the stored pull record, never by waiting.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{Value, json};

const DAY: Duration = Duration::from_secs(24 * 3600);
const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A scratch directory, the storage root under it, and a registry serving it.
struct Setup {
    dir: tempfile::TempDir,
    root: PathBuf,
    reg: RegistryProcess,
    retention: String,
}

impl Setup {
    /// A registry whose config has `retention` (flow YAML) as `storage.retention`.
    fn start(retention: &str) -> Setup {
        let dir = tempfile::Builder::new().prefix("wharf-retention.").tempdir().unwrap();
        let root = dir.path().join("data");
        let reg = RegistryProcess::start(Kind::Wharf, &config(&root, retention));
        Setup { dir, root, reg, retention: retention.to_string() }
    }

    /// Pushes a small multi-arch image (distinct per `seed`) as `repo:tag` with skopeo.
    fn push(&self, repo: &str, tag: &str, seed: u64) -> MultiArchImage {
        let img = MultiArchImage::generate(seed, 2, 2 << 10);
        let layout = self.dir.path().join(format!("layout-{seed}"));
        img.write_layout(&layout, tag);
        skopeo_push(&layout, tag, &self.reg.addr, repo);
        img
    }

    /// Runs `wharf-registry retention` with `retention` (or the registry's own) and extra args.
    fn retention(&self, retention: Option<&str>, args: &[&str]) -> String {
        let file = self.dir.path().join("retention.yml");
        std::fs::write(&file, config(&self.root, retention.unwrap_or(&self.retention))).unwrap();
        run_retention(&file, args)
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.root.join("docker/registry/v2/repositories").join(repo).join("_manifests")
    }

    /// Makes `repo:tag` look pushed `ago`.
    fn age_tag(&self, repo: &str, tag: &str, ago: Duration) {
        set_mtime(&self.repo_dir(repo).join("tags").join(tag).join("current/link"), ago);
    }

    /// Makes every tag and revision of `repo` look written `ago`.
    fn age_repo(&self, repo: &str, ago: Duration) {
        for f in files_in(&self.repo_dir(repo)) {
            set_mtime(&f, ago);
        }
    }

    fn tags(&self, repo: &str) -> BTreeSet<String> {
        tags(&self.reg, repo)
    }

    /// The status of `GET /v2/<repo>/manifests/<digest>`.
    fn manifest_status(&self, repo: &str, digest: &str) -> u16 {
        let url = self.reg.url(&format!("/v2/{repo}/manifests/{digest}"));
        http().get(url).header("Accept", ACCEPT_ALL).send().unwrap().status().as_u16()
    }

    fn pulls_file(&self, repo: &str) -> PathBuf {
        self.root.join("wharf/pulls").join(repo).join("_pulls.json")
    }

    /// Uploads a blob in one request.
    fn upload(&self, repo: &str, blob: &Blob) {
        let url = self.reg.url(&format!("/v2/{repo}/blobs/uploads/?digest={}", blob.digest));
        let r = http().post(url).body(blob.bytes.clone()).send().unwrap();
        assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap_or_default());
    }

    /// Pushes an artifact (a signature, say) whose `subject` is `subject`, by digest; returns its digest.
    fn push_referrer(&self, repo: &str, subject: &Blob, seed: u64) -> String {
        self.push_artifact(repo, Some(subject), seed).digest
    }

    /// Pushes a small artifact manifest by digest, with a `subject` or without.
    fn push_artifact(&self, repo: &str, subject: Option<&Blob>, seed: u64) -> Blob {
        let config = Blob::new("application/vnd.oci.empty.v1+json", b"{}".to_vec());
        let payload = Blob::new("application/vnd.example.signature", format!("artifact {seed}").into_bytes());
        self.upload(repo, &config);
        self.upload(repo, &payload);
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "artifactType": "application/vnd.example.signature",
            "config": config.descriptor(),
            "layers": [payload.descriptor()],
        });
        if let Some(subject) = subject {
            manifest["subject"] = subject.descriptor();
        }
        self.put_manifest(repo, MT_MANIFEST, &manifest)
    }

    /// PUTs a manifest by its digest; returns it as a blob (for its descriptor).
    fn put_manifest(&self, repo: &str, media_type: &str, manifest: &Value) -> Blob {
        let blob = Blob::new(media_type, serde_json::to_vec(manifest).unwrap());
        let r = http()
            .put(self.reg.url(&format!("/v2/{repo}/manifests/{}", blob.digest)))
            .header("Content-Type", media_type)
            .body(blob.bytes.clone())
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap_or_default());
        blob
    }

    fn delete(&self, repo: &str, reference: &str) {
        let r = http().delete(self.reg.url(&format!("/v2/{repo}/manifests/{reference}"))).send().unwrap();
        assert_eq!(r.status().as_u16(), 202, "{}", r.text().unwrap_or_default());
    }
}

/// `wharf-registry retention <file> <args>`, configured by the file alone; its stdout.
fn run_retention(file: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(Kind::Wharf.binary());
    cmd.arg("retention").arg(file).args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("REGISTRY_") {
            cmd.env_remove(&k);
        }
    }
    run_ok(&mut cmd, Duration::from_secs(60)).stdout
}

fn config(root: &Path, retention: &str) -> String {
    format!(
        "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
         retention: {retention}\nhttp:\n  addr: 127.0.0.1:0\n",
        root.display()
    )
}

fn set_mtime(path: &Path, ago: Duration) {
    let f = std::fs::File::options().write(true).open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f.set_modified(SystemTime::now() - ago).unwrap();
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn unix(ago: Duration) -> u64 {
    (SystemTime::now() - ago).duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn keeptags_patterns_keep_matching_tags_and_the_repository_glob_picks_the_policy() {
    let s = Setup::start(r#"{delay: 1h, policies: [{repositories: ["ci/**"], keeptags: [{patterns: ["^v[0-9]+"]}]}]}"#);
    for (i, tag) in ["v1", "v2.0", "build-1", "build-2"].iter().enumerate() {
        s.push("ci/app", tag, 100 + i as u64);
    }
    s.push("other/app", "build-1", 110);
    s.age_repo("ci/app", 2 * DAY);
    s.age_repo("other/app", 2 * DAY);

    let out = s.retention(None, &[]);
    assert_eq!(s.tags("ci/app"), set(&["v1", "v2.0"]), "{out}");
    assert_eq!(s.tags("other/app"), set(&["build-1"]), "no policy matches other/app: everything stays\n{out}");
    assert!(out.contains("deleted tag ci/app:build-1") && out.contains("deleted tag ci/app:build-2"), "{out}");
}

#[test]
fn pushedwithin_keeps_tags_pushed_recently() {
    let s = Setup::start(r#"{delay: 1h, policies: [{repositories: ["p/app"], keeptags: [{pushedwithin: 168h}]}]}"#);
    for (i, (tag, age)) in [("old", 10), ("mid", 8), ("new", 2)].iter().enumerate() {
        s.push("p/app", tag, 200 + i as u64);
        s.age_tag("p/app", tag, *age * DAY);
    }
    let out = s.retention(None, &[]);
    assert_eq!(s.tags("p/app"), set(&["new"]), "{out}");
}

/// Pulls by skopeo on one registry process, then on a restarted one: both
/// are remembered (written at shutdown, merged, not overwritten), and a
/// pull older than `pulledwithin` does not keep its tag.
#[test]
fn pulledwithin_counts_real_pulls_across_a_restart() {
    let retention = r#"{delay: 1h, policies: [{repositories: ["pull/app"], keeptags: [{pulledwithin: 720h}]}]}"#;
    let mut s = Setup::start(retention);
    let imgs: Vec<MultiArchImage> =
        ["a", "b", "c"].iter().enumerate().map(|(i, t)| s.push("pull/app", t, 300 + i as u64)).collect();
    s.age_repo("pull/app", 60 * DAY);

    skopeo_pull(&s.reg.addr, "pull/app", "a", &s.dir.path().join("pulled-a"));
    assert!(s.reg.terminate(Duration::from_secs(30)), "the registry did not stop on SIGTERM");
    s.reg = RegistryProcess::start(Kind::Wharf, &config(&s.root, retention));
    skopeo_pull(&s.reg.addr, "pull/app", "b", &s.dir.path().join("pulled-b"));
    assert!(s.reg.terminate(Duration::from_secs(30)), "the registry did not stop on SIGTERM");

    let file = s.pulls_file("pull/app");
    let mut record: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(record["tags"]["a"].is_u64() && record["tags"]["b"].is_u64(), "both processes' pulls are kept: {record}");
    assert!(record["digests"][&imgs[0].index.digest].is_u64(), "{record}");
    // b's pull becomes 40 days old: outside pulledwithin.
    record["tags"]["b"] = json!(unix(40 * DAY));
    record["digests"][&imgs[1].index.digest] = json!(unix(40 * DAY));
    std::fs::write(&file, serde_json::to_vec(&record).unwrap()).unwrap();

    s.reg = RegistryProcess::start(Kind::Wharf, &config(&s.root, retention));
    let out = s.retention(None, &[]);
    assert_eq!(s.tags("pull/app"), set(&["a"]), "{out}");
    let record: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(
        record["tags"].get("b").is_none() && record["tags"]["a"].is_u64(),
        "deleted tags leave the record: {record}"
    );
}

#[test]
fn mostrecentlypushedcount_keeps_the_newest_pushes() {
    let s =
        Setup::start(r#"{delay: 1h, policies: [{repositories: ["n/app"], keeptags: [{mostrecentlypushedcount: 2}]}]}"#);
    for (i, tag) in ["t1", "t2", "t3", "t4"].iter().enumerate() {
        s.push("n/app", tag, 400 + i as u64);
        s.age_tag("n/app", tag, (10 - i as u32) * DAY);
    }
    let out = s.retention(None, &[]);
    assert_eq!(s.tags("n/app"), set(&["t3", "t4"]), "{out}");
}

/// Pull times by tag name, and by the digest a tag names (clients resolve a
/// tag with HEAD and GET the manifest by digest); a never-pulled tag is not
/// among the most recently pulled.
#[test]
fn mostrecentlypulledcount_keeps_the_latest_pulled() {
    let s =
        Setup::start(r#"{delay: 1h, policies: [{repositories: ["m/app"], keeptags: [{mostrecentlypulledcount: 2}]}]}"#);
    let imgs: Vec<MultiArchImage> =
        ["t1", "t2", "t3", "t4"].iter().enumerate().map(|(i, t)| s.push("m/app", t, 500 + i as u64)).collect();
    s.age_repo("m/app", 30 * DAY);
    let record = json!({
        "tags": {"t1": unix(5 * DAY), "t3": unix(DAY)},
        "digests": {imgs[1].index.digest.clone(): unix(3 * DAY)},
    });
    let file = s.pulls_file("m/app");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, serde_json::to_vec(&record).unwrap()).unwrap();

    let out = s.retention(None, &[]);
    assert_eq!(s.tags("m/app"), set(&["t2", "t3"]), "{out}");
}

/// Untagged manifests go with their index children; the children of a
/// tagged index, a signature of a tagged image, the children of an index
/// that refers to a tagged image (an SBOM set, say) and a manifest written
/// within `delay` stay.
#[test]
fn deleteuntagged_deletes_manifests_no_tag_reaches() {
    let s = Setup::start(r#"{delay: 1h, policies: [{repositories: ["u/**"], deleteuntagged: true}]}"#);
    let x = s.push("u/app", "t", 600);
    let y = s.push("u/app", "t", 601);
    let sig = s.push_referrer("u/app", &y.index, 602);
    let sbom = s.push_artifact("u/app", None, 604);
    let sboms = s.put_manifest(
        "u/app",
        MT_INDEX,
        &json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [sbom.descriptor()], "subject": y.index.descriptor()}),
    );
    s.age_repo("u/app", 2 * DAY);
    let z = s.push("u/app", "z", 603);
    s.delete("u/app", "z");

    let out = s.retention(None, &[]);
    assert_eq!(s.tags("u/app"), set(&["t"]), "{out}");
    for gone in std::iter::once(&x.index).chain(x.images.iter().map(|i| &i.manifest)) {
        assert_eq!(s.manifest_status("u/app", &gone.digest), 404, "{} (untagged) stays\n{out}", gone.digest);
        assert!(out.contains(&format!("deleted manifest u/app@{}", gone.digest)), "{out}");
    }
    for kept in [&y, &z].iter().flat_map(|i| std::iter::once(&i.index).chain(i.images.iter().map(|i| &i.manifest))) {
        assert_eq!(s.manifest_status("u/app", &kept.digest), 200, "{} was deleted\n{out}", kept.digest);
    }
    assert_eq!(s.manifest_status("u/app", &sig), 200, "the signature of a tagged image was deleted\n{out}");
    assert_eq!(s.manifest_status("u/app", &sboms.digest), 200, "{out}");
    assert_eq!(s.manifest_status("u/app", &sbom.digest), 200, "a child of an index referring to a tagged image\n{out}");
}

/// A signature whose image was deleted goes with `deletereferrers`, not
/// without it; one whose image stays is kept.
#[test]
fn deletereferrers_deletes_referrers_whose_subject_is_gone() {
    let no = r#"{delay: 1h, policies: [{repositories: ["r/app"], deletereferrers: false}]}"#;
    let yes = r#"{delay: 1h, policies: [{repositories: ["r/app"], deletereferrers: true}]}"#;
    let s = Setup::start(no);
    let gone = s.push("r/app", "s", 700);
    let kept = s.push("r/app", "k", 701);
    let orphan = s.push_referrer("r/app", &gone.index, 702);
    let sig = s.push_referrer("r/app", &kept.index, 703);
    s.delete("r/app", &gone.index.digest);
    s.age_repo("r/app", 2 * DAY);

    let out = s.retention(Some(no), &[]);
    assert_eq!(s.manifest_status("r/app", &orphan), 200, "deleted without deletereferrers\n{out}");
    let out = s.retention(Some(yes), &[]);
    assert_eq!(s.manifest_status("r/app", &orphan), 404, "{out}");
    assert!(out.contains(&format!("deleted manifest r/app@{orphan}")), "{out}");
    assert_eq!(s.manifest_status("r/app", &sig), 200, "{out}");
    assert_eq!(s.tags("r/app"), set(&["k"]), "{out}");
}

/// `dryrun: true` in the config and `--dry-run` on the command line both
/// list what would go and delete nothing; the same run without them deletes it.
#[test]
fn dryrun_lists_and_deletes_nothing() {
    let policies = r#"policies: [{repositories: ["d/app"], keeptags: [{patterns: ["^v"]}]}]"#;
    let s = Setup::start(&format!("{{delay: 1h, dryrun: true, {policies}}}"));
    s.push("d/app", "v1", 800);
    s.push("d/app", "old", 801);
    s.age_repo("d/app", 2 * DAY);

    let out = s.retention(None, &[]);
    assert!(out.contains("would delete tag d/app:old"), "{out}");
    assert_eq!(s.tags("d/app"), set(&["v1", "old"]), "dryrun: true deleted\n{out}");
    let real = format!("{{delay: 1h, {policies}}}");
    let out = s.retention(Some(&real), &["--dry-run"]);
    assert!(out.contains("would delete tag d/app:old"), "{out}");
    assert_eq!(s.tags("d/app"), set(&["v1", "old"]), "--dry-run deleted\n{out}");
    let out = s.retention(Some(&real), &[]);
    assert!(out.contains("deleted tag d/app:old"), "{out}");
    assert_eq!(s.tags("d/app"), set(&["v1"]), "{out}");
}

/// No rule keeps these tags; only those pushed before `delay` (default 24h) go.
#[test]
fn delay_spares_recent_pushes() {
    let policies = r#"policies: [{repositories: ["dl/app"], keeptags: [{patterns: ["^none$"]}]}]"#;
    let s = Setup::start(&format!("{{{policies}}}"));
    s.push("dl/app", "old", 900);
    s.push("dl/app", "fresh", 901);
    s.age_tag("dl/app", "old", Duration::from_secs(2 * 3600));

    let out = s.retention(None, &[]);
    assert_eq!(s.tags("dl/app"), set(&["old", "fresh"]), "the default delay is 24h\n{out}");
    assert!(out.contains("spared 2 pushed within"), "{out}");
    let out = s.retention(Some(&format!("{{delay: 1h, {policies}}}")), &[]);
    assert_eq!(s.tags("dl/app"), set(&["fresh"]), "{out}");
}

/// On S3 (versitygw): pulls written to the bucket at shutdown, read back by
/// the command, and tags deleted through the S3 backend (`delay: 0s`, as
/// S3 objects cannot be backdated here).
#[test]
fn retention_on_s3_reads_pulls_from_the_bucket() {
    let dir = tempfile::Builder::new().prefix("wharf-retention.").tempdir().unwrap();
    let s3 = common::s3::S3Server::start("retention");
    let retention = r#"  retention: {delay: 0s, policies: [{repositories: ["s3/app"], keeptags: [{patterns: ["^v"]}, {mostrecentlypulledcount: 1}]}]}
"#;
    let config = s3.registry_config("retention", "/reg", retention, "retention-secret");
    let mut reg = RegistryProcess::start(Kind::Wharf, &config);
    for (i, tag) in ["v1", "b1", "b2"].iter().enumerate() {
        let img = MultiArchImage::generate(1000 + i as u64, 2, 2 << 10);
        let layout = dir.path().join(format!("layout-{i}"));
        img.write_layout(&layout, tag);
        skopeo_push(&layout, tag, &reg.addr, "s3/app");
    }
    skopeo_pull(&reg.addr, "s3/app", "b2", &dir.path().join("pulled"));
    assert!(reg.terminate(Duration::from_secs(30)), "the registry did not stop on SIGTERM");
    let stored = s3.bucket_dir("retention").join("reg/wharf/pulls/s3/app/_pulls.json");
    assert!(stored.is_file(), "no pull record in the bucket at {}", stored.display());

    let file = dir.path().join("config.yml");
    std::fs::write(&file, &config).unwrap();
    let out = run_retention(&file, &[]);
    assert!(out.contains("deleted tag s3/app:b1"), "{out}");
    let reg = RegistryProcess::start(Kind::Wharf, &config);
    assert_eq!(tags(&reg, "s3/app"), set(&["v1", "b2"]), "{out}");
}
