//! Storage quotas (`storage.quotas`, issue 13) against a running
//! wharf-registry: what counts (distinct blobs of the manifests in the
//! matching repositories), the refusal real clients show, the counts after
//! a restart, and concurrent pushes in one process.

mod common;

use std::path::Path;
use std::sync::{Arc, Barrier};

use common::*;
use serde_json::{Value, json};

const QUOTA: &str = "team-a/**";

/// A registry with one quota on `team-a/**` and a debug listener with metrics.
fn start(root: &Path, limit: u64) -> RegistryProcess {
    start_with(root, &[(QUOTA, limit)])
}

fn start_with(root: &Path, quotas: &[(&str, u64)]) -> RegistryProcess {
    let quotas: String =
        quotas.iter().map(|(p, limit)| format!("    - repositories: \"{p}\"\n      limit: {limit}\n")).collect();
    let config = format!(
        "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
         quotas:\n{quotas}http:\n  addr: 127.0.0.1:0\n  debug:\n    addr: 127.0.0.1:0\n    prometheus:\n      enabled: true\n",
        root.display()
    );
    RegistryProcess::start(Kind::Wharf, &config)
}

/// The debug listener's address, from its log line.
fn debug_addr(p: &RegistryProcess) -> String {
    let text = p.log.text();
    let line = text.lines().find(|l| l.contains("debug server listening"));
    let line = line.unwrap_or_else(|| panic!("no debug listener line:\n{text}"));
    line.split("addr=").nth(1).unwrap().split_whitespace().next().unwrap().to_string()
}

