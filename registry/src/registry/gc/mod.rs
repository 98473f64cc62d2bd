//! Garbage collection, as registry:2's `registry garbage-collect`: mark every
//! blob that a stored manifest revision refers to (in any repository), then
//! delete the blobs nothing marks. With `delete_untagged`, manifests that no
//! tag reaches are deleted first, so their blobs go too.
//!
//! registry:2 asks for the registry to be read-only meanwhile. Wharf does
//! not: every deletion goes through [`protocol`], which spares whatever a
//! push referenced after the collection started, and anything younger than
//! `min_age` (at least [`REFERENCE_GRACE`]). docs/gc.md has the argument.

mod lease;
mod protocol;

pub use protocol::{Pin, REFERENCE_GRACE, TOMBSTONE_TTL};

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::storage::paths::{self, Path};
use crate::storage::walk;

use super::digest::Digest;
use super::{Registry, Result};
use crate::oci::manifest;
use protocol::Guarded;

/// What a collection found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Manifest revisions kept and read.
    pub manifests: usize,
    /// Untagged manifest revisions deleted (`repo@digest`), with `delete_untagged`.
    pub untagged_deleted: Vec<String>,
    /// Distinct blobs they mark (manifests included).
    pub marked: usize,
    /// Unmarked blobs deleted (or, in a dry run, that would be).
    pub deleted: Vec<Digest>,
    /// Their bytes.
    pub freed_bytes: u64,
    /// Unmarked blobs kept because they are younger than the grace.
    pub spared_young: usize,
    /// Unmarked blobs kept because a push referenced them within the grace
    /// (while this collection ran, or just before).
    pub spared_referenced: usize,
    /// The grace that applied: `min_age`, at least [`REFERENCE_GRACE`].
    pub grace: Duration,
}

/// The last collection, as stored for the operator and `/debug/gc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastCollection {
    /// RFC 3339.
    pub finished_at: String,
    pub dry_run: bool,
    pub blobs_deleted: usize,
    pub bytes_reclaimed: u64,
    pub manifests_deleted: usize,
    pub duration_seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl LastCollection {
    /// What a collection that ended now, after `elapsed`, reports.
    pub fn of(outcome: &Result<GcReport>, dry_run: bool, elapsed: Duration) -> Self {
        let finished_at =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let (blobs_deleted, bytes_reclaimed, manifests_deleted, error) = match outcome {
            Ok(r) => (r.deleted.len(), r.freed_bytes, r.untagged_deleted.len(), None),
            Err(e) => (0, 0, 0, Some(e.to_string())),
        };
        LastCollection {
            finished_at,
            dry_run,
            blobs_deleted,
            bytes_reclaimed,
            manifests_deleted,
            duration_seconds: elapsed.as_secs_f64(),
            error,
        }
    }
}

impl Registry {
    /// Marks and sweeps; with `dry_run` nothing is deleted. With
    /// `delete_untagged`, manifests no tag reaches (directly or as an index's
    /// child) are deleted first, as registry:2's `--delete-untagged`.
    #[tracing::instrument(skip_all, fields(dry_run = dry_run, delete_untagged = delete_untagged))]
    pub async fn garbage_collect(&self, min_age: Duration, dry_run: bool, delete_untagged: bool) -> Result<GcReport> {
        let grace = min_age.max(REFERENCE_GRACE);
        let mut report = GcReport { grace, ..GcReport::default() };
        let run = format!("{:016x}", rand::random::<u64>());
        let cutoff = self.store_clock(&run).await?.checked_sub(grace).unwrap_or(SystemTime::UNIX_EPOCH);
        self.clear_dead_tombstones(cutoff.checked_sub(TOMBSTONE_TTL).unwrap_or(SystemTime::UNIX_EPOCH)).await?;

        let mut marked: HashSet<Digest> = HashSet::new();
        for repo in walk::repositories_with(&*self.backend, &[paths::MANIFESTS_DIR]).await? {
            let repo = repo.as_str();
            let revisions = walk::linked_digests(&*self.backend, |alg| Path::RevisionsRoot(repo, alg).key()).await?;
            let mut keep: HashSet<Digest> = revisions.iter().cloned().collect();
            if delete_untagged {
                keep = self.tagged_closure(repo, &keep).await?;
            }
            for digest in revisions {
                if !keep.contains(&digest) {
                    let gone = dry_run
                        || self
                            .guarded_delete(&digest, &run, cutoff, false, || async {
                                Ok(self.backend.delete(&Path::Revision(repo, &digest).key()).await?)
                            })
                            .await?
                            == Guarded::Deleted;
                    if gone {
                        report.untagged_deleted.push(format!("{repo}@{digest}"));
                        continue;
                    }
                    // Tagged again while we looked: it marks like any other.
                }
                report.manifests += 1;
                marked.insert(digest.clone());
                if let Some(parsed) = self.stored_manifest(repo, &digest).await? {
                    marked.extend(parsed.blobs.into_iter().chain(parsed.children));
                }
            }
        }
        report.marked = marked.len();

        let stored = walk::blob_digests(&*self.backend).await?;
        for digest in &stored {
            if marked.contains(digest) {
                continue;
            }
            self.sweep_blob(digest, &run, cutoff, dry_run, &mut report).await?;
        }
        if !dry_run {
            self.sweep_orphan_markers(&stored.into_iter().collect(), &run, cutoff).await?;
        }
        if let Err(e) = self.backend.delete(&Path::GcRun(&run).key()).await {
            tracing::warn!(error = %e, "removing the collection's clock object");
        }
        Ok(report)
    }

