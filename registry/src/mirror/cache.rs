//! What the cache holds and how it stays bounded: when each tag was last
//! confirmed with the upstream (freshness), when each blob and manifest was
//! last used, which blobs each manifest references, and the total size.
//!
//! Two things remove content: the size bound (`maxsize`) evicts the least
//! recently used blobs that no recently used manifest references, and the
//! expiry sweep (`ttl`) removes blobs and manifests unused for `ttl`. Blobs
//! linked from local repositories (`localprefix`) are never removed. The
//! in-memory view is rebuilt from storage at startup; a restart only loses
//! tag freshness (tags are revalidated once) and exact use times (file
//! times stand in).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::registry::digest::{Algorithm, Digest};
use crate::storage::Backend;
use crate::storage::paths::{self, Path};
use crate::storage::walk;

/// Blobs referenced by a manifest used this recently are not evicted for size.
pub const RECENT: Duration = Duration::from_secs(15 * 60);

#[derive(Debug)]
struct BlobEntry {
    size: u64,
    used: Instant,
    /// Mirrored repositories that link it.
    repos: BTreeSet<String>,
}

#[derive(Debug)]
struct ManifestEntry {
    used: Instant,
    blobs: Vec<Digest>,
}

#[derive(Default, Debug)]
struct State {
    tags: HashMap<(String, String), Instant>,
    blobs: HashMap<Digest, BlobEntry>,
    /// By (mirrored repository, digest).
    manifests: HashMap<(String, Digest), ManifestEntry>,
    total: u64,
}

/// One mirrored repository's share of the cache (`Cache::cached_repositories`).
#[derive(Debug, Clone)]
pub struct CachedRepo {
    pub name: String,
    pub manifests: usize,
    pub blobs: usize,
    pub bytes: u64,
    /// When a client last used any of it.
    pub used: Option<Instant>,
}

impl CachedRepo {
    fn new(name: &str) -> CachedRepo {
        CachedRepo { name: name.to_string(), manifests: 0, blobs: 0, bytes: 0, used: None }
    }
}

pub struct Cache {
    backend: Arc<dyn Backend>,
    state: Mutex<State>,
    tag_ttl: Duration,
    /// `0`: keep forever.
    ttl: Duration,
    max_size: Option<u64>,
    /// `localprefix`: repositories whose blobs are never removed.
    local_prefix: Option<String>,
    /// One eviction at a time.
    evicting: tokio::sync::Mutex<()>,
}

fn since(t: SystemTime) -> Instant {
    let age = SystemTime::now().duration_since(t).unwrap_or_default();
    Instant::now().checked_sub(age).unwrap_or_else(Instant::now)
}

