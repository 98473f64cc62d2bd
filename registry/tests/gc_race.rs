//! Garbage collection against a live, writable registry. A collector runs
//! over and over while a client re-pushes images whose blobs it is about to
//! sweep, the way real clients do (HEAD each blob, upload what is missing,
//! PUT the manifest). Every image the registry accepted must pull whole
//! afterwards, and the garbage nobody re-pushed must be gone after a quiet
//! collection. Content is made old by moving file times, never by waiting.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;

/// Images pushed, then made garbage.
const IMAGES: usize = 160;
/// The first this many are pushed again during the race.
const REPUSHED: usize = 100;

/// A one-layer image.
struct Image {
    config: Blob,
    layer: Blob,
    manifest: Blob,
}

impl Image {
    fn generate(i: usize) -> Image {
        let config = Blob::new(
            MT_CONFIG,
            format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"n":{i}}}"#)
                .into_bytes(),
        );
        let layer = Blob::new(MT_LAYER_GZIP, Rng::new(9000 + i as u64).bytes(4 << 10));
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": MT_MANIFEST,
            "config": config.descriptor(), "layers": [layer.descriptor()],
        });
        let manifest = Blob::new(MT_MANIFEST, serde_json::to_vec(&manifest).unwrap());
        Image { config, layer, manifest }
    }
}

fn upload(addr: &str, repo: &str, blob: &Blob) {
    let r = http()
        .post(format!("http://{addr}/v2/{repo}/blobs/uploads/?digest={}", blob.digest))
        .body(blob.bytes.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap_or_default());
}

/// Pushes as a client does: HEAD, upload only what is missing, PUT the
/// manifest. A manifest refused because a blob vanished between the HEAD
/// and the PUT (the collector took it first) is pushed again, from the
/// uploads. Returns how many PUTs were refused that way.
fn push(addr: &str, repo: &str, tag: &str, image: &Image) -> usize {
    let mut refused = 0;
    let mut upload_all = false;
    loop {
        for blob in [&image.config, &image.layer] {
            let head = http().head(format!("http://{addr}/v2/{repo}/blobs/{}", blob.digest)).send().unwrap();
            if upload_all || head.status().as_u16() == 404 {
                upload(addr, repo, blob);
            } else {
                assert_eq!(head.status().as_u16(), 200);
            }
        }
        let r = http()
            .put(format!("http://{addr}/v2/{repo}/manifests/{tag}"))
            .header("content-type", MT_MANIFEST)
            .body(image.manifest.bytes.clone())
            .send()
            .unwrap();
        match r.status().as_u16() {
            201 => return refused,
            400 => {
                let body = r.text().unwrap_or_default();
                assert!(body.contains("MANIFEST_BLOB_UNKNOWN"), "{body}");
                assert!(refused < 5, "refused {refused} times: {body}");
                refused += 1;
                upload_all = true;
            }
            s => panic!("manifest PUT answered {s}: {}", r.text().unwrap_or_default()),
        }
    }
}

/// Every blob of the image is served, byte for byte, under its tag.
fn assert_pulls_whole(addr: &str, repo: &str, tag: &str, image: &Image) {
    let r =
        http().get(format!("http://{addr}/v2/{repo}/manifests/{tag}")).header("accept", MT_MANIFEST).send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{repo}:{tag}");
    assert_eq!(r.bytes().unwrap().to_vec(), image.manifest.bytes, "{repo}:{tag}");
    for blob in [&image.config, &image.layer] {
        let r = http().get(format!("http://{addr}/v2/{repo}/blobs/{}", blob.digest)).send().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{repo}:{tag} lost {}", blob.digest);
        assert_eq!(sha256_digest(&r.bytes().unwrap()), blob.digest, "{repo}:{tag}");
    }
}

fn blob_file(root: &Path, digest: &str) -> std::path::PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    root.join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
}

/// Uploads every image's blobs into `race/app` and no manifest, then ages
/// them past the collector's `min-age`: all garbage, ready to be swept, yet
/// a HEAD in `race/app` still finds each one (as after a manifest DELETE).
fn make_garbage(addr: &str, root: &Path, images: &[Image]) {
    std::thread::scope(|s| {
        for part in images.chunks(images.len().div_ceil(4)) {
            s.spawn(move || {
                for image in part {
                    upload(addr, "race/app", &image.config);
                    upload(addr, "race/app", &image.layer);
                }
            });
        }
    });
    age_content(root, Duration::from_secs(2 * 3600));
}

