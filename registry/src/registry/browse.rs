//! What the web UI reads beyond the API's operations: when each tag was
//! last pushed (its link's modification time) and small blobs (image
//! configs) whole.

use std::time::SystemTime;

use bytes::Bytes;

use crate::storage::paths::Path;

use super::digest::Digest;
use super::reference::{RepoName, Tag};
use super::{Error, Registry, Result};

/// One tag as the UI lists it.
#[derive(Debug, Clone)]
pub struct TagInfo {
    pub tag: Tag,
    pub digest: Digest,
    /// When the tag was last pushed (the current link's mtime), when the store says.
    pub pushed: Option<SystemTime>,
}

impl Registry {
    /// Every tag of `repo` with its digest and push time, in tag order: two
    /// reads per tag (the link and its metadata), none for the directory.
    pub async fn tag_details(&self, repo: &RepoName) -> Result<Vec<TagInfo>> {
        let names = match self.backend.list(&Path::TagsRoot(repo.as_str()).key()).await {
            Ok(n) => n,
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::with_capacity(names.len());
        for tag in names.iter().filter_map(|n| Tag::parse(n).ok()) {
            let key = Path::TagCurrentLink(repo.as_str(), tag.as_str()).key();
            // No link: a tag PUT cut short, or deleted since it was listed.
            let Some(digest) = self.read_link(&key).await? else { continue };
            let pushed = match self.backend.stat(&key).await {
                Ok(meta) => meta.modified,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            out.push(TagInfo { tag, digest, pushed });
        }
        Ok(out)
    }

    /// The bytes of a blob of `repo` no larger than `max`; `None` when it is larger.
    pub async fn small_blob(&self, repo: &RepoName, digest: &Digest, max: u64) -> Result<Option<Bytes>> {
        if self.blob_size(repo, digest).await? > max {
            return Ok(None);
        }
        match self.backend.get(&Path::BlobData(digest).key()).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.is_not_found() => Err(Error::BlobUnknown(digest.clone())),
            Err(e) => Err(e.into()),
        }
    }
}
