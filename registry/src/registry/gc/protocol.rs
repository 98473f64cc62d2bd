//! The protocol that lets a collection run while the registry takes pushes
//! (docs/gc.md has the argument). Two kinds of object, beside registry:2's
//! tree:
//!
//! - a **reference marker** per blob, rewritten by every operation that
//!   makes a stored blob part of an accepted push (manifest PUT, an upload
//!   that finds its blob already stored, a mirror fill). Its mtime, on the
//!   store's clock, says when the blob was last referenced;
//! - a **tombstone** per blob and collection, present only while that
//!   collection is deleting the blob.
//!
//! A writer writes its markers, then waits until no live tombstone names
//! them, then checks the blobs are still there. A collector writes its
//! tombstone, then rereads the marker, and deletes only when the marker is
//! older than its grace. Whichever of the two writes comes first, the other
//! side sees it.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::StreamExt as _;

use crate::storage::StorageError;
use crate::storage::paths::{self, Path};

use super::super::digest::Digest;
use super::super::{Registry, Result};

/// Nothing referenced or written more recently than this is collected,
/// whatever `--min-age` says: writers commit within half of it.
pub const REFERENCE_GRACE: Duration = Duration::from_secs(60);

/// A writer that pinned longer ago than this pins again before it commits,
/// so its markers are always younger than [`REFERENCE_GRACE`] at its commit.
const COMMIT_WITHIN: Duration = Duration::from_secs(30);

/// A tombstone older than this (against the writer's fresh marker) was left
/// by a collector that died; collectors give up a deletion that took half
/// of it, so a live tombstone never gets this old.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(30);

/// Markers written (and blobs looked at) at once by one pin.
const MARKERS_IN_FLIGHT: usize = 16;

/// Proof that some blobs were pinned, and when.
pub struct Pin {
    at: Instant,
    /// The pinned digests whose blob is not stored.
    pub missing: Vec<Digest>,
}

impl Pin {
    /// Whether a commit made now is still covered by this pin.
    pub fn fresh(&self) -> bool {
        self.at.elapsed() < COMMIT_WITHIN
    }
}

/// What a guarded deletion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarded {
    Deleted,
    /// A writer referenced the blob after the collection started, or the
    /// deletion would have outlived its tombstone.
    Spared,
}