impl Cache {
    pub fn new(
        backend: Arc<dyn Backend>,
        tag_ttl: Duration,
        ttl: Duration,
        max_size: Option<u64>,
        local_prefix: Option<String>,
    ) -> Cache {
        Cache {
            backend,
            state: Mutex::new(State::default()),
            tag_ttl,
            ttl,
            max_size,
            local_prefix,
            evicting: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn local_prefix(&self) -> Option<&str> {
        self.local_prefix.as_deref()
    }

    pub fn is_local(&self, repo: &str) -> bool {
        self.local_prefix.as_deref().is_some_and(|p| repo == p || repo.starts_with(&format!("{p}/")))
    }

    // ------------------------------------------------------------ freshness

    /// Whether `repo:tag` was confirmed with the upstream within `tagttl`.
    pub fn tag_fresh(&self, repo: &str, tag: &str) -> bool {
        self.state().tags.get(&(repo.to_string(), tag.to_string())).is_some_and(|t| t.elapsed() < self.tag_ttl)
    }

    pub fn tag_confirmed(&self, repo: &str, tag: &str) {
        self.state().tags.insert((repo.to_string(), tag.to_string()), Instant::now());
    }

    // ------------------------------------------------------------ use

    pub fn manifest_used(&self, repo: &str, digest: &Digest, blobs: Vec<Digest>) {
        let now = Instant::now();
        let mut s = self.state();
        for b in &blobs {
            if let Some(e) = s.blobs.get_mut(b) {
                e.used = e.used.max(now - Duration::from_millis(1));
            }
        }
        s.manifests.insert((repo.to_string(), digest.clone()), ManifestEntry { used: now, blobs });
    }

    pub fn manifest_touched(&self, repo: &str, digest: &Digest) -> bool {
        match self.state().manifests.get_mut(&(repo.to_string(), digest.clone())) {
            Some(e) => {
                e.used = Instant::now();
                true
            }
            None => false,
        }
    }

    pub fn blob_used(&self, digest: &Digest) {
        if let Some(e) = self.state().blobs.get_mut(digest) {
            e.used = Instant::now();
        }
    }

    /// Records a blob committed (or linked) into mirrored repository `repo`.
    pub fn blob_added(&self, repo: &str, digest: &Digest, size: u64) {
        let mut s = self.state();
        let s = &mut *s;
        let entry = s.blobs.entry(digest.clone()).or_insert_with(|| {
            s.total += size;
            BlobEntry { size, used: Instant::now(), repos: BTreeSet::new() }
        });
        entry.used = Instant::now();
        entry.repos.insert(repo.to_string());
    }

    /// Bytes of blobs the cache knows about.
    pub fn total(&self) -> u64 {
        self.state().total
    }

    /// `maxsize`, when set.
    pub fn max_size(&self) -> Option<u64> {
        self.max_size
    }

    /// What each mirrored repository holds in the cache, by name. A blob
    /// linked by several repositories counts in each.
    pub fn cached_repositories(&self) -> Vec<CachedRepo> {
        let s = self.state();
        let mut by: BTreeMap<String, CachedRepo> = BTreeMap::new();
        for b in s.blobs.values() {
            for r in &b.repos {
                let e = by.entry(r.clone()).or_insert_with(|| CachedRepo::new(r));
                e.blobs += 1;
                e.bytes += b.size;
                e.used = e.used.max(Some(b.used));
            }
        }
        for ((r, _), m) in &s.manifests {
            let e = by.entry(r.clone()).or_insert_with(|| CachedRepo::new(r));
            e.manifests += 1;
            e.used = e.used.max(Some(m.used));
        }
        by.into_values().collect()
    }

    pub fn needs_eviction(&self) -> bool {
        self.max_size.is_some_and(|m| self.total() > m)
    }

    // ------------------------------------------------------------ startup

    /// Rebuilds the view from storage: blob sizes and times, which mirrored
    /// repository links which blob, and their manifests.
    pub async fn load(&self) -> crate::storage::backend::Result<()> {
        let repos = self.repositories().await?;
        let mut manifests = HashSet::new();
        let mut links: HashMap<Digest, BTreeSet<String>> = HashMap::new();
        for repo in &repos {
            if self.is_local(repo) {
                continue;
            }
            for d in self.linked(|alg| Path::RevisionsRoot(repo, alg).key()).await? {
                let used = match self.backend.stat(&Path::RevisionLink(repo, &d).key()).await {
                    Ok(m) => m.modified.map_or_else(Instant::now, since),
                    Err(_) => Instant::now(),
                };
                let blobs = match self.backend.get(&Path::BlobData(&d).key()).await {
                    Ok(body) => crate::oci::manifest::parse(&body, None).map(|p| p.blobs).unwrap_or_default(),
                    Err(_) => Vec::new(),
                };
                manifests.insert(d.clone());
                self.state().manifests.insert((repo.clone(), d), ManifestEntry { used, blobs });
            }
            for d in self.linked(|alg| Path::LayersRoot(repo, alg).key()).await? {
                links.entry(d).or_default().insert(repo.clone());
            }
        }
        for (d, repos) in links {
            if manifests.contains(&d) {
                continue;
            }
            if let Ok(meta) = self.backend.stat(&Path::BlobData(&d).key()).await {
                let used = meta.modified.map_or_else(Instant::now, since);
                let mut s = self.state();
                if !s.blobs.contains_key(&d) {
                    s.total += meta.size;
                    s.blobs.insert(d, BlobEntry { size: meta.size, used, repos });
                }
            }
        }
        Ok(())
    }

    async fn linked(&self, dir: impl Fn(Algorithm) -> String) -> crate::storage::backend::Result<Vec<Digest>> {
        walk::linked_digests(&*self.backend, dir).await
    }

    /// Every repository in storage (directories holding `_layers`, `_manifests` or `_uploads`).
    async fn repositories(&self) -> crate::storage::backend::Result<Vec<String>> {
        let markers = [paths::LAYERS_DIR, paths::MANIFESTS_DIR, paths::UPLOADS_DIR];
        let repos = walk::repositories_with(&*self.backend, &markers).await?;
        Ok(repos.into_iter().map(|r| r.as_str().to_string()).collect())
    }

    /// Blobs linked from local repositories: never removed.
    async fn local_blobs(&self) -> crate::storage::backend::Result<HashSet<Digest>> {
        let mut out = HashSet::new();
        if self.local_prefix.is_none() {
            return Ok(out);
        }
        for repo in self.repositories().await? {
            if self.is_local(&repo) {
                out.extend(self.linked(|alg| Path::LayersRoot(&repo, alg).key()).await?);
                out.extend(self.linked(|alg| Path::RevisionsRoot(&repo, alg).key()).await?);
            }
        }
        Ok(out)
    }

    // ------------------------------------------------------------ removal

    /// Evicts least recently used blobs until the cache fits `maxsize`.
    /// Returns the number of blobs removed.
    pub async fn evict(&self) -> usize {
        let Some(max) = self.max_size else { return 0 };
        let _one = self.evicting.lock().await;
        if self.total() <= max {
            return 0;
        }
        let local = match self.local_blobs().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cache eviction: listing local repositories failed");
                return 0;
            }
        };
        let victims = {
            let s = self.state();
            let protected: HashSet<&Digest> =
                s.manifests.values().filter(|m| m.used.elapsed() < RECENT).flat_map(|m| m.blobs.iter()).collect();
            let mut candidates: Vec<(&Digest, &BlobEntry)> =
                s.blobs.iter().filter(|(d, _)| !protected.contains(d) && !local.contains(d)).collect();
            candidates.sort_by_key(|(_, e)| e.used);
            let mut excess = s.total.saturating_sub(max);
            let mut victims = Vec::new();
            for (d, e) in candidates {
                if excess == 0 {
                    break;
                }
                excess = excess.saturating_sub(e.size);
                victims.push(d.clone());
            }
            victims
        };
        let mut removed = 0;
        for d in victims {
            if self.remove_blob(&d).await {
                removed += 1;
            }
        }
        if self.total() > max {
            tracing::warn!(
                total = self.total(),
                max,
                "cache is over proxy.maxsize, but every remaining blob is local or used by a recent manifest"
            );
        }
        removed
    }

