//! Quota accounting inside one process, where the interleavings can be
//! forced: a PUT accepted while a walk of storage runs (and misses it) stays
//! counted, and a PUT that one of several matching quotas refuses is counted
//! by none of them.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Notify;

use wharf_registry::oci::digest::Algorithm;
use wharf_registry::oci::glob::RepoGlob;
use wharf_registry::registry::quota::{QuotaReport, QuotaRule};
use wharf_registry::registry::reference::{Reference, RepoName};
use wharf_registry::registry::{Error, Options, Registry};
use wharf_registry::storage::backend::Result;
use wharf_registry::storage::paths::Path;
use wharf_registry::storage::{Backend, ByteStream, Meta, PartRule};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A filesystem backend whose listing of `held` returns what it found only
/// once released: a walk that read a directory just before a PUT changed it.
struct Held {
    inner: wharf_registry::storage::fs::Filesystem,
    held: std::sync::Mutex<Option<String>>,
    reached: Notify,
    release: Notify,
}

#[async_trait]
impl Backend for Held {
    fn name(&self) -> &'static str {
        "held"
    }
    async fn get(&self, key: &str) -> Result<Bytes> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.inner.put(key, data).await
    }
    async fn stat(&self, key: &str) -> Result<Meta> {
        self.inner.stat(key).await
    }
    async fn read(&self, key: &str, offset: u64, len: Option<u64>) -> Result<ByteStream> {
        self.inner.read(key, offset, len).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let found = self.inner.list(prefix).await;
        let hold = {
            let mut held = self.held.lock().unwrap();
            let hit = held.as_deref() == Some(prefix);
            if hit {
                *held = None;
            }
            hit
        };
        if hold {
            self.reached.notify_one();
            self.release.notified().await;
        }
        found
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
    async fn commit(&self, from: &str, to: &str) -> Result<()> {
        self.inner.commit(from, to).await
    }
    fn part_rule(&self) -> PartRule {
        self.inner.part_rule()
    }
    async fn parts_start(&self, key: &str) -> Result<String> {
        self.inner.parts_start(key).await
    }
    async fn put_part(&self, key: &str, upload: &str, index: usize, offset: u64, data: Vec<Bytes>) -> Result<String> {
        self.inner.put_part(key, upload, index, offset, data).await
    }
    async fn parts_finish(&self, key: &str, upload: &str, tags: Vec<String>) -> Result<()> {
        self.inner.parts_finish(key, upload, tags).await
    }
    async fn parts_abort(&self, key: &str, upload: &str) -> Result<()> {
        self.inner.parts_abort(key, upload).await
    }
    async fn check(&self) -> Result<()> {
        self.inner.check().await
    }
}

struct Setup {
    registry: Arc<Registry>,
    backend: Arc<Held>,
    _dir: tempfile::TempDir,
}

fn setup(quotas: &[(&str, u64)]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(Held {
        inner: wharf_registry::storage::fs::Filesystem::new(dir.path()),
        held: std::sync::Mutex::new(None),
        reached: Notify::new(),
        release: Notify::new(),
    });
    let quotas = quotas
        .iter()
        .map(|(p, limit)| QuotaRule { repositories: RepoGlob::parse(p).unwrap(), limit: *limit })
        .collect();
    let registry = Arc::new(Registry::new(backend.clone(), Options { quotas, ..Default::default() }));
    Setup { registry, backend, _dir: dir }
}

fn digest(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// Stores `config` as a blob linked into `repo` (as a finished upload
/// leaves it) and returns a manifest over it.
async fn image(s: &Setup, repo: &str, config: &[u8]) -> Vec<u8> {
    let d = digest(config).parse().unwrap();
    s.backend.put(&Path::BlobData(&d).key(), Bytes::copy_from_slice(config)).await.unwrap();
    s.backend.put(&Path::LayerLink(repo, &d).key(), Bytes::from(d.to_string())).await.unwrap();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d.to_string(), "size": config.len()},
        "layers": [],
    }))
    .unwrap()
}

async fn put(s: &Setup, repo: &str, tag: &str, manifest: &[u8]) -> std::result::Result<(), Error> {
    let repo = RepoName::parse(repo).unwrap();
    let reference = Reference::parse(tag).unwrap();
    s.registry.manifest_put(&repo, &reference, Some(OCI_MANIFEST), Bytes::copy_from_slice(manifest)).await.map(|_| ())
}

fn used(s: &Setup) -> Vec<Option<u64>> {
    s.registry.quota_reports().iter().map(|r: &QuotaReport| r.used_bytes).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_the_walk_missed_stays_counted() {
    let s = setup(&[("q/**", 1 << 30)]);
    let (c1, c2) = (vec![b'1'; 1000], vec![b'2'; 3000]);
    let m1 = image(&s, "q/app", &c1).await;
    put(&s, "q/app", "one", &m1).await.unwrap();
    let first = (c1.len() + m1.len()) as u64;
    assert_eq!(used(&s), [Some(first)], "the first PUT walked storage, then counted itself");

    // A walk lists q/app's revisions (only m1) and is held there.
    *s.backend.held.lock().unwrap() = Some(Path::RevisionsRoot("q/app", Algorithm::Sha256).key());
    let walk = tokio::spawn({
        let registry = s.registry.clone();
        async move { registry.recompute_quotas().await }
    });
    s.backend.reached.notified().await;
    // Meanwhile a PUT is accepted and counted.
    let m2 = image(&s, "q/app", &c2).await;
    put(&s, "q/app", "two", &m2).await.unwrap();
    let both = first + (c2.len() + m2.len()) as u64;
    assert_eq!(used(&s), [Some(both)]);
    // The walk ends with what it listed; the PUT it missed is still counted.
    s.backend.release.notify_one();
    walk.await.unwrap().unwrap();
    assert_eq!(used(&s), [Some(both)], "a PUT accepted during the walk was dropped by it");
    // And the next walk, which sees it in storage, agrees.
    s.registry.recompute_quotas().await.unwrap();
    assert_eq!(used(&s), [Some(both)]);
}

#[tokio::test]
async fn a_put_one_quota_refuses_is_counted_by_none() {
    let s = setup(&[("q/**", 1 << 30), ("q/ci/**", 2000)]);
    let small = image(&s, "q/ci/app", &[b's'; 500]).await;
    put(&s, "q/ci/app", "small", &small).await.unwrap();
    let counted = (500 + small.len()) as u64;
    assert_eq!(used(&s), [Some(counted), Some(counted)]);

    let big = image(&s, "q/ci/app", &[b'b'; 2000]).await;
    match put(&s, "q/ci/app", "big", &big).await {
        Err(e @ Error::QuotaExceeded { .. }) => {
            let msg = e.to_string();
            assert!(msg.starts_with("quota q/ci/** exceeded: "), "the quota that refused is named: {msg}");
        }
        other => panic!("expected QuotaExceeded, got {:?}", other.map_err(|e| e.to_string())),
    }
    assert_eq!(used(&s), [Some(counted), Some(counted)], "the refused PUT was counted by the quota that had room");
    let refs = s.registry.tags(&RepoName::parse("q/ci/app").unwrap()).await.unwrap();
    assert_eq!(refs.iter().map(|t| t.as_str()).collect::<Vec<_>>(), ["small"], "the refused tag is not stored");

    // Outside q/ci/** only the wider quota applies.
    put(&s, "q/app", "big", &image(&s, "q/app", &[b'b'; 2000]).await).await.unwrap();
    assert_eq!(used(&s)[0], Some(counted + (2000 + big.len()) as u64));
}
