//! Storage quotas (`storage.quotas`): a limit on the bytes the manifests
//! of the repositories matching a glob reference, each distinct blob (layers,
//! configs, the manifests themselves) counted once however many of those
//! repositories share it.
//!
//! Usage is kept in memory: the set of blobs each quota counts, found by a
//! walk of storage at start and every [`RECOMPUTE_EVERY`] (`quota_walk.rs`),
//! plus the blobs of every manifest PUT this process accepts since. A PUT
//! is checked and counted under the quota's lock, so two concurrent PUTs in
//! one process cannot both squeeze under the limit. Replicas learn of each
//! other's pushes, and of deletes, at their next walk (docs/quotas.md).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::oci::glob::RepoGlob;
use crate::oci::manifest::Parsed;
use crate::storage::paths::Path;

use super::digest::Digest;
use super::reference::RepoName;
use super::{Error, Registry, Result};

/// How often usage is recounted from storage: what other replicas pushed,
/// and what deletes and garbage collection freed, shows up by then.
pub const RECOMPUTE_EVERY: Duration = Duration::from_secs(300);

/// One quota as configured.
#[derive(Debug, Clone)]
pub struct QuotaRule {
    pub repositories: RepoGlob,
    pub limit: u64,
}

/// A quota's use as `/debug/quotas` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaReport {
    pub repositories: String,
    /// `None` until storage has been walked once.
    pub used_bytes: Option<u64>,
    pub limit_bytes: u64,
    /// Distinct blobs counted.
    pub blobs: usize,
    /// When storage was last walked (RFC 3339).
    pub computed_at: Option<String>,
}

/// The blobs a quota counts, with their sizes.
#[derive(Default)]
pub(super) struct Usage {
    /// `None` until the first walk.
    pub(super) counted: Option<HashMap<Digest, u64>>,
    pub(super) used: u64,
    /// While a walk runs: what PUTs added meanwhile, which the walk may have missed.
    pub(super) during_walk: Option<HashMap<Digest, u64>>,
    pub(super) computed_at: Option<SystemTime>,
}

pub(super) struct Quota {
    pub(super) rule: QuotaRule,
    pub(super) usage: Mutex<Usage>,
}

/// Every quota, and what walks share.
pub(super) struct Quotas {
    pub(super) quotas: Vec<Quota>,
    /// One walk at a time.
    pub(super) walking: tokio::sync::Mutex<()>,
    /// Blob sizes by digest (content never changes; bounded).
    pub(super) sizes: Mutex<HashMap<Digest, u64>>,
    /// What each manifest counts (itself and its blobs) by digest, so a
    /// walk reads only manifests it has not seen before (bounded).
    pub(super) footprints: Mutex<HashMap<Digest, Footprint>>,
}

/// A manifest and the blobs it references, with their sizes.
pub(super) type Footprint = std::sync::Arc<[(Digest, u64)]>;

impl Quotas {
    pub(super) fn new(rules: &[QuotaRule]) -> Quotas {
        for rule in rules {
            crate::metrics::quota_limit(rule.repositories.as_str(), rule.limit);
        }
        Quotas {
            quotas: rules.iter().map(|rule| Quota { rule: rule.clone(), usage: Mutex::default() }).collect(),
            walking: tokio::sync::Mutex::new(()),
            sizes: Mutex::new(HashMap::new()),
            footprints: Mutex::new(HashMap::new()),
        }
    }
}

