//! When tags and manifests were last pulled, for retention's `pulledwithin`
//! and `mostrecentlypulledcount`, without a storage write per pull.
//!
//! A successful manifest GET records (repository, tag and digest) -> now in
//! memory; [`Registry::flush_pulls`] merges the batch into one object per
//! repository (`Path::Pulls`, outside registry:2's tree) every
//! [`FLUSH_EVERY`] and at graceful shutdown. Merging keeps the later time of
//! each entry, so replicas sharing storage add to each other's records. The
//! store has no compare-and-swap: two replicas flushing the same repository
//! at the same moment can still lose one's batch (see docs/retention.md);
//! each flush re-reads after writing and merges again when its entries are
//! missing, which narrows that window to the time between two requests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::storage::paths::Path;

use super::digest::Digest;
use super::reference::{Reference, RepoName};
use super::{Registry, Result};

/// How often a serving registry writes its batch.
pub const FLUSH_EVERY: Duration = Duration::from_secs(60);

/// Writes of one repository's record before a flush gives up on seeing its
/// entries survive a concurrent writer.
const MERGE_ATTEMPTS: usize = 3;

/// One repository's last pull times, in Unix seconds (the stored JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRecord {
    #[serde(default)]
    pub tags: BTreeMap<String, u64>,
    #[serde(default)]
    pub digests: BTreeMap<String, u64>,
}

impl PullRecord {
    /// Keeps the later time of every entry.
    pub fn merge(&mut self, other: &PullRecord) {
        for (mine, theirs) in [(&mut self.tags, &other.tags), (&mut self.digests, &other.digests)] {
            for (k, t) in theirs {
                let e = mine.entry(k.clone()).or_insert(*t);
                *e = (*e).max(*t);
            }
        }
    }

    /// Whether every entry of `other` is here, at its time or later.
    fn covers(&self, other: &PullRecord) -> bool {
        let holds = |mine: &BTreeMap<String, u64>, theirs: &BTreeMap<String, u64>| {
            theirs.iter().all(|(k, t)| mine.get(k).is_some_and(|m| m >= t))
        };
        holds(&self.tags, &other.tags) && holds(&self.digests, &other.digests)
    }

    fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.digests.is_empty()
    }

    /// When `tag` was last pulled: by its name, or by the digest it names now
    /// (clients resolve a tag with HEAD and GET the manifest by digest).
    pub fn tag_pulled(&self, tag: &str, digest: &Digest) -> Option<SystemTime> {
        let by_tag = self.tags.get(tag).copied();
        let by_digest = self.digests.get(&digest.to_string()).copied();
        by_tag.max(by_digest).map(|s| UNIX_EPOCH + Duration::from_secs(s))
    }
}

/// The batch not yet written, by repository.
#[derive(Default)]
pub(super) struct PullLog {
    enabled: bool,
    pending: Mutex<HashMap<String, PullRecord>>,
}

impl PullLog {
    pub(super) fn new(enabled: bool) -> Self {
        PullLog { enabled, pending: Mutex::default() }
    }

    fn take(&self) -> HashMap<String, PullRecord> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn put_back(&self, repo: String, record: &PullRecord) {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).entry(repo).or_default().merge(record);
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Registry {
    /// Notes a successful manifest GET (only when retention is configured:
    /// otherwise nothing is ever written outside registry:2's tree).
    pub fn record_pull(&self, repo: &RepoName, reference: &Reference, digest: &Digest) {
        if !self.pulls.enabled {
            return;
        }
        let now = unix_now();
        let mut pending = self.pulls.pending.lock().unwrap_or_else(|p| p.into_inner());
        let record = pending.entry(repo.as_str().to_string()).or_default();
        if let Reference::Tag(t) = reference {
            record.tags.insert(t.as_str().to_string(), now);
        }
        record.digests.insert(digest.to_string(), now);
    }

    /// Merges the pending batch into storage; returns how many repositories
    /// were written. What could not be written stays pending for the next flush.
    #[tracing::instrument(skip_all)]
    pub async fn flush_pulls(&self) -> Result<usize> {
        let batch = self.pulls.take();
        let mut written = 0;
        let mut failed = None;
        for (repo, record) in batch {
            match self.merge_pulls(&repo, &record).await {
                Ok(()) => written += 1,
                Err(e) => {
                    self.pulls.put_back(repo, &record);
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }

    async fn merge_pulls(&self, repo: &str, record: &PullRecord) -> Result<()> {
        if record.is_empty() {
            return Ok(());
        }
        let key = Path::Pulls(repo).key();
        for _ in 0..MERGE_ATTEMPTS {
            let mut stored = self.stored_pulls(repo).await?;
            stored.merge(record);
            let body = serde_json::to_vec(&stored).unwrap_or_default();
            self.backend.put(&key, Bytes::from(body)).await?;
            // Another replica's write based on an older read replaces ours: merge again.
            if self.stored_pulls(repo).await?.covers(record) {
                return Ok(());
            }
        }
        tracing::warn!(repo, "pull times: another replica kept overwriting this record; some entries may be lost");
        Ok(())
    }

    /// Drops the entries of deleted tags and manifests, so a record holds
    /// what the repository holds (and a tag pushed again later does not
    /// inherit its predecessor's pulls). Read, edit, write: a flush by
    /// another replica at the same moment can put an entry back, which
    /// costs nothing but its bytes.
    pub(super) async fn prune_pulls(&self, repo: &str, tags: &[String], digests: &[Digest]) -> Result<()> {
        if tags.is_empty() && digests.is_empty() {
            return Ok(());
        }
        let mut stored = self.stored_pulls(repo).await?;
        let before = stored.clone();
        for t in tags {
            stored.tags.remove(t);
        }
        for d in digests {
            stored.digests.remove(&d.to_string());
        }
        if stored == before {
            return Ok(());
        }
        let key = Path::Pulls(repo).key();
        if stored.is_empty() {
            self.backend.delete(&key).await?;
        } else {
            self.backend.put(&key, Bytes::from(serde_json::to_vec(&stored).unwrap_or_default())).await?;
        }
        Ok(())
    }

    /// The stored pull times of `repo` (empty when none). A record that does
    /// not parse is treated as empty, with a warning, and replaced by the
    /// next flush.
    pub async fn stored_pulls(&self, repo: &str) -> Result<PullRecord> {
        let key = Path::Pulls(repo).key();
        match self.backend.get(&key).await {
            Ok(body) => Ok(serde_json::from_slice(&body).unwrap_or_else(|e| {
                tracing::warn!(key, error = %e, "pull times do not parse; starting afresh");
                PullRecord::default()
            })),
            Err(e) if e.is_not_found() => Ok(PullRecord::default()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_the_later_time() {
        let mut a = PullRecord::default();
        a.tags.insert("v1".into(), 10);
        a.digests.insert("sha256:x".into(), 5);
        let mut b = PullRecord::default();
        b.tags.insert("v1".into(), 7);
        b.tags.insert("v2".into(), 3);
        b.digests.insert("sha256:x".into(), 9);
        a.merge(&b);
        assert_eq!(a.tags["v1"], 10);
        assert_eq!(a.tags["v2"], 3);
        assert_eq!(a.digests["sha256:x"], 9);
        assert!(a.covers(&b));
        b.tags.insert("v3".into(), 1);
        assert!(!a.covers(&b));
    }
}