    /// Deletes one unmarked blob unless it is young or referenced since `cutoff`.
    async fn sweep_blob(
        &self,
        digest: &Digest,
        run: &str,
        cutoff: SystemTime,
        dry_run: bool,
        report: &mut GcReport,
    ) -> Result<()> {
        let meta = match self.backend.stat(&Path::BlobData(digest).key()).await {
            Ok(m) => m,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if meta.modified.is_none_or(|m| m > cutoff) {
            report.spared_young += 1;
            return Ok(());
        }
        let outcome = if dry_run {
            if self.referenced_since(digest, cutoff).await? { Guarded::Spared } else { Guarded::Deleted }
        } else {
            self.guarded_delete(digest, run, cutoff, true, || async {
                Ok(self.backend.delete(&Path::Blob(digest).key()).await?)
            })
            .await?
        };
        match outcome {
            Guarded::Spared => report.spared_referenced += 1,
            Guarded::Deleted => {
                report.freed_bytes += meta.size;
                report.deleted.push(digest.clone());
            }
        }
        Ok(())
    }

    /// Markers outlive their blob when something else deleted it (a user's
    /// DELETE, distribution's collector): drop the old ones.
    async fn sweep_orphan_markers(&self, stored: &HashSet<Digest>, run: &str, cutoff: SystemTime) -> Result<()> {
        let markers = walk::linked_digests(&*self.backend, |alg| Path::GcReferencesRoot(alg).key()).await?;
        for d in markers.into_iter().filter(|d| !stored.contains(d)) {
            if !self.referenced_since(&d, cutoff).await? {
                self.guarded_delete(&d, run, cutoff, true, || async { Ok(()) }).await?;
            }
        }
        Ok(())
    }

    /// The store's clock now: the time it gives an object written now. The
    /// markers' times come from the same clock, so replicas' clocks never
    /// meet the comparison.
    async fn store_clock(&self, run: &str) -> Result<SystemTime> {
        let key = Path::GcRun(run).key();
        self.backend.put_scratch(&key, Bytes::from_static(b"collecting")).await?;
        Ok(self.backend.stat(&key).await?.modified.unwrap_or_else(SystemTime::now))
    }

    /// Stores the last collection's outcome; a failure to store it is logged only.
    pub async fn record_collection(&self, last: &LastCollection) {
        let body = match serde_json::to_vec(last) {
            Ok(b) => b,
            Err(e) => return tracing::warn!(error = %e, "encoding the collection report"),
        };
        if let Err(e) = self.backend.put_scratch(&Path::GcLast.key(), Bytes::from(body)).await {
            tracing::warn!(error = %e, "storing the collection report");
        }
    }

    /// The last collection's outcome, from any replica or the CLI.
    pub async fn last_collection(&self) -> Result<Option<LastCollection>> {
        match self.backend.get(&Path::GcLast.key()).await {
            Ok(body) => Ok(serde_json::from_slice(&body).ok()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A stored manifest, parsed; `None` when its blob is gone (a dangling revision marks nothing more).
    async fn stored_manifest(&self, repo: &str, digest: &Digest) -> Result<Option<manifest::Parsed>> {
        let body = match self.backend.get(&Path::BlobData(digest).key()).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // What an unparsable manifest refers to is unknown: stop before sweeping anything.
        manifest::parse(&body, None)
            .map(Some)
            .map_err(|reason| super::Error::CorruptManifest { what: format!("{repo}@{digest}"), reason })
    }

    /// The revisions of `repo` that a tag reaches, directly or through index children.
    async fn tagged_closure(&self, repo: &str, revisions: &HashSet<Digest>) -> Result<HashSet<Digest>> {
        let mut pending = Vec::new();
        for tag in walk::list_or_empty(&*self.backend, &Path::TagsRoot(repo).key()).await? {
            pending.extend(self.read_link(&Path::TagCurrentLink(repo, &tag).key()).await?);
        }
        let mut reached = HashSet::new();
        while let Some(d) = pending.pop() {
            if !revisions.contains(&d) || !reached.insert(d.clone()) {
                continue;
            }
            if let Some(parsed) = self.stored_manifest(repo, &d).await? {
                pending.extend(parsed.children);
            }
        }
        Ok(reached)
    }
}
