//! Counting quota usage from storage: every manifest revision of every
//! repository a quota matches, and the blobs each references. Run at start
//! (or at the first PUT a quota applies to) and every
//! [`super::quota::RECOMPUTE_EVERY`]; what PUTs add while a walk runs is
//! kept over the walk's result, so no accepted push goes uncounted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use crate::storage::paths::{self, Path};
use crate::storage::walk;

use super::digest::Digest;
use super::quota::Footprint;
use super::{Registry, Result};

/// Manifests whose footprint is remembered between walks.
const FOOTPRINTS_KEPT: usize = 50_000;

impl Registry {
    /// Recounts every quota from storage (one walk at a time).
    pub async fn recompute_quotas(&self) -> Result<()> {
        if self.quotas.quotas.is_empty() {
            return Ok(());
        }
        let _walking = self.quotas.walking.lock().await;
        self.walk_quotas().await
    }

    /// Counts the quotas never counted yet, unless a walk that just ended did.
    pub(super) async fn count_quotas_once(&self) -> Result<()> {
        let _walking = self.quotas.walking.lock().await;
        if self.quotas.quotas.iter().any(|q| q.lock().counted.is_none()) {
            self.walk_quotas().await?;
        }
        Ok(())
    }

    async fn walk_quotas(&self) -> Result<()> {
        for q in &self.quotas.quotas {
            q.lock().during_walk = Some(HashMap::new());
        }
        let walked = self.quota_usage_in_storage().await;
        let now = SystemTime::now();
        let walked = match walked {
            Ok(w) => w,
            Err(e) => {
                for q in &self.quotas.quotas {
                    q.lock().during_walk = None;
                }
                return Err(e);
            }
        };
        for (q, mut found) in self.quotas.quotas.iter().zip(walked) {
            let mut usage = q.lock();
            found.extend(usage.during_walk.take().unwrap_or_default());
            usage.used = found.values().fold(0u64, |sum, size| sum.saturating_add(*size));
            usage.counted = Some(found);
            usage.computed_at = Some(now);
            crate::metrics::quota_used(q.rule.repositories.as_str(), usage.used);
        }
        Ok(())
    }

    /// The distinct blobs each quota's repositories reference, in quota order.
    async fn quota_usage_in_storage(&self) -> Result<Vec<HashMap<Digest, u64>>> {
        let quotas = &self.quotas.quotas;
        let mut found = vec![HashMap::new(); quotas.len()];
        for repo in walk::repositories_with(&*self.backend, &[paths::MANIFESTS_DIR]).await? {
            let repo = repo.as_str();
            let applies: Vec<usize> =
                (0..quotas.len()).filter(|&i| quotas[i].rule.repositories.matches(repo)).collect();
            if applies.is_empty() {
                continue;
            }
            for digest in walk::linked_digests(&*self.backend, |alg| Path::RevisionsRoot(repo, alg).key()).await? {
                let Some(footprint) = self.footprint(repo, &digest).await? else { continue };
                for &i in &applies {
                    found[i].extend(footprint.iter().cloned());
                }
            }
        }
        Ok(found)
    }

    /// A stored manifest and the stored blobs it references; `None` when the
    /// manifest itself is gone (a dangling revision holds nothing).
    async fn footprint(&self, repo: &str, digest: &Digest) -> Result<Option<Footprint>> {
        if let Some(f) = self.quotas.footprints.lock().unwrap_or_else(|p| p.into_inner()).get(digest) {
            return Ok(Some(f.clone()));
        }
        let body = match self.backend.get(&Path::BlobData(digest).key()).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut counted = vec![(digest.clone(), body.len() as u64)];
        let mut complete = true;
        match self.parsed_manifest(digest, &body) {
            Ok(parsed) => {
                for blob in &parsed.blobs {
                    match self.quota_blob_size(blob).await? {
                        Some(size) => counted.push((blob.clone(), size)),
                        // Gone (collected under a dangling revision): not
                        // counted, and looked for again next walk.
                        None => complete = false,
                    }
                }
            }
            // Its blobs are unknown; the manifest's own bytes still count.
            Err(e) => {
                tracing::warn!(repo, %digest, error = %e, "a stored manifest does not parse; quota counts only its own bytes")
            }
        }
        let footprint: Footprint = Arc::from(counted);
        if !complete {
            return Ok(Some(footprint));
        }
        let mut kept = self.quotas.footprints.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= FOOTPRINTS_KEPT {
            kept.clear();
        }
        kept.insert(digest.clone(), footprint.clone());
        Ok(Some(footprint))
    }
}