/// Re-pushes the first `REPUSHED` images into `race/app` from two clients
/// at once; returns how many manifest PUTs were refused and pushed again.
fn repush(addrs: &[&str], images: &[Image]) -> usize {
    std::thread::scope(|s| {
        let clients: Vec<_> = (0..2)
            .map(|c| {
                s.spawn(move || {
                    let mut refused = 0;
                    for (i, image) in images.iter().enumerate().take(REPUSHED).filter(|(i, _)| i % 2 == c) {
                        refused += push(addrs[i % addrs.len()], "race/app", &format!("r{i}"), image);
                    }
                    refused
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).sum()
    })
}

/// After the race: what was accepted pulls whole, the rest is gone, and no
/// collection left a tombstone behind.
fn assert_outcome(addr: &str, root: &Path, images: &[Image]) {
    for (i, image) in images.iter().enumerate().take(REPUSHED) {
        assert_pulls_whole(addr, "race/app", &format!("r{i}"), image);
    }
    for image in &images[REPUSHED..] {
        for blob in [&image.config, &image.layer] {
            assert!(!blob_file(root, &blob.digest).exists(), "garbage {} survived a quiet collection", blob.digest);
        }
    }
    let tombstones = files_under(&root.join("wharf/gc/tombstones"));
    assert!(tombstones.is_empty(), "tombstones left behind: {tombstones:?}");
}

fn collect_once(config: &Path) -> Output {
    let mut cmd = Command::new(Kind::Wharf.binary());
    cmd.arg("garbage-collect").arg(config);
    run_ok(&mut cmd, Duration::from_secs(120))
}

/// The "deleted N unreferenced blobs" of a collection's summary line.
fn deleted_count(out: &Output) -> usize {
    let summary = out.stdout.lines().find_map(|l| l.split("; deleted ").nth(1));
    summary.and_then(|s| s.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[test]
fn the_cli_collector_never_takes_what_a_concurrent_push_was_accepted_with() {
    let dir = tempfile::Builder::new().prefix("wharf-gc-race.").tempdir().unwrap();
    let root = dir.path().join("data");
    cli_collector_races_pushes(&minimal_config(&root), &root);
}

/// The same on S3 (versitygw): markers and tombstones are objects, and the
/// store's clock is the S3 server's. The bucket's files are its objects, so
/// content is aged where the filesystem test ages it.
#[test]
fn the_cli_collector_on_s3_never_takes_what_a_concurrent_push_was_accepted_with() {
    let s3 = common::s3::S3Server::start("race-bucket");
    let config = s3.registry_config("race-bucket", "/reg", "", "race-secret");
    cli_collector_races_pushes(&config, &s3.bucket_dir("race-bucket").join("reg"));
}

fn cli_collector_races_pushes(config: &str, root: &Path) {
    let reg = RegistryProcess::start(Kind::Wharf, config);
    let images: Vec<Image> = (0..IMAGES).map(Image::generate).collect();
    make_garbage(&reg.addr, root, &images);

    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let (stop, config) = (stop.clone(), reg.config_path());
        std::thread::spawn(move || {
            let mut runs = Vec::new();
            while !stop.load(Ordering::SeqCst) || runs.is_empty() {
                runs.push(collect_once(&config));
            }
            runs
        })
    };
    let refused = repush(&[&reg.addr], &images);
    stop.store(true, Ordering::SeqCst);
    let runs = collector.join().unwrap();
    let swept: usize = runs.iter().map(deleted_count).sum();
    eprintln!("{} collections swept {swept} blobs during the race; {refused} manifest PUTs were refused", runs.len());
    assert!(swept > 0, "the collector swept nothing during the race, so it raced nothing");

    collect_once(&reg.config_path());
    assert_outcome(&reg.addr, root, &images);
}

/// The debug listener's address, from its log line.
fn debug_addr(p: &RegistryProcess) -> String {
    let line = p.log.text().lines().find(|l| l.contains("debug server listening")).map(str::to_string);
    let line = line.unwrap_or_else(|| panic!("no debug listener line:\n{}", p.log.text()));
    line.split("addr=").nth(1).unwrap().split_whitespace().next().unwrap().to_string()
}

/// A counter's value in the Prometheus text exposition.
fn counter(metrics: &str, name: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

#[test]
fn online_collection_on_two_replicas_never_takes_what_a_push_was_accepted_with() {
    let dir = tempfile::Builder::new().prefix("wharf-gc-online.").tempdir().unwrap();
    let root = dir.path().join("data");
    let config = minimal_config(&root)
        .replace("storage:\n", "storage:\n  gc:\n    enabled: true\n    interval: 100ms\n    delay: 1h\n")
        + "  secret: gc-race-secret\n  debug:\n    addr: 127.0.0.1:0\n    prometheus:\n      enabled: true\n";
    let replicas = [RegistryProcess::start(Kind::Wharf, &config), RegistryProcess::start(Kind::Wharf, &config)];
    let addrs: Vec<&str> = replicas.iter().map(|r| r.addr.as_str()).collect();
    let images: Vec<Image> = (0..IMAGES).map(Image::generate).collect();
    // Aging the garbage starts the race: from then on the collector may take it.
    make_garbage(addrs[0], &root, &images);
    let refused = repush(&addrs, &images);

    // A quiet collection follows on its own: wait for the garbage to go.
    let garbage: Vec<&Blob> = images[REPUSHED..].iter().flat_map(|i| [&i.config, &i.layer]).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while garbage.iter().any(|b| blob_file(&root, &b.digest).exists()) {
        assert!(std::time::Instant::now() < deadline, "the online collector left garbage for a minute");
        // Polling a condition with a deadline, not waiting a guessed time.
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_outcome(addrs[0], &root, &images);
    assert_outcome(addrs[1], &root, &images);

    let runs: usize = replicas.iter().map(|r| r.log.text().matches("garbage collection finished").count()).sum();
    let reclaimed: f64 = replicas
        .iter()
        .map(|r| {
            let text = http().get(format!("http://{}/metrics", debug_addr(r))).send().unwrap().text().unwrap();
            counter(&text, "wharf_registry_gc_reclaimed_blobs_total")
        })
        .sum();
    eprintln!("{runs} online collections reclaimed {reclaimed} blobs; {refused} manifest PUTs were refused");
    assert!(reclaimed >= garbage.len() as f64, "the metrics count {reclaimed} reclaimed blobs");
    // The last collection's report, as the operator reads it.
    let last = http().get(format!("http://{}/debug/gc", debug_addr(&replicas[1]))).send().unwrap();
    assert_eq!(last.status().as_u16(), 200);
    let last: serde_json::Value = serde_json::from_slice(&last.bytes().unwrap()).unwrap();
    assert_eq!(last["dryRun"], false, "{last}");
    assert!(last["finishedAt"].as_str().is_some_and(|t| t.starts_with("20")), "{last}");
    assert!(last.get("error").is_none(), "{last}");
}
