//! Crash consistency: concurrent pushes, `kill -9` of the registry once some
//! of them were acknowledged, restart on the same storage. Everything that
//! got a 201 is there and verifies; nothing torn is visible; no tag points
//! to a missing manifest or a manifest to a missing blob.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use common::*;

const TASKS: usize = 8;
const IMAGES_PER_TASK: usize = 6;
const LAYERS_PER_IMAGE: usize = 3;
const LAYER_BYTES: usize = 2 << 20;
/// The registry is killed once this many manifest PUTs were acknowledged and
/// some blob upload the registry has begun is not yet acknowledged.
const KILL_AFTER_MANIFESTS: usize = 10;

#[derive(Clone, Debug)]
struct AckedManifest {
    repo: String,
    tag: String,
    digest: String,
    blobs: Vec<String>,
}

#[derive(Default)]
struct Ledger {
    /// (repo, digest) of every blob upload that got a 201.
    acked_blobs: BTreeSet<(String, String)>,
    /// (repo, digest) of every blob upload started.
    attempted_blobs: BTreeSet<(String, String)>,
    /// (repo, digest) of every blob upload whose POST the registry answered.
    begun_blobs: BTreeSet<(String, String)>,
    acked_manifests: Vec<AckedManifest>,
    /// First error each task met (expected once the registry is gone).
    errors: Vec<String>,
    /// Told each time the kill condition holds; the killer re-checks it
    /// under the lock, since an acknowledgement may land in between.
    kill_tx: Option<std::sync::mpsc::Sender<()>>,
}

impl Ledger {
    fn in_flight(&self) -> usize {
        self.begun_blobs.difference(&self.acked_blobs).count()
    }

    fn ready_to_kill(&self) -> bool {
        self.acked_manifests.len() >= KILL_AFTER_MANIFESTS && self.in_flight() > 0
    }

    fn changed(&self) {
        if let (true, Some(tx)) = (self.ready_to_kill(), &self.kill_tx) {
            let _ = tx.send(());
        }
    }
}

struct Pusher {
    client: reqwest::Client,
    base: String,
    ledger: Arc<Mutex<Ledger>>,
}

fn location(base: &str, resp: &reqwest::Response) -> Result<String, String> {
    let loc = resp.headers().get("location").and_then(|v| v.to_str().ok()).ok_or("no Location")?;
    Ok(if loc.starts_with("http") { loc.to_string() } else { format!("{base}{loc}") })
}

fn with_digest(loc: &str, digest: &str) -> String {
    let sep = if loc.contains('?') { '&' } else { '?' };
    format!("{loc}{sep}digest={}", digest.replace(':', "%3A"))
}

impl Pusher {
    /// POST, then either one PUT with the body or two PATCHes and an empty PUT.
    async fn push_blob(&self, repo: &str, data: Vec<u8>, chunked: bool) -> Result<String, String> {
        let digest = sha256_digest(&data);
        self.ledger.lock().unwrap().attempted_blobs.insert((repo.to_string(), digest.clone()));
        let e = |what: &str, err: reqwest::Error| format!("{what} {repo} {digest}: {err}");
        let resp = self
            .client
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base))
            .send()
            .await
            .map_err(|err| e("POST", err))?;
        if resp.status().as_u16() != 202 {
            return Err(format!("POST upload {repo}: {}", resp.status()));
        }
        let mut loc = location(&self.base, &resp)?;
        {
            let mut ledger = self.ledger.lock().unwrap();
            ledger.begun_blobs.insert((repo.to_string(), digest.clone()));
            ledger.changed();
        }
        let put = if chunked {
            let half = data.len() / 2;
            for (start, chunk) in [(0, &data[..half]), (half, &data[half..])] {
                let resp = self
                    .client
                    .patch(&loc)
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Range", format!("{}-{}", start, start + chunk.len() - 1))
                    .body(chunk.to_vec())
                    .send()
                    .await
                    .map_err(|err| e("PATCH", err))?;
                if resp.status().as_u16() != 202 {
                    return Err(format!("PATCH {repo} {digest}: {}", resp.status()));
                }
                loc = location(&self.base, &resp)?;
            }
            self.client.put(with_digest(&loc, &digest)).body(Vec::new())
        } else {
            self.client.put(with_digest(&loc, &digest)).header("Content-Type", "application/octet-stream").body(data)
        };
        let resp = put.send().await.map_err(|err| e("PUT", err))?;
        let status = resp.status().as_u16();
        if status != 201 {
            return Err(format!("PUT {repo} {digest}: {status} {}", resp.text().await.unwrap_or_default()));
        }
        let dcd = resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        if dcd != digest {
            return Err(format!("PUT {repo} {digest}: 201 with Docker-Content-Digest {dcd:?}"));
        }
        self.ledger.lock().unwrap().acked_blobs.insert((repo.to_string(), digest.clone()));
        Ok(digest)
    }

    async fn push_image(&self, task: usize, i: usize) -> Result<AckedManifest, String> {
        let repo = format!("crash/t{task}");
        let tag = format!("i{i}");
        let mut rng = Rng::new((task * 1000 + i) as u64);
        let mut layers = Vec::new();
        for l in 0..LAYERS_PER_IMAGE {
            let data = rng.bytes(LAYER_BYTES);
            let size = data.len();
            let digest = self.push_blob(&repo, data, (task + i + l).is_multiple_of(2)).await?;
            layers.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size}));
        }
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l["digest"].clone()).collect::<Vec<_>>()},
        }))
        .unwrap();
        let config_size = config.len();
        let config_digest = self.push_blob(&repo, config, false).await?;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": config_size},
            "layers": layers,
        }))
        .unwrap();
        let digest = sha256_digest(&manifest);
        let resp = self
            .client
            .put(format!("{}/v2/{repo}/manifests/{tag}", self.base))
            .header("Content-Type", MT_MANIFEST)
            .body(manifest)
            .send()
            .await
            .map_err(|err| format!("PUT manifest {repo}:{tag}: {err}"))?;
        let status = resp.status().as_u16();
        if status != 201 {
            return Err(format!("PUT manifest {repo}:{tag}: {status} {}", resp.text().await.unwrap_or_default()));
        }
        let mut blobs = vec![config_digest];
        blobs.extend(layers.iter().map(|l| l["digest"].as_str().unwrap().to_string()));
        let acked = AckedManifest { repo, tag, digest, blobs };
        let mut ledger = self.ledger.lock().unwrap();
        ledger.acked_manifests.push(acked.clone());
        ledger.changed();
        Ok(acked)
    }
}