    async fn remove_blob(&self, d: &Digest) -> bool {
        let Some(entry) = self.state().blobs.remove(d) else { return false };
        let mut ok = true;
        for repo in &entry.repos {
            if let Err(e) = self.backend.delete(&Path::Layer(repo, d).key()).await
                && !e.is_not_found()
            {
                tracing::warn!(error = %e, digest = %d, "cache: removing a layer link failed");
                ok = false;
            }
        }
        match self.backend.delete(&Path::Blob(d).key()).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                tracing::warn!(error = %e, digest = %d, "cache: removing a blob failed");
                ok = false;
            }
        }
        {
            let mut s = self.state();
            s.total = s.total.saturating_sub(entry.size);
        }
        tracing::info!(digest = %d, size = entry.size, "cache: removed blob");
        ok
    }

    /// Removes blobs and manifests unused for `ttl`. Returns what it removed.
    pub async fn sweep(&self) -> usize {
        if self.ttl.is_zero() {
            return 0;
        }
        let _one = self.evicting.lock().await;
        let local = match self.local_blobs().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cache sweep: listing local repositories failed");
                return 0;
            }
        };
        let (blobs, manifests) = {
            let s = self.state();
            let blobs: Vec<Digest> = s
                .blobs
                .iter()
                .filter(|(d, e)| e.used.elapsed() >= self.ttl && !local.contains(d))
                .map(|(d, _)| d.clone())
                .collect();
            let manifests: Vec<(String, Digest)> =
                s.manifests.iter().filter(|(_, m)| m.used.elapsed() >= self.ttl).map(|(k, _)| k.clone()).collect();
            (blobs, manifests)
        };
        let mut removed = 0;
        for (repo, d) in manifests {
            if self.remove_manifest(&repo, &d, &local).await {
                removed += 1;
            }
        }
        for d in blobs {
            if self.remove_blob(&d).await {
                removed += 1;
            }
        }
        removed
    }

    /// Removes a manifest revision from a mirrored repository, with the tags naming it.
    async fn remove_manifest(&self, repo: &str, d: &Digest, local: &HashSet<Digest>) -> bool {
        self.state().manifests.remove(&(repo.to_string(), d.clone()));
        let tags = self.backend.list(&Path::TagsRoot(repo).key()).await.unwrap_or_default();
        for tag in tags {
            let current = self.backend.get(&Path::TagCurrentLink(repo, &tag).key()).await.ok();
            if current.is_some_and(|c| String::from_utf8_lossy(&c).trim() == d.to_string()) {
                let _ = self.backend.delete(&Path::Tag(repo, &tag).key()).await;
                self.state().tags.remove(&(repo.to_string(), tag));
            }
        }
        let ok = match self.backend.delete(&Path::Revision(repo, d).key()).await {
            Ok(()) => true,
            Err(e) => e.is_not_found(),
        };
        let still_used = self.state().manifests.keys().any(|(_, m)| m == d) || local.contains(d);
        if !still_used {
            let _ = self.backend.delete(&Path::Blob(d).key()).await;
        }
        tracing::info!(repository = repo, digest = %d, "cache: expired manifest");
        ok
    }

    /// How often the expiry sweep runs.
    pub fn sweep_interval(&self) -> Option<Duration> {
        if self.ttl.is_zero() && self.max_size.is_none() {
            return None;
        }
        let base = if self.ttl.is_zero() { Duration::from_secs(3600) } else { self.ttl / 4 };
        Some(base.clamp(Duration::from_secs(1), Duration::from_secs(3600)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn digest(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    async fn cache(dir: &std::path::Path, max: u64) -> Cache {
        let backend: Arc<dyn Backend> = Arc::new(crate::storage::fs::Filesystem::new(dir.display().to_string()));
        Cache::new(backend, Duration::from_secs(60), Duration::ZERO, Some(max), Some("local".into()))
    }

    async fn put_blob(c: &Cache, repo: &str, n: u8, size: usize) -> Digest {
        let d = digest(n);
        c.backend.put(&Path::BlobData(&d).key(), Bytes::from(vec![n; size])).await.unwrap();
        c.backend.put(&Path::LayerLink(repo, &d).key(), Bytes::from(d.to_string())).await.unwrap();
        if !c.is_local(repo) {
            c.blob_added(repo, &d, size as u64);
        }
        d
    }

    async fn exists(c: &Cache, d: &Digest) -> bool {
        c.backend.stat(&Path::BlobData(d).key()).await.is_ok()
    }

    #[tokio::test]
    async fn evicts_least_recently_used_unreferenced_blobs_first() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path(), 250).await;
        let old = put_blob(&c, "docker.io/a", 1, 100).await;
        let referenced = put_blob(&c, "docker.io/a", 2, 100).await;
        let newer = put_blob(&c, "docker.io/b", 3, 100).await;
        c.manifest_used("docker.io/a", &digest(9), vec![referenced.clone()]);
        c.blob_used(&newer);
        assert!(c.needs_eviction());
        assert_eq!(c.evict().await, 1);
        assert!(!exists(&c, &old).await, "the least recently used, unreferenced blob goes");
        assert!(exists(&c, &referenced).await && exists(&c, &newer).await);
        assert!(c.backend.stat(&Path::LayerLink("docker.io/a", &old).key()).await.is_err(), "its link goes too");
        assert_eq!(c.total(), 200);
    }

    #[tokio::test]
    async fn local_blobs_are_never_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path(), 50).await;
        let shared = put_blob(&c, "docker.io/a", 1, 100).await;
        put_blob(&c, "local/app", 1, 100).await;
        assert_eq!(c.evict().await, 0);
        assert!(exists(&c, &shared).await);
    }

    #[tokio::test]
    async fn load_rebuilds_sizes_from_storage() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path(), 1000).await;
        put_blob(&c, "docker.io/a", 1, 100).await;
        put_blob(&c, "docker.io/b/c", 2, 30).await;
        put_blob(&c, "local/x", 3, 7).await;
        let again = cache(dir.path(), 1000).await;
        again.load().await.unwrap();
        assert_eq!(again.total(), 130, "mirrored blobs only");
    }

    #[test]
    fn tags_are_fresh_for_tagttl() {
        let backend: Arc<dyn Backend> = Arc::new(crate::storage::fs::Filesystem::new("/nonexistent"));
        let c = Cache::new(backend.clone(), Duration::from_secs(60), Duration::ZERO, None, None);
        assert!(!c.tag_fresh("r", "t"));
        c.tag_confirmed("r", "t");
        assert!(c.tag_fresh("r", "t"));
        let zero = Cache::new(backend, Duration::ZERO, Duration::ZERO, None, None);
        zero.tag_confirmed("r", "t");
        assert!(!zero.tag_fresh("r", "t"), "tagttl 0 revalidates every time");
    }
}
