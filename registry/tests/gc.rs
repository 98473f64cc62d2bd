//! `wharf-registry garbage-collect`, the command the operator's CronJob runs:
//! it deletes exactly the blobs no stored manifest refers to, spares young
//! ones (a push in progress), with `-m` also untagged manifests, and a dry
//! run deletes nothing.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

fn gc(config: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(Kind::Wharf.binary());
    cmd.arg("garbage-collect").args(args).arg(config);
    run_ok(&mut cmd, Duration::from_secs(60))
}

fn blob_file(root: &Path, digest: &str) -> std::path::PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    root.join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
}

#[test]
fn garbage_collect_deletes_only_unreferenced_blobs() {
    let dir = tempfile::Builder::new().prefix("wharf-gc.").tempdir().unwrap();
    let root = dir.path().join("data");
    collects_only_unreferenced(&minimal_config(&root), &root, dir.path());
}

/// The same on S3 (versitygw): the bucket's files are its objects, so the
/// checks read them where the filesystem test does.
#[test]
fn garbage_collect_on_s3_deletes_only_unreferenced_blobs() {
    let dir = tempfile::Builder::new().prefix("wharf-gc.").tempdir().unwrap();
    let s3 = common::s3::S3Server::start("gc-bucket");
    let config = s3.registry_config("gc-bucket", "/reg", "", "gc-secret");
    collects_only_unreferenced(&config, &s3.bucket_dir("gc-bucket").join("reg"), dir.path());
}

fn collects_only_unreferenced(config: &str, root: &Path, scratch: &Path) {
    let reg = RegistryProcess::start(Kind::Wharf, config);
    let root = root.to_path_buf();
    let dir = tempfile::TempDir::new_in(scratch).unwrap();

    // Kept: a tagged multi-arch image (index, manifests, configs, layers).
    let kept = MultiArchImage::generate(21, 2, 64 << 10);
    kept.write_layout(&dir.path().join("kept"), "v1");
    skopeo_push(&dir.path().join("kept"), "v1", &reg.addr, "team/app");
    // Garbage: an image whose manifest is deleted, and a blob no manifest names.
    let gone = MultiArchImage::generate(22, 2, 64 << 10);
    gone.write_layout(&dir.path().join("gone"), "v1");
    skopeo_push(&dir.path().join("gone"), "v1", &reg.addr, "team/old");
    let r = http().delete(reg.url(&format!("/v2/team/old/manifests/{}", gone.index.digest))).send().unwrap();
    assert_eq!(r.status().as_u16(), 202, "{}", r.text().unwrap_or_default());
    let orphan = Blob::new("application/octet-stream", Rng::new(23).bytes(32 << 10));
    let r = http()
        .post(reg.url(&format!("/v2/team/app/blobs/uploads/?digest={}", orphan.digest)))
        .body(orphan.bytes.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);

    let kept_digests: Vec<String> = kept.all_blobs().iter().map(|b| b.digest.clone()).collect();
    let not_kept = |v: Vec<String>| v.into_iter().filter(|d| !kept_digests.contains(d)).collect::<Vec<_>>();
    // Deleting the index leaves its platform manifests as untagged revisions.
    let unreferenced = not_kept(vec![gone.index.digest.clone(), orphan.digest.clone()]);
    let untagged: Vec<String> = gone.images.iter().map(|i| i.manifest.digest.clone()).collect();
    let untagged_garbage = not_kept(gone.all_blobs().iter().map(|b| b.digest.clone()).collect());
    let exists = |d: &String| blob_file(&root, d).exists();
    assert!(kept_digests.iter().chain(&untagged_garbage).chain(&unreferenced).all(exists), "every blob is stored");

    // Default: everything is younger than an hour, so nothing goes.
    let out = gc(&reg.config_path(), &[]);
    assert!(out.stdout.contains("deleted 0 unreferenced blobs"), "{}", out.describe());
    assert!(out.stdout.contains(&format!("spared {}", unreferenced.len())), "{}", out.describe());

    // Old enough: exactly the unreferenced blobs go; untagged manifests still hold theirs.
    age_content(&root, Duration::from_secs(2 * 3600));
    let out = gc(&reg.config_path(), &[]);
    assert!(out.stdout.contains(&format!("deleted {} unreferenced blobs", unreferenced.len())), "{}", out.describe());
    assert!(unreferenced.iter().all(|d| !exists(d)), "garbage left behind:\n{}", out.describe());
    let held: Vec<&String> = untagged_garbage.iter().filter(|d| !unreferenced.contains(d)).collect();
    assert!(held.len() >= untagged.len(), "the untagged manifests and their blobs are still there to collect");
    assert!(held.iter().all(|d| exists(d)), "a blob of an untagged manifest went without -m");
    let r = http().get(reg.url(&format!("/v2/team/app/blobs/{}", orphan.digest))).send().unwrap();
    assert_eq!(r.status().as_u16(), 404, "the deleted orphan is gone from the API too");

    // A dry run with --delete-untagged names the untagged manifests and their blobs, deletes nothing.
    let out = gc(&reg.config_path(), &["--dry-run", "--delete-untagged"]);
    for d in &untagged {
        assert!(out.stdout.contains(&format!("would delete untagged manifest team/old@{d}")), "{}", out.describe());
    }
    for d in &held {
        assert!(out.stdout.contains(&format!("would delete blob {d}")), "{d} not listed:\n{}", out.describe());
    }
    assert!(kept_digests.iter().all(|d| !out.stdout.contains(d.as_str())), "{}", out.describe());
    assert!(held.iter().all(|d| exists(d)), "a dry run deleted something");

    // -m for real: the untagged manifests and their blobs go; the tagged image still pulls whole.
    let out = gc(&reg.config_path(), &["-m"]);
    assert!(out.stdout.contains(&format!("deleted {} unreferenced blobs", held.len())), "{}", out.describe());
    assert!(untagged_garbage.iter().all(|d| !exists(d)), "garbage left behind:\n{}", out.describe());
    assert!(kept_digests.iter().all(exists), "a referenced blob was deleted:\n{}", out.describe());
    assert_pull_matches(&reg.addr, "team/app", "v1", &kept, dir.path());
    let r = http().get(reg.url(&format!("/v2/team/old/manifests/{}", untagged[0]))).send().unwrap();
    assert_eq!(r.status().as_u16(), 404, "an untagged manifest deleted by -m is gone from the API");

    // Nothing is left to collect.
    let out = gc(&reg.config_path(), &["-m"]);
    assert!(out.stdout.contains("deleted 0 unreferenced blobs"), "{}", out.describe());
}

