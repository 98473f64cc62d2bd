//! Real clients against a running registry (wharf-registry; the reference
//! registry with WHARF_TEST_REGISTRY=distribution): skopeo, crane and
//! containerd's ctr push and pull a multi-layer, multi-arch image and every
//! digest survives the round trip.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::*;

const LAYERS: usize = 3;
const LAYER_BYTES: usize = 512 << 10;

fn start() -> (RegistryProcess, tempfile::TempDir) {
    let dir = tempfile::Builder::new().prefix("wharf-clients.").tempdir().unwrap();
    let reg = RegistryProcess::start(registry_under_test(), &minimal_config(&dir.path().join("data")));
    (reg, dir)
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no fixture platform for host architecture {other}"),
    }
}

#[test]
fn skopeo_copies_a_multi_arch_image_in_and_out_unchanged() {
    let (reg, dir) = start();
    let img = MultiArchImage::generate(1, LAYERS, LAYER_BYTES);
    let layout = dir.path().join("layout");
    img.write_layout(&layout, "v1");

    skopeo_push(&layout, "v1", &reg.addr, "clients/skopeo");

    // The registry returns the exact bytes pushed: the index by tag and by
    // digest, each platform manifest by digest.
    let raw = run_ok(
        skopeo()
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{}/clients/skopeo:v1", reg.addr)),
        CLIENT_TIMEOUT,
    );
    assert_eq!(
        raw.stdout.as_bytes(),
        img.index.bytes.as_slice(),
        "skopeo inspect --raw of the tag is not the index pushed"
    );
    for m in [&img.index, &img.image("amd64").manifest, &img.image("arm64").manifest] {
        let raw = run_ok(
            skopeo()
                .args(["inspect", "--raw", "--tls-verify=false"])
                .arg(format!("docker://{}/clients/skopeo@{}", reg.addr, m.digest)),
            CLIENT_TIMEOUT,
        );
        assert_eq!(sha256_digest(raw.stdout.as_bytes()), m.digest, "skopeo inspect --raw @{}", m.digest);
    }
    // Per-platform inspect resolves the index to the right manifest and layers.
    for arch in ["amd64", "arm64"] {
        let want = img.image(arch);
        let out = run_ok(
            skopeo()
                .args(["inspect", "--tls-verify=false", "--override-os", "linux", "--override-arch", arch])
                .arg(format!("docker://{}/clients/skopeo:v1", reg.addr)),
            CLIENT_TIMEOUT,
        );
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        // skopeo reports the digest of what the tag names (the index) ...
        assert_eq!(v["Digest"], img.index.digest.as_str(), "{arch}: {v}");
        assert_eq!(v["Architecture"], arch, "{v}");
        let layers: Vec<String> =
            v["Layers"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect();
        let expected: Vec<String> = want.layers.iter().map(|l| l.digest.clone()).collect();
        // ... and the layers of the platform's manifest.
        assert_eq!(layers, expected, "{arch} layers");
    }

    // Out again: same index digest, same blob set, every blob verified.
    assert_pull_matches(&reg.addr, "clients/skopeo", "v1", &img, dir.path());

    // Every blob is also served by digest with the right bytes.
    let client = http();
    for b in img.images.iter().flat_map(|i| i.blobs()) {
        let resp = client.get(reg.url(&format!("/v2/clients/skopeo/blobs/{}", b.digest))).send().unwrap();
        assert_eq!(resp.status().as_u16(), 200, "GET blob {}", b.digest);
        let body = resp.bytes().unwrap();
        assert_eq!(sha256_digest(&body), b.digest, "blob {} content", b.digest);
    }
    assert!(tags(&reg, "clients/skopeo").contains("v1"));
}

#[test]
fn crane_push_pull_digest_ls_manifest_and_copy() {
    let (reg, dir) = start();
    let addr = &reg.addr;
    let mut rng = Rng::new(2);
    let single = PlatformImage::generate(&mut rng, "linux", "amd64", LAYERS, LAYER_BYTES);
    let layout = dir.path().join("single");
    single.write_layout(&layout, "v1");

    // push
    let pushed = run_ok(
        crane().args(["push", "--insecure"]).arg(&layout).arg(format!("{addr}/clients/crane:v1")),
        CLIENT_TIMEOUT,
    );
    assert!(
        pushed.stdout.contains(&single.manifest.digest),
        "crane push prints the pushed digest {}:\n{}",
        single.manifest.digest,
        pushed.describe()
    );

    // digest, manifest, ls
    let digest = run_ok(crane().args(["digest", "--insecure", &format!("{addr}/clients/crane:v1")]), CLIENT_TIMEOUT);
    assert_eq!(digest.stdout.trim(), single.manifest.digest);
    let manifest =
        run_ok(crane().args(["manifest", "--insecure", &format!("{addr}/clients/crane:v1")]), CLIENT_TIMEOUT);
    assert_eq!(manifest.stdout.as_bytes(), single.manifest.bytes.as_slice(), "crane manifest returns the bytes pushed");
    let ls = run_ok(crane().args(["ls", "--insecure", &format!("{addr}/clients/crane")]), CLIENT_TIMEOUT);
    assert_eq!(ls.stdout.lines().collect::<Vec<_>>(), vec!["v1"], "crane ls");

    // pull as an OCI layout: same manifest digest, same blobs
    let pulled = dir.path().join("pulled");
    run_ok(
        crane().args(["pull", "--insecure", "--format=oci", &format!("{addr}/clients/crane:v1")]).arg(&pulled),
        CLIENT_TIMEOUT,
    );
    let (top, blobs) = read_layout(&pulled, None);
    assert_eq!(top["digest"], single.manifest.digest.as_str(), "{top}");
    let mut want: BTreeSet<String> = single.blobs().iter().map(|b| b.digest.clone()).collect();
    want.insert(single.manifest.digest.clone());
    assert_eq!(blobs, want, "blobs pulled by crane");

    // copy within the registry (a cross-repository mount or a copy; either way the same digests)
    run_ok(
        crane().args([
            "copy",
            "--insecure",
            &format!("{addr}/clients/crane:v1"),
            &format!("{addr}/clients/crane-copy:v2"),
        ]),
        CLIENT_TIMEOUT,
    );
    let copied =
        run_ok(crane().args(["digest", "--insecure", &format!("{addr}/clients/crane-copy:v2")]), CLIENT_TIMEOUT);
    assert_eq!(copied.stdout.trim(), single.manifest.digest, "crane copy keeps the digest");

    // A multi-arch index: pushed with skopeo, copied with crane, resolved per platform.
    let img = MultiArchImage::generate(3, LAYERS, LAYER_BYTES);
    let multi = dir.path().join("multi");
    img.write_layout(&multi, "v1");
    skopeo_push(&multi, "v1", addr, "clients/multi");
    run_ok(
        crane().args([
            "copy",
            "--insecure",
            &format!("{addr}/clients/multi:v1"),
            &format!("{addr}/clients/multi-copy:v1"),
        ]),
        CLIENT_TIMEOUT,
    );
    let d = run_ok(crane().args(["digest", "--insecure", &format!("{addr}/clients/multi-copy:v1")]), CLIENT_TIMEOUT);
    assert_eq!(d.stdout.trim(), img.index.digest, "crane copy of an index keeps its digest");
    for arch in ["amd64", "arm64"] {
        let d = run_ok(
            crane().args([
                "digest",
                "--insecure",
                "--platform",
                &format!("linux/{arch}"),
                &format!("{addr}/clients/multi-copy:v1"),
            ]),
            CLIENT_TIMEOUT,
        );
        assert_eq!(d.stdout.trim(), img.image(arch).manifest.digest, "crane digest --platform linux/{arch}");
    }
    assert_pull_matches(addr, "clients/multi-copy", "v1", &img, dir.path());

    // The catalog lists every repository written.
    let cat = run_ok(crane().args(["catalog", "--insecure", addr]), CLIENT_TIMEOUT);
    let repos: BTreeSet<&str> = cat.stdout.lines().collect();
    let want: BTreeSet<&str> = ["clients/crane", "clients/crane-copy", "clients/multi", "clients/multi-copy"].into();
    assert_eq!(repos, want, "crane catalog");
}

/// Reads every file of `want_rootfs` under `root` and checks that whited-out
/// paths are absent.
fn assert_rootfs(root: &Path, img: &PlatformImage) {
    for (path, content) in &img.rootfs {
        let got = std::fs::read(root.join(path))
            .unwrap_or_else(|e| panic!("{}: {path} missing from the unpacked image: {e}", img.platform()));
        assert!(got == *content, "{}: {path} differs after unpacking", img.platform());
    }
    for path in &img.removed {
        assert!(!root.join(path).exists(), "{}: {path} was whited out by the top layer but is present", img.platform());
    }
}

/// Mounts the unpacked image read-only, checks its files, unmounts.
fn mount_and_check(ctrd: &Containerd, ns: &str, reference: &str, img: &PlatformImage, target: &Path) {
    std::fs::create_dir_all(target).unwrap();
    run_ok(
        ctrd.ctr(ns).args(["images", "mount", "--platform", &img.platform(), reference]).arg(target),
        Duration::from_secs(60),
    );
    assert_rootfs(target, img);
    run_ok(ctrd.ctr(ns).args(["images", "unmount", "--rm"]).arg(target), Duration::from_secs(60));
    assert!(mounts_under(target).is_empty(), "{} still mounted", target.display());
}

fn content_digests(ctrd: &Containerd, ns: &str) -> BTreeSet<String> {
    let out = run_ok(ctrd.ctr(ns).args(["content", "ls", "-q"]), Duration::from_secs(30));
    out.stdout.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
}

fn snapshot_keys(ctrd: &Containerd, ns: &str) -> BTreeSet<String> {
    let out = run_ok(ctrd.ctr(ns).args(["snapshots", "ls"]), Duration::from_secs(30));
    out.stdout.lines().skip(1).filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect()
}

#[test]
fn containerd_pulls_and_unpacks_single_platform_and_all_platforms() {
    let (reg, dir) = start();
    let img = MultiArchImage::generate(4, LAYERS, LAYER_BYTES);
    let layout = dir.path().join("layout");
    img.write_layout(&layout, "v1");
    skopeo_push(&layout, "v1", &reg.addr, "clients/ctr");
    let reference = format!("{}/clients/ctr:v1", reg.addr);
    let ctrd = Containerd::start();
    eprintln!("containerd snapshotter: {}", ctrd.snapshotter);
    let host = img.image(host_arch());
    let other = img.images.iter().find(|i| i.arch != host.arch).unwrap();

    // Host platform: pulled and unpacked.
    let pull = run_ok(
        ctrd.ctr("single").args(["images", "pull", "--plain-http", "--print-chainid", &reference]),
        Duration::from_secs(180),
    );
    assert!(
        pull.stdout.contains(&host.chain_id()),
        "ctr prints the chain ID {} of the unpacked image:\n{}",
        host.chain_id(),
        pull.describe()
    );
    let ls = run_ok(ctrd.ctr("single").args(["images", "ls"]), Duration::from_secs(30));
    let line = ls
        .stdout
        .lines()
        .find(|l| l.starts_with(&reference))
        .unwrap_or_else(|| panic!("{reference} not in:\n{}", ls.stdout));
    assert!(line.contains(&img.index.digest), "ctr images ls shows the index digest {}: {line}", img.index.digest);
    let check = run_ok(ctrd.ctr("single").args(["images", "check"]), Duration::from_secs(30));
    assert!(
        check.stdout.lines().any(|l| l.starts_with(&reference) && l.contains("complete")),
        "ctr images check:\n{}",
        check.stdout
    );
    let content = content_digests(&ctrd, "single");
    for b in [&img.index, &host.manifest].into_iter().chain(host.blobs()) {
        assert!(
            content.contains(&b.digest),
            "{} ({}) missing from containerd's content store: {content:?}",
            b.digest,
            b.media_type
        );
    }
    for l in &other.layers {
        assert!(!content.contains(&l.digest), "a single-platform pull fetched {} layer {}", other.platform(), l.digest);
    }
    let snaps = snapshot_keys(&ctrd, "single");
    assert!(
        snaps.contains(&host.chain_id()),
        "no committed snapshot {} ({}) in {snaps:?}",
        host.chain_id(),
        ctrd.snapshotter
    );
    mount_and_check(&ctrd, "single", &reference, host, &dir.path().join("mnt-single"));

    // All platforms: every blob of both images fetched; each platform unpacks.
    run_ok(
        ctrd.ctr("all").args(["images", "pull", "--plain-http", "--all-platforms", &reference]),
        Duration::from_secs(180),
    );
    let content = content_digests(&ctrd, "all");
    for b in img.all_blobs() {
        assert!(content.contains(&b.digest), "--all-platforms: {} ({}) missing: {content:?}", b.digest, b.media_type);
    }
    let check = run_ok(ctrd.ctr("all").args(["images", "check"]), Duration::from_secs(30));
    assert!(
        check.stdout.lines().any(|l| l.starts_with(&reference) && l.contains("complete")),
        "ctr images check:\n{}",
        check.stdout
    );
    for p in &img.images {
        mount_and_check(&ctrd, "all", &reference, p, &dir.path().join(format!("mnt-all-{}", p.arch)));
    }
    drop(ctrd);
    drop(reg);
}