impl Registry {
    /// Records that `digests` are referenced now and waits out every
    /// collection deleting one of them. A commit that relies on them must
    /// follow while [`Pin::fresh`] holds.
    pub(in crate::registry) async fn pin(&self, digests: &[&Digest]) -> Result<Pin> {
        let deadline = Instant::now() + TOMBSTONE_TTL + Duration::from_secs(10);
        loop {
            let at = Instant::now();
            let keys: Vec<String> = digests.iter().map(|d| Path::GcReference(d).key()).collect();
            let writes = futures::stream::iter(keys)
                .map(|key| {
                    let backend = self.backend.clone();
                    async move { backend.put_scratch(&key, Bytes::new()).await }
                })
                .buffer_unordered(MARKERS_IN_FLIGHT)
                .collect::<Vec<_>>()
                .await;
            writes.into_iter().collect::<Result<Vec<()>, StorageError>>()?;
            if !self.tombstoned(digests).await? {
                let keys: Vec<String> = digests.iter().map(|d| Path::BlobData(d).key()).collect();
                let stored = futures::stream::iter(keys)
                    .map(|key| {
                        let backend = self.backend.clone();
                        async move { backend.stat(&key).await }
                    })
                    .buffered(MARKERS_IN_FLIGHT)
                    .collect::<Vec<_>>()
                    .await;
                let mut missing = Vec::new();
                for (d, stat) in digests.iter().zip(stored) {
                    match stat {
                        Ok(_) => {}
                        Err(e) if e.is_not_found() => missing.push((*d).clone()),
                        Err(e) => return Err(e.into()),
                    }
                }
                return Ok(Pin { at, missing });
            }
            // A collection is deleting one of them right now: once it is
            // done, pin again (it deletes the marker with the blob).
            if Instant::now() > deadline {
                return Err(
                    StorageError::Unavailable("a garbage collection holds a tombstone past its time".into()).into()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether a live tombstone names one of `digests`.
    async fn tombstoned(&self, digests: &[&Digest]) -> Result<bool> {
        let names = match self.backend.list(&Path::GcTombstonesRoot.key()).await {
            Ok(names) => names,
            Err(e) if e.is_not_found() => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        for d in digests {
            let prefix = paths::tombstone_prefix(d);
            for name in names.iter().filter(|n| n.starts_with(&prefix)) {
                let run = &name[prefix.len()..];
                if !self.tombstone_stale(d, run).await? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// A tombstone much older than the marker just written was left by a
    /// collector that died mid-deletion. Both times are the store's.
    async fn tombstone_stale(&self, d: &Digest, run: &str) -> Result<bool> {
        let tomb = match self.backend.stat(&Path::GcTombstone(d, run).key()).await {
            Ok(m) => m.modified,
            Err(e) if e.is_not_found() => return Ok(true),
            Err(e) => return Err(e.into()),
        };
        let marker = self.backend.stat(&Path::GcReference(d).key()).await.ok().and_then(|m| m.modified);
        Ok(matches!((tomb, marker), (Some(t), Some(m)) if t + TOMBSTONE_TTL < m))
    }

    /// Deletes what `delete` removes for blob `d` unless its marker is
    /// younger than `cutoff` (the store's clock). `drop_marker` also removes
    /// the marker (when the blob itself goes).
    pub(super) async fn guarded_delete<F, Fut>(
        &self,
        d: &Digest,
        run: &str,
        cutoff: SystemTime,
        drop_marker: bool,
        delete: F,
    ) -> Result<Guarded>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let started = Instant::now();
        let tomb = Path::GcTombstone(d, run).key();
        self.backend.put_scratch(&tomb, Bytes::new()).await?;
        let outcome = self.delete_under_tombstone(d, cutoff, drop_marker, started, delete).await;
        if let Err(e) = self.backend.delete(&tomb).await
            && !e.is_not_found()
        {
            // Writers ignore it after TOMBSTONE_TTL; the next collection removes it.
            tracing::warn!(error = %e, digest = %d, "removing a tombstone");
        }
        outcome
    }

    async fn delete_under_tombstone<F, Fut>(
        &self,
        d: &Digest,
        cutoff: SystemTime,
        drop_marker: bool,
        started: Instant,
        delete: F,
    ) -> Result<Guarded>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        if self.referenced_since(d, cutoff).await? || started.elapsed() > TOMBSTONE_TTL / 2 {
            return Ok(Guarded::Spared);
        }
        delete().await?;
        if drop_marker {
            match self.backend.delete(&Path::GcReference(d).key()).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Guarded::Deleted)
    }

    /// Whether the blob's marker is younger than `cutoff` (no time: young).
    pub(super) async fn referenced_since(&self, d: &Digest, cutoff: SystemTime) -> Result<bool> {
        match self.backend.stat(&Path::GcReference(d).key()).await {
            Ok(m) => Ok(m.modified.is_none_or(|t| t > cutoff)),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes tombstones of collections that died, older than `before`.
    pub(super) async fn clear_dead_tombstones(&self, before: SystemTime) -> Result<usize> {
        let root = Path::GcTombstonesRoot.key();
        let names = match self.backend.list(&root).await {
            Ok(n) => n,
            Err(e) if e.is_not_found() => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut cleared = 0;
        for (d, run) in names.iter().filter_map(|n| paths::tombstone_parts(n)) {
            let key = Path::GcTombstone(&d, run).key();
            if let Ok(m) = self.backend.stat(&key).await
                && m.modified.is_some_and(|t| t < before)
                && self.backend.delete(&key).await.is_ok()
            {
                cleared += 1;
            }
        }
        Ok(cleared)
    }
}