/// Moves a blob's data file and reference marker `age` into the past.
fn age_blob(root: &Path, digest: &str, age: Duration) {
    let hex = digest.trim_start_matches("sha256:");
    for path in [blob_file(root, digest), root.join(format!("wharf/gc/refs/sha256/{hex}"))] {
        if let Ok(f) = std::fs::File::options().write(true).open(path) {
            f.set_modified(std::time::SystemTime::now() - age).unwrap();
        }
    }
}

fn push_blob(reg: &RegistryProcess, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256_digest(bytes);
    let r = http()
        .post(reg.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
        .body(bytes.to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap_or_default());
    digest
}

#[test]
fn min_age_spares_the_young_and_only_the_young_in_one_sweep() {
    let dir = tempfile::Builder::new().prefix("wharf-gc-age.").tempdir().unwrap();
    let root = dir.path().join("data");
    let reg = RegistryProcess::start(Kind::Wharf, &minimal_config(&root));
    let two_hours = Duration::from_secs(2 * 3600);

    // A tagged image, all of it old: old, but referenced, so it stays.
    let config_bytes = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config = push_blob(&reg, "team/app", config_bytes);
    let layer_bytes = Rng::new(31).bytes(16 << 10);
    let layer = push_blob(&reg, "team/app", &layer_bytes);
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": config, "size": config_bytes.len()},
        "layers": [{"mediaType": MT_LAYER_GZIP, "digest": layer, "size": layer_bytes.len()}],
    })
    .to_string();
    let r = http()
        .put(reg.url("/v2/team/app/manifests/v1"))
        .header("content-type", MT_MANIFEST)
        .body(manifest.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap_or_default());
    let manifest_digest = sha256_digest(manifest.as_bytes());
    let referenced = [config, layer, manifest_digest];
    // Two unreferenced blobs side by side: one old (garbage), one young (a push in progress).
    let old = push_blob(&reg, "team/app", &Rng::new(32).bytes(8 << 10));
    let young = push_blob(&reg, "team/app", &Rng::new(33).bytes(8 << 10));
    for d in referenced.iter().chain([&old]) {
        age_blob(&root, d, two_hours);
    }

    // The default min-age (1h) in one sweep over both: only the old one goes.
    let out = gc(&reg.config_path(), &[]);
    assert!(out.stdout.contains("deleted 1 unreferenced blobs"), "{}", out.describe());
    assert!(out.stdout.contains("spared 1 younger than"), "{}", out.describe());
    assert!(!blob_file(&root, &old).exists(), "the old unreferenced blob was kept:\n{}", out.describe());
    assert!(blob_file(&root, &young).exists(), "the young unreferenced blob was deleted:\n{}", out.describe());
    assert!(referenced.iter().all(|d| blob_file(&root, d).exists()), "an old referenced blob was deleted");
    let r = http().get(reg.url(&format!("/v2/team/app/blobs/{young}"))).send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "the young blob is still served");

    // `--min-age 0s` still spares what is younger than the protocol's
    // minute (a push between its upload and its manifest)...
    let out = gc(&reg.config_path(), &["--min-age", "0s"]);
    assert!(out.stdout.contains("deleted 0 unreferenced blobs"), "{}", out.describe());
    assert!(blob_file(&root, &young).exists(), "{}", out.describe());
    // ...and takes it once it is older than that, and still nothing referenced.
    age_blob(&root, &young, Duration::from_secs(120));
    let out = gc(&reg.config_path(), &["--min-age", "0s"]);
    assert!(out.stdout.contains("deleted 1 unreferenced blobs"), "{}", out.describe());
    assert!(!blob_file(&root, &young).exists(), "{}", out.describe());
    assert!(referenced.iter().all(|d| blob_file(&root, d).exists()), "a referenced blob was deleted");
}
