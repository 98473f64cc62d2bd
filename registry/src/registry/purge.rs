//! Upload purging (`storage.maintenance.uploadpurging`): removes upload
//! sessions older than `age`, every `interval`, as registry:2 does.

use crate::storage::paths;
use std::time::{Duration, SystemTime};

use crate::storage::paths::Path;

use super::reference::RepoName;
use super::{Registry, Result};

impl Registry {
    /// Deletes sessions that started more than `age` ago; returns how many.
    #[tracing::instrument(skip_all, fields(dry_run = dry_run))]
    pub async fn purge_uploads(&self, age: Duration, dry_run: bool) -> Result<usize> {
        let cutoff = SystemTime::now().checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut purged = 0;
        for repo in self.repositories_with(&[paths::UPLOADS_DIR]).await? {
            let root = Path::UploadsRoot(repo.as_str()).key();
            let ids = match self.backend.list(&root).await {
                Ok(ids) => ids,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            for id in ids {
                let started = match self.backend.stat(&Path::UploadStartedAt(repo.as_str(), &id).key()).await {
                    Ok(m) => m.modified,
                    // A session without startedat is judged by its data.
                    Err(_) => self
                        .backend
                        .stat(&Path::UploadData(repo.as_str(), &id).key())
                        .await
                        .ok()
                        .and_then(|m| m.modified),
                };
                if started.is_some_and(|t| t < cutoff) {
                    purged += 1;
                    if !dry_run {
                        self.discard_upload(&repo, &id).await;
                    }
                }
            }
        }
        Ok(purged)
    }

    /// Repositories whose directory holds one of `markers` (`_uploads`, `_manifests`, ...).
    /// The tree is walked a level at a time with many listings in flight: on
    /// S3 each listing is a round trip, and a catalog of a thousand
    /// repositories would otherwise wait for a thousand of them in a row.
    pub(super) async fn repositories_with(&self, markers: &[&str]) -> Result<Vec<RepoName>> {
        use futures::StreamExt as _;
        let root = Path::RepositoriesRoot.key();
        let mut found = Vec::new();
        let mut level = vec![String::new()];
        while !level.is_empty() {
            let listed: Vec<(String, Result<Vec<String>, crate::storage::StorageError>)> =
                futures::stream::iter(level.drain(..))
                    .map(|prefix| {
                        let key = if prefix.is_empty() { root.clone() } else { format!("{root}/{prefix}") };
                        async move { (prefix, self.backend.list(&key).await) }
                    })
                    .buffer_unordered(32)
                    .collect()
                    .await;
            for (prefix, children) in listed {
                let children = match children {
                    Ok(c) => c,
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e.into()),
                };
                if !prefix.is_empty()
                    && children.iter().any(|c| markers.contains(&c.as_str()))
                    && let Ok(name) = RepoName::parse(&prefix)
                {
                    found.push(name);
                }
                for child in children.into_iter().filter(|c| !c.starts_with('_')) {
                    level.push(if prefix.is_empty() { child } else { format!("{prefix}/{child}") });
                }
            }
        }
        found.sort();
        Ok(found)
    }
}