impl Quota {
    pub(super) fn lock(&self) -> MutexGuard<'_, Usage> {
        self.usage.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Usage {
    /// Counts blobs not counted yet; returns the bytes added.
    fn add(&mut self, blobs: &[(Digest, u64)]) -> u64 {
        let Some(counted) = self.counted.as_mut() else { return 0 };
        let mut added = 0;
        for (d, size) in blobs {
            if counted.insert(d.clone(), *size).is_none() {
                added += size;
            }
            if let Some(during) = self.during_walk.as_mut() {
                during.insert(d.clone(), *size);
            }
        }
        self.used = self.used.saturating_add(added);
        added
    }

    /// What `blobs` would add.
    fn new_bytes(&self, blobs: &[(Digest, u64)]) -> u64 {
        let counted = self.counted.as_ref();
        let mut seen = std::collections::HashSet::new();
        blobs
            .iter()
            .filter(|(d, _)| counted.is_none_or(|c| !c.contains_key(d)) && seen.insert(d))
            .fold(0u64, |sum, (_, size)| sum.saturating_add(*size))
    }
}

impl Registry {
    /// Checks a manifest PUT into `repo` against every quota that matches
    /// it and, when it fits, counts its blobs. Called before the revision
    /// link is written, so a refused manifest never becomes visible; a PUT
    /// that fails later leaves its blobs counted until the next walk (an
    /// overcount, never an overshoot).
    pub(super) async fn quota_admit(&self, repo: &RepoName, digest: &Digest, parsed: &Parsed, size: u64) -> Result<()> {
        let matching: Vec<&Quota> =
            self.quotas.quotas.iter().filter(|q| q.rule.repositories.matches(repo.as_str())).collect();
        if matching.is_empty() {
            return Ok(());
        }
        if matching.iter().any(|q| q.lock().counted.is_none()) {
            self.count_quotas_once().await?;
        }
        let mut blobs = vec![(digest.clone(), size)];
        for blob in &parsed.blobs {
            blobs.push((
                blob.clone(),
                self.quota_blob_size(blob).await?.ok_or_else(|| Error::ManifestBlobUnknown(blob.clone()))?,
            ));
        }
        // Locked in configuration order (so never the other way round by
        // another PUT), checked, then counted, without an await in between.
        let mut locked: Vec<(&Quota, MutexGuard<'_, Usage>)> = matching.iter().map(|q| (*q, q.lock())).collect();
        for (quota, usage) in &locked {
            let new = usage.new_bytes(&blobs);
            if new > 0 && usage.used.saturating_add(new) > quota.rule.limit {
                return Err(Error::QuotaExceeded {
                    quota: quota.rule.repositories.to_string(),
                    used: usage.used,
                    new,
                    limit: quota.rule.limit,
                });
            }
        }
        for (quota, usage) in &mut locked {
            if usage.add(&blobs) > 0 {
                crate::metrics::quota_used(quota.rule.repositories.as_str(), usage.used);
            }
        }
        Ok(())
    }

    /// A blob's size, from memory or storage; `None` when it is not stored.
    pub(super) async fn quota_blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        if let Some(size) = self.quotas.sizes.lock().unwrap_or_else(|p| p.into_inner()).get(digest) {
            return Ok(Some(*size));
        }
        let size = match self.backend.stat(&Path::BlobData(digest).key()).await {
            Ok(meta) => meta.size,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut sizes = self.quotas.sizes.lock().unwrap_or_else(|p| p.into_inner());
        if sizes.len() >= 200_000 {
            sizes.clear();
        }
        sizes.insert(digest.clone(), size);
        Ok(Some(size))
    }

    /// Whether any quota is configured.
    pub fn has_quotas(&self) -> bool {
        !self.quotas.quotas.is_empty()
    }

    /// Every quota's use, in configuration order.
    pub fn quota_reports(&self) -> Vec<QuotaReport> {
        self.quotas
            .quotas
            .iter()
            .map(|q| {
                let usage = q.lock();
                QuotaReport {
                    repositories: q.rule.repositories.to_string(),
                    used_bytes: usage.counted.as_ref().map(|_| usage.used),
                    limit_bytes: q.rule.limit,
                    blobs: usage.counted.as_ref().map_or(0, HashMap::len),
                    computed_at: usage.computed_at.and_then(rfc3339),
                }
            })
            .collect()
    }

    /// Recounts usage from storage every `every`, starting now, for ever.
    pub async fn watch_quotas(self: std::sync::Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let started = std::time::Instant::now();
            match self.recompute_quotas().await {
                Ok(()) => tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    quotas = ?self.quota_reports().iter().map(|r| (r.repositories.clone(), r.used_bytes)).collect::<Vec<_>>(),
                    "quota usage recounted"
                ),
                Err(e) => tracing::warn!(error = %e, "recounting quota usage failed; the last counts stay"),
            }
        }
    }
}

fn rfc3339(t: SystemTime) -> Option<String> {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// `48.2 GiB`, `50 GiB`, `512 B`: sizes as people read them.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let shown = format!("{value:.1}");
    format!("{} {}", shown.strip_suffix(".0").unwrap_or(&shown), UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_people_read_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1 KiB");
        assert_eq!(human_bytes(50 << 30), "50 GiB");
        assert_eq!(human_bytes((482 << 30) / 10), "48.2 GiB");
        assert_eq!(human_bytes(u64::MAX), "16 EiB");
    }
}
