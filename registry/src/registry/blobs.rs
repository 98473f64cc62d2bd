//! Blobs as one repository sees them: a global content-addressed store plus
//! a per-repository link that says the repository may serve the blob.

use crate::storage::ByteStream;
use crate::storage::paths::Path;

use super::digest::Digest;
use super::events::{Action, Happened};
use super::reference::RepoName;
use super::{Error, Registry, Result};

/// A blob ready to be served.
pub struct BlobRead {
    pub size: u64,
    /// The byte range served, inclusive, when a range was requested.
    pub range: Option<(u64, u64)>,
    pub body: ByteStream,
}

impl Registry {
    /// The size of a blob linked into `repo`.
    #[tracing::instrument(level = "debug", skip_all, fields(repo = %repo, digest = %digest))]
    pub async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        if self.read_link(&Path::LayerLink(repo.as_str(), digest).key()).await?.as_ref() != Some(digest) {
            return Err(Error::BlobUnknown(digest.clone()));
        }
        match self.backend.stat(&Path::BlobData(digest).key()).await {
            Ok(meta) => Ok(meta.size),
            Err(e) if e.is_not_found() => Err(Error::BlobUnknown(digest.clone())),
            Err(e) => Err(e.into()),
        }
    }

    /// Where a client may fetch a blob directly (a presigned S3 URL), when
    /// redirects are on and the store has such URLs.
    pub async fn blob_redirect(&self, repo: &RepoName, digest: &Digest) -> Result<Option<String>> {
        if !self.options.redirect {
            return Ok(None);
        }
        let size = self.blob_size(repo, digest).await?;
        let ttl = std::time::Duration::from_secs(20 * 60);
        let url = self.backend.presign_get(&Path::BlobData(digest).key(), ttl).await?;
        if url.is_some() {
            self.notify(Happened::blob(Action::Pull, repo, digest, size)).await?;
        }
        Ok(url)
    }

    /// A HEAD on a blob: its size, and a pull event as registry:2 makes.
    pub async fn blob_head(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        let size = self.blob_size(repo, digest).await?;
        self.notify(Happened::blob(Action::Pull, repo, digest, size)).await?;
        Ok(size)
    }

    /// Streams a blob, or the inclusive byte range `range` of it.
    #[tracing::instrument(skip_all, fields(repo = %repo, digest = %digest, bytes = tracing::field::Empty))]
    pub async fn blob_read(&self, repo: &RepoName, digest: &Digest, range: Option<ByteRange>) -> Result<BlobRead> {
        let size = self.blob_size(repo, digest).await?;
        let served = match range {
            None => None,
            Some(r) => Some(r.resolve(size).ok_or(Error::RangeNotSatisfiable { size })?),
        };
        let (offset, len) = match served {
            Some((start, end)) => (start, Some(end - start + 1)),
            None => (0, None),
        };
        tracing::Span::current().record("bytes", len.unwrap_or(size));
        let body = match self.backend.read(&Path::BlobData(digest).key(), offset, len).await {
            Ok(body) => body,
            Err(e) if e.is_not_found() => return Err(Error::BlobUnknown(digest.clone())),
            Err(e) => return Err(e.into()),
        };
        self.notify(Happened::blob(Action::Pull, repo, digest, size)).await?;
        Ok(BlobRead { size, range: served, body })
    }

    /// Unlinks a blob from a repository. The bytes stay in the global store
    /// until garbage collection, as in registry:2.
    #[tracing::instrument(skip_all, fields(repo = %repo, digest = %digest))]
    pub async fn blob_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        self.check_delete()?;
        match self.backend.delete(&Path::Layer(repo.as_str(), digest).key()).await {
            Ok(()) => self.notify(Happened::blob(Action::Delete, repo, digest, 0)).await,
            Err(e) if e.is_not_found() => Err(Error::BlobUnknown(digest.clone())),
            Err(e) => Err(e.into()),
        }
    }

    /// Links a blob that `from` already has into `repo`. Returns false when
    /// `from` does not have it, so the caller can fall back to an upload.
    #[tracing::instrument(skip_all, fields(repo = %repo, from = %from, digest = %digest))]
    pub async fn blob_mount(&self, repo: &RepoName, from: &RepoName, digest: &Digest) -> Result<bool> {
        self.check_writable()?;
        let size = match self.blob_size(from, digest).await {
            Ok(size) => size,
            Err(Error::BlobUnknown(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        self.write_link(&Path::LayerLink(repo.as_str(), digest).key(), digest).await?;
        self.notify(Happened { from: Some(from), ..Happened::blob(Action::Mount, repo, digest, size) }).await?;
        Ok(true)
    }
}

/// A `Range: bytes=...` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `start-` or `start-end` (inclusive).
    From { start: u64, end: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Parses a single-range `bytes=` header; `None` for anything else.
    pub fn parse(header: &str) -> Option<ByteRange> {
        let spec = header.trim().strip_prefix("bytes=")?;
        if spec.contains(',') {
            return None;
        }
        let (a, b) = spec.split_once('-')?;
        let (a, b) = (a.trim(), b.trim());
        if a.is_empty() {
            return Some(ByteRange::Suffix(b.parse().ok()?));
        }
        let start = a.parse().ok()?;
        let end = if b.is_empty() { None } else { Some(b.parse().ok()?) };
        Some(ByteRange::From { start, end })
    }

    /// The inclusive range within a blob of `size` bytes, or `None` when unsatisfiable.
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            ByteRange::From { start, end } => {
                // `500-0` is an invalid range; rejected (416) as distribution
                // does, which RFC 9110 allows, rather than ignored.
                if start >= size || end.is_some_and(|e| e < start) {
                    return None;
                }
                Some((start, end.map_or(size - 1, |e| e.min(size - 1))))
            }
            ByteRange::Suffix(0) => None,
            ByteRange::Suffix(n) => {
                if size == 0 {
                    return None;
                }
                Some((size.saturating_sub(n), size - 1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(ByteRange::parse("bytes=0-9").unwrap().resolve(100), Some((0, 9)));
        assert_eq!(ByteRange::parse("bytes=90-").unwrap().resolve(100), Some((90, 99)));
        assert_eq!(ByteRange::parse("bytes=90-500").unwrap().resolve(100), Some((90, 99)));
        assert_eq!(ByteRange::parse("bytes=-10").unwrap().resolve(100), Some((90, 99)));
        assert_eq!(ByteRange::parse("bytes=100-").unwrap().resolve(100), None);
        assert_eq!(ByteRange::parse("bytes=5-1").unwrap().resolve(100), None);
        assert_eq!(ByteRange::parse("bytes=0-1,5-6"), None);
        assert_eq!(ByteRange::parse("items=0-1"), None);
    }
}
