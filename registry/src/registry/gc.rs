//! Garbage collection, as registry:2's `registry garbage-collect`: mark every
//! blob that a stored manifest revision refers to (in any repository), then
//! delete the blobs nothing marks. With `delete_untagged`, manifests that no
//! tag reaches are deleted first, so their blobs go too.
//!
//! registry:2 asks for the registry to be read-only meanwhile, because a push
//! uploads its layers before the manifest that refers to them. Wharf also
//! spares blobs younger than `min_age`, so a push in progress keeps its
//! layers even when the registry stays writable.

use crate::storage::{paths, walk};
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use crate::storage::paths::Path;

use super::digest::Digest;
use super::{Registry, Result};
use crate::oci::manifest;

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
    /// Unmarked blobs kept because they are younger than `min_age`.
    pub spared_young: usize,
}

impl Registry {
    /// Marks and sweeps; with `dry_run` nothing is deleted. With
    /// `delete_untagged`, manifests no tag reaches (directly or as an index's
    /// child) are deleted first, as registry:2's `--delete-untagged`.
    #[tracing::instrument(skip_all, fields(dry_run = dry_run, delete_untagged = delete_untagged))]
    pub async fn garbage_collect(&self, min_age: Duration, dry_run: bool, delete_untagged: bool) -> Result<GcReport> {
        let mut report = GcReport::default();
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
                    report.untagged_deleted.push(format!("{repo}@{digest}"));
                    if !dry_run {
                        self.backend.delete(&Path::Revision(repo, &digest).key()).await?;
                    }
                    continue;
                }
                report.manifests += 1;
                marked.insert(digest.clone());
                if let Some(parsed) = self.stored_manifest(repo, &digest).await? {
                    marked.extend(parsed.blobs.into_iter().chain(parsed.children));
                }
            }
        }
        report.marked = marked.len();

        let cutoff = SystemTime::now().checked_sub(min_age).unwrap_or(SystemTime::UNIX_EPOCH);
        for digest in walk::blob_digests(&*self.backend).await? {
            if marked.contains(&digest) {
                continue;
            }
            let meta = match self.backend.stat(&Path::BlobData(&digest).key()).await {
                Ok(m) => m,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            if meta.modified.is_none_or(|m| m > cutoff) {
                report.spared_young += 1;
                continue;
            }
            if !dry_run {
                self.backend.delete(&Path::Blob(&digest).key()).await?;
            }
            report.freed_bytes += meta.size;
            report.deleted.push(digest);
        }
        Ok(report)
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
