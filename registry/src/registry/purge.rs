//! Upload purging (`storage.maintenance.uploadpurging`): removes upload
//! sessions older than `age`, every `interval`, as registry:2 does.

use crate::storage::{paths, walk};
use std::time::{Duration, SystemTime};

use crate::storage::paths::Path;

use super::{Registry, Result};

impl Registry {
    /// Deletes sessions that started more than `age` ago; returns how many.
    #[tracing::instrument(skip_all, fields(dry_run = dry_run))]
    pub async fn purge_uploads(&self, age: Duration, dry_run: bool) -> Result<usize> {
        let cutoff = SystemTime::now().checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut purged = 0;
        for repo in walk::repositories_with(&*self.backend, &[paths::UPLOADS_DIR]).await? {
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
}