#[test]
fn kill_9_during_concurrent_pushes_keeps_every_acknowledged_push() {
    let dir = tempfile::Builder::new().prefix("wharf-crash.").tempdir().unwrap();
    kill_9_then_check(&minimal_config(&dir.path().join("data")));
}

/// The same with the registry on S3 (versitygw, which stays up): an upload
/// whose parts and state were half-written when the registry died is
/// never visible, and every acknowledged push is.
#[test]
fn kill_9_during_concurrent_pushes_on_s3_keeps_every_acknowledged_push() {
    let s3 = common::s3::S3Server::start("crash-bucket");
    kill_9_then_check(&s3.registry_config("crash-bucket", "/", "    chunksize: 5242880\n", "crash-secret"));
}

/// One crash at a time: two at once share the cores, and a test that must
/// land its kill mid-push should not depend on the other's timing.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn kill_9_then_check(config: &str) {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let kind = registry_under_test();
    let config = config.to_string();
    let mut reg = RegistryProcess::start(kind, &config);

    let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
    let ledger = Arc::new(Mutex::new(Ledger { kill_tx: Some(kill_tx), ..Ledger::default() }));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    wharf_registry::install_crypto_provider();
    let client = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let pusher = Pusher { client: client.clone(), base: format!("http://{}", reg.addr), ledger: ledger.clone() };
        handles.push(rt.spawn(async move {
            for i in 0..IMAGES_PER_TASK {
                match pusher.push_image(task, i).await {
                    Ok(_) => {}
                    Err(e) => {
                        pusher.ledger.lock().unwrap().errors.push(format!("task {task}: {e}"));
                        return;
                    }
                }
            }
        }));
    }

    // Kill -9 once k manifests are acknowledged and the registry holds a
    // begun, unacknowledged blob upload. The ledger stays locked across the
    // check and the kill, so no acknowledgement slips in between.
    let (killed_pid, in_flight_blobs) = loop {
        if let Err(e) = kill_rx.recv_timeout(Duration::from_secs(240)) {
            let l = ledger.lock().unwrap();
            panic!(
                "{} manifests acknowledged and {} uploads in flight, and the pushes ended or stalled ({e}); errors: {:#?}",
                l.acked_manifests.len(),
                l.in_flight(),
                l.errors
            );
        }
        let l = ledger.lock().unwrap();
        if l.ready_to_kill() {
            let pid = reg.pid();
            reg.kill();
            break (pid, l.in_flight());
        }
    };
    rt.block_on(async {
        let all = futures::future::join_all(handles);
        tokio::time::timeout(Duration::from_secs(120), all).await.expect("pushers did not stop after the kill")
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    let ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap();
    eprintln!(
        "killed {} (pid {killed_pid}) after {} acknowledged manifests ({} blobs acknowledged, {} attempted, {in_flight_blobs} blob uploads in flight at the kill)",
        kind.name(),
        ledger.acked_manifests.len(),
        ledger.acked_blobs.len(),
        ledger.attempted_blobs.len()
    );
    assert!(ledger.acked_manifests.len() >= KILL_AFTER_MANIFESTS);
    assert!(
        in_flight_blobs > 0,
        "no blob upload was in flight when the kill landed: the test crashed nothing mid-push"
    );
    drop(reg);

    // Restart on the same storage.
    let reg = RegistryProcess::start(kind, &config);
    let c = http();
    let get = |path: &str| {
        let r = c.get(reg.url(path)).header("Accept", ACCEPT_ALL).send().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = r.status().as_u16();
        let dcd = header(&r, "docker-content-digest");
        (status, dcd, r.bytes().unwrap().to_vec())
    };

    // 1. Every acknowledged manifest, by tag and by digest, and its blobs.
    for m in &ledger.acked_manifests {
        for reference in [&m.tag, &m.digest] {
            let (status, dcd, body) = get(&format!("/v2/{}/manifests/{reference}", m.repo));
            assert_eq!(
                status,
                200,
                "acknowledged manifest {}:{reference} lost after kill -9: {}",
                m.repo,
                String::from_utf8_lossy(&body)
            );
            assert_eq!(sha256_digest(&body), m.digest, "{}:{reference} body", m.repo);
            assert_eq!(dcd, m.digest, "{}:{reference} Docker-Content-Digest", m.repo);
        }
        for b in &m.blobs {
            let (status, _, body) = get(&format!("/v2/{}/blobs/{b}", m.repo));
            assert_eq!(status, 200, "blob {b} of acknowledged manifest {}:{} lost", m.repo, m.tag);
            assert_eq!(sha256_digest(&body), *b, "blob {b} of {}:{} corrupt", m.repo, m.tag);
        }
    }
    // 2. Every acknowledged blob.
    for (repo, digest) in &ledger.acked_blobs {
        let (status, _, body) = get(&format!("/v2/{repo}/blobs/{digest}"));
        assert_eq!(status, 200, "acknowledged blob {repo}@{digest} lost after kill -9");
        assert_eq!(sha256_digest(&body), *digest, "acknowledged blob {repo}@{digest} corrupt");
    }
    // 3. Unacknowledged uploads are absent or complete: never torn.
    let mut unacked_visible = 0;
    for (repo, digest) in ledger.attempted_blobs.difference(&ledger.acked_blobs) {
        let (status, _, body) = get(&format!("/v2/{repo}/blobs/{digest}"));
        match status {
            404 => {}
            200 => {
                unacked_visible += 1;
                assert_eq!(sha256_digest(&body), *digest, "unacknowledged blob {repo}@{digest} is visible but torn");
            }
            s => panic!("GET unacknowledged blob {repo}@{digest}: {s} {}", String::from_utf8_lossy(&body)),
        }
    }
    // 4. Walk every tag: each names a manifest that exists, whose blobs exist.
    let repos = catalog(&reg);
    let mut walked = 0;
    let mut tag_map: BTreeMap<(String, String), String> = BTreeMap::new();
    for repo in &repos {
        let (status, _, body) = get(&format!("/v2/{repo}/tags/list"));
        if status == 404 {
            assert!(
                !ledger.acked_manifests.iter().any(|m| &m.repo == repo),
                "tags/list of {repo} is 404 but it has acknowledged manifests"
            );
            continue;
        }
        assert_eq!(status, 200, "tags/list {repo}: {}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        for tag in v["tags"].as_array().cloned().unwrap_or_default() {
            let tag = tag.as_str().unwrap();
            let (status, dcd, body) = get(&format!("/v2/{repo}/manifests/{tag}"));
            assert_eq!(
                status,
                200,
                "tag {repo}:{tag} points to a missing manifest: {}",
                String::from_utf8_lossy(&body)
            );
            assert_eq!(dcd, sha256_digest(&body), "{repo}:{tag}: Docker-Content-Digest is not the body's digest");
            let m: serde_json::Value =
                serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{repo}:{tag} is not JSON: {e}"));
            let refs = std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap().iter());
            for d in refs {
                let d = d["digest"].as_str().unwrap();
                let r = c.head(reg.url(&format!("/v2/{repo}/blobs/{d}"))).send().unwrap();
                assert_eq!(r.status().as_u16(), 200, "{repo}:{tag} references blob {d}, which is missing");
            }
            tag_map.insert((repo.clone(), tag.to_string()), dcd);
            walked += 1;
        }
    }
    for m in &ledger.acked_manifests {
        assert_eq!(
            tag_map.get(&(m.repo.clone(), m.tag.clone())),
            Some(&m.digest),
            "{}:{} missing from the tag walk",
            m.repo,
            m.tag
        );
    }
    assert!(walked >= ledger.acked_manifests.len());

    // 5. The restarted registry takes new pushes, including into a crashed repository.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let pusher =
        Pusher { client, base: format!("http://{}", reg.addr), ledger: Arc::new(Mutex::new(Ledger::default())) };
    let after = rt.block_on(pusher.push_image(0, 99)).unwrap_or_else(|e| panic!("push after restart: {e}"));
    let (status, dcd, _) = get(&format!("/v2/{}/manifests/{}", after.repo, after.tag));
    assert_eq!((status, dcd.as_str()), (200, after.digest.as_str()));
    eprintln!(
        "after restart: {} acknowledged manifests and {} blobs verified, {walked} tags walked, {unacked_visible} unacknowledged blobs visible and intact",
        ledger.acked_manifests.len(),
        ledger.acked_blobs.len()
    );
}