/// `/debug/quotas`, once the walk at start has counted (polled: it runs beside serving).
fn quotas(p: &RegistryProcess) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = http().get(format!("http://{}/debug/quotas", debug_addr(p))).send().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: Vec<Value> = serde_json::from_str(&r.text().unwrap()).unwrap();
        if v.iter().all(|q| !q["usedBytes"].is_null()) {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "quota usage never counted: {v:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The value of a metric line `name{quota="team-a/**"} N`.
fn metric(p: &RegistryProcess, name: &str) -> u64 {
    let text = http().get(format!("http://{}/metrics", debug_addr(p))).send().unwrap().text().unwrap();
    let prefix = format!("{name}{{quota=\"{QUOTA}\"}} ");
    let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {prefix:?} in:\n{text}"));
    line[prefix.len()..].trim().parse().unwrap()
}

fn used(p: &RegistryProcess) -> u64 {
    metric(p, "wharf_registry_quota_used_bytes")
}

/// Every byte an image's manifest makes the registry keep: manifest, config, layers.
fn footprint(img: &PlatformImage) -> u64 {
    (img.manifest.bytes.len() + img.config.bytes.len() + img.layers.iter().map(|l| l.bytes.len()).sum::<usize>()) as u64
}

fn image(seed: u64) -> PlatformImage {
    PlatformImage::generate(&mut Rng::new(seed), "linux", "amd64", 2, 24 * 1024)
}

/// `img` with another config: a new manifest over the same layers.
fn with_new_config(img: &PlatformImage) -> PlatformImage {
    let mut v: Value = serde_json::from_slice(&img.config.bytes).unwrap();
    v["config"]["Cmd"] = json!(["/bin/true"]);
    let config = Blob::new(MT_CONFIG, serde_json::to_vec(&v).unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": config.descriptor(),
        "layers": img.layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
    });
    let manifest = Blob::new(MT_MANIFEST, serde_json::to_vec(&manifest).unwrap());
    PlatformImage { config, manifest, ..img.clone() }
}

/// Writes `img` as an OCI layout under `dir` and copies it with skopeo to `repo:tag`.
fn skopeo_copy(p: &RegistryProcess, dir: &Path, img: &PlatformImage, repo: &str, tag: &str) -> Output {
    let layout = dir.join(format!("layout-{}", &img.manifest.hex()[..12]));
    if !layout.exists() {
        img.write_layout(&layout, tag);
    }
    run(
        skopeo()
            .args(["copy", "--all", "--preserve-digests", "--retry-times", "0", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{repo}:{tag}", p.addr)),
        CLIENT_TIMEOUT,
    )
}

fn push_ok(p: &RegistryProcess, dir: &Path, img: &PlatformImage, repo: &str, tag: &str) {
    let out = skopeo_copy(p, dir, img, repo, tag);
    assert!(out.ok(), "{}", out.describe());
}

#[test]
fn pushes_count_distinct_blobs_and_the_one_over_the_limit_is_refused_through_skopeo() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (image(1), image(2));
    let c = with_new_config(&a);
    let c_new = (c.manifest.bytes.len() + c.config.bytes.len()) as u64;
    let limit = footprint(&a) + footprint(&b) - 1;
    assert!(c_new < footprint(&b) - 1, "the fixture's sizes leave room for c and not for b");
    let reg = start(&dir.path().join("data"), limit);
    assert_eq!(quotas(&reg)[0]["usedBytes"], 0);
    assert_eq!(metric(&reg, "wharf_registry_quota_limit_bytes"), limit);

    // Under the limit: accepted, and counted to the byte.
    push_ok(&reg, dir.path(), &a, "team-a/app", "a");
    assert_eq!(used(&reg), footprint(&a));
    // A new manifest over the same layers adds only its manifest and config.
    push_ok(&reg, dir.path(), &c, "team-a/app", "c");
    assert_eq!(used(&reg), footprint(&a) + c_new);

    // Over the limit: refused at the manifest PUT, and skopeo says why.
    let out = skopeo_copy(&reg, dir.path(), &b, "team-a/other", "b");
    assert!(!out.ok(), "the push over the quota was accepted:\n{}", out.describe());
    let want = format!("quota {QUOTA} exceeded: ");
    assert!(out.stderr.contains(&want) && out.stderr.contains("new > limit"), "{}", out.describe());
    assert!(out.stderr.contains("denied"), "DENIED, as skopeo words it: {}", out.describe());
    assert_eq!(used(&reg), footprint(&a) + c_new, "a refused push adds nothing");
    let r = http().head(reg.url(&format!("/v2/team-a/other/manifests/{}", b.manifest.digest))).send().unwrap();
    assert_eq!(r.status().as_u16(), 404, "the refused manifest is not stored");

    // The same image in another repository of the quota counts once: accepted.
    push_ok(&reg, dir.path(), &a, "team-a/copy/nested", "a");
    assert_eq!(used(&reg), footprint(&a) + c_new);
    // Outside the quota nothing is limited or counted.
    push_ok(&reg, dir.path(), &b, "team-b/app", "b");
    push_ok(&reg, dir.path(), &b, "team-a", "b");
    assert_eq!(used(&reg), footprint(&a) + c_new);

    let report = quotas(&reg);
    assert_eq!(report.len(), 1, "{report:?}");
    assert_eq!(report[0]["repositories"], QUOTA);
    assert_eq!(report[0]["usedBytes"], footprint(&a) + c_new);
    assert_eq!(report[0]["limitBytes"], limit);
    assert_eq!(report[0]["blobs"], 6, "a's manifest, config and 2 layers; c's manifest and config");
}

/// The refusal on the wire: 403, `DENIED`, exact bytes in the detail.
#[test]
fn the_refusal_is_denied_with_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let a = image(3);
    let reg = start(&dir.path().join("data"), footprint(&a) - 1);
    for blob in a.blobs() {
        push_blob(&reg, "team-a/app", &blob.bytes);
    }
    let r = put_manifest(&reg, "team-a/app", "v1", &a.manifest.bytes);
    assert_eq!(r.0, 403, "{}", r.1);
    let body: Value = serde_json::from_str(&r.1).unwrap();
    let e = &body["errors"][0];
    assert_eq!(e["code"], "DENIED", "{body}");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.starts_with(&format!("quota {QUOTA} exceeded: 0 B used + ")) && msg.contains("> limit"), "{msg}");
    assert_eq!(e["detail"]["usedBytes"], 0, "{body}");
    assert_eq!(e["detail"]["newBytes"], footprint(&a), "{body}");
    assert_eq!(e["detail"]["limitBytes"], footprint(&a) - 1, "{body}");
}

#[test]
fn usage_is_recounted_from_storage_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let (a, b) = (image(4), image(5));
    let limit = 10 * (footprint(&a) + footprint(&b));
    let mut reg = start(&root, limit);
    push_ok(&reg, dir.path(), &a, "team-a/x", "a");
    push_ok(&reg, dir.path(), &a, "team-a/y/z", "a");
    push_ok(&reg, dir.path(), &b, "team-a/x", "b");
    push_ok(&reg, dir.path(), &b, "elsewhere/x", "b");
    assert_eq!(used(&reg), footprint(&a) + footprint(&b));
    reg.terminate(std::time::Duration::from_secs(10));

    // A fresh process counts the same from storage alone (a shared by two repositories, once).
    let mut reg = start(&root, limit);
    assert_eq!(quotas(&reg)[0]["usedBytes"], footprint(&a) + footprint(&b));
    assert_eq!(used(&reg), footprint(&a) + footprint(&b));
    // Deleting b's manifest frees its bytes at the next count; a, still in two repositories, stays.
    let r = http().delete(reg.url(&format!("/v2/team-a/x/manifests/{}", b.manifest.digest))).send().unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let r = http().delete(reg.url(&format!("/v2/team-a/y/z/manifests/{}", a.manifest.digest))).send().unwrap();
    assert_eq!(r.status().as_u16(), 202);
    reg.terminate(std::time::Duration::from_secs(10));
    let reg = start(&root, limit);
    assert_eq!(quotas(&reg)[0]["usedBytes"], footprint(&a));
}

/// Sixteen manifests of the same size PUT at once where three fit: exactly
/// three are accepted (the check and the count are one step per quota).
/// Four rounds, each against its own quota: a race shows in most rounds.
#[test]
fn concurrent_pushes_cannot_squeeze_under_the_limit_together() {
    const PUSHES: usize = 16;
    const ROUNDS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let layer = Rng::new(6).bytes(8 * 1024);
    let configs: Vec<Vec<u8>> = (0..PUSHES).map(|i| format!("{{\"n\":{:04}}}", i).repeat(100).into_bytes()).collect();
    let manifests: Vec<Vec<u8>> = configs
        .iter()
        .map(|c| {
            serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": MT_MANIFEST,
                "config": {"mediaType": MT_CONFIG, "digest": sha256_digest(c), "size": c.len()},
                "layers": [{"mediaType": MT_LAYER_GZIP, "digest": sha256_digest(&layer), "size": layer.len()}],
            }))
            .unwrap()
        })
        .collect();
    let each = (configs[0].len() + manifests[0].len()) as u64;
    assert!(configs.iter().zip(&manifests).all(|(c, m)| (c.len() + m.len()) as u64 == each));
    let limit = layer.len() as u64 + 3 * each + each / 2;
    let patterns: Vec<String> = (0..ROUNDS).map(|r| format!("race-{r}/**")).collect();
    let quotas: Vec<(&str, u64)> = patterns.iter().map(|p| (p.as_str(), limit)).collect();
    let reg = start_with(&dir.path().join("data"), &quotas);
    for round in 0..ROUNDS {
        let repo = format!("race-{round}/app");
        push_blob(&reg, &repo, &layer);
        for c in &configs {
            push_blob(&reg, &repo, c);
        }
        let barrier = Arc::new(Barrier::new(PUSHES));
        let threads: Vec<_> = manifests
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let (url, barrier, m) = (reg.url(&format!("/v2/{repo}/manifests/t{i}")), barrier.clone(), m.clone());
                std::thread::spawn(move || {
                    let client = http();
                    barrier.wait();
                    let r = client.put(url).header("Content-Type", MT_MANIFEST).body(m).send().unwrap();
                    (r.status().as_u16(), r.text().unwrap_or_default())
                })
            })
            .collect();
        let results: Vec<(u16, String)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let accepted = results.iter().filter(|(s, _)| *s == 201).count();
        let denied = results.iter().filter(|(s, body)| *s == 403 && body.contains("DENIED")).count();
        assert_eq!((accepted, denied), (3, PUSHES - 3), "round {round}: {results:?}");
        let text = http().get(format!("http://{}/metrics", debug_addr(&reg))).send().unwrap().text().unwrap();
        let line =
            format!("wharf_registry_quota_used_bytes{{quota=\"race-{round}/**\"}} {}", layer.len() as u64 + 3 * each);
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
}

/// A monolithic blob upload (`POST ?digest=`).
fn push_blob(reg: &RegistryProcess, repo: &str, bytes: &[u8]) {
    let url = reg.url(&format!("/v2/{repo}/blobs/uploads/?digest={}", sha256_digest(bytes)));
    let r = http().post(url).body(bytes.to_vec()).send().unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap_or_default());
}

fn put_manifest(reg: &RegistryProcess, repo: &str, tag: &str, body: &[u8]) -> (u16, String) {
    let r = http()
        .put(reg.url(&format!("/v2/{repo}/manifests/{tag}")))
        .header("Content-Type", MT_MANIFEST)
        .body(body.to_vec())
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap_or_default())
}
