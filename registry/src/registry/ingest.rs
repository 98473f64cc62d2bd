//! Content whose digest is known before its bytes arrive: the pull-through
//! cache's fills. The same commit rules as a push apply (bytes verified
//! before they are visible, links written last), without a push's checks
//! that a manifest's blobs are already here: a cache fetches those later.

use bytes::Bytes;

use crate::storage::ByteStream;
use crate::storage::paths::Path;

use super::digest::Digest;
use super::reference::{RepoName, Tag};
use super::{Error, Registry, Result};

impl Registry {
    /// The size of a blob in the global store, linked anywhere or nowhere.
    pub async fn blob_stored(&self, digest: &Digest) -> Result<Option<u64>> {
        match self.backend.stat(&Path::BlobData(digest).key()).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Links a stored blob into `repo`.
    #[tracing::instrument(level = "debug", skip_all, fields(repo = %repo, digest = %digest))]
    pub async fn blob_link(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        if !self.pin(&[digest]).await?.missing.is_empty() {
            return Err(Error::BlobUnknown(digest.clone()));
        }
        self.write_link(&Path::LayerLink(repo.as_str(), digest).key(), digest).await
    }

    /// Stores `body` as the blob `digest` and links it into `repo`, through
    /// an upload session like any push; a failed fill leaves no session.
    #[tracing::instrument(skip_all, fields(repo = %repo, digest = %digest, bytes = tracing::field::Empty))]
    pub async fn blob_ingest(&self, repo: &RepoName, digest: &Digest, body: ByteStream) -> Result<u64> {
        let session = self.upload_start(repo).await?;
        match self.commit_upload(repo, &session.id, digest, None, Some(body)).await {
            Ok(_) => {
                let size = self.blob_stored(digest).await?.ok_or_else(|| Error::BlobUnknown(digest.clone()))?;
                tracing::Span::current().record("bytes", size);
                Ok(size)
            }
            Err(e) => {
                self.discard_upload(repo, &session.id).await;
                Err(e)
            }
        }
    }

    /// A stored manifest's bytes, by digest.
    pub async fn manifest_bytes(&self, digest: &Digest) -> Result<Option<Bytes>> {
        match self.backend.get(&Path::BlobData(digest).key()).await {
            Ok(body) => Ok(Some(body)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores a manifest the caller has verified against `digest`, in the
    /// registry's commit order: bytes, revision link, tag index, tag current.
    #[tracing::instrument(skip_all, fields(repo = %repo, digest = %digest, bytes = body.len()))]
    pub async fn manifest_ingest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        body: Bytes,
        tag: Option<&Tag>,
    ) -> Result<()> {
        self.pin(&[digest]).await?;
        let blob_key = Path::BlobData(digest).key();
        if self.backend.stat(&blob_key).await.is_err() {
            self.backend.put(&blob_key, body).await?;
        }
        self.write_link(&Path::RevisionLink(repo.as_str(), digest).key(), digest).await?;
        if let Some(tag) = tag {
            self.write_link(&Path::TagIndexEntryLink(repo.as_str(), tag.as_str(), digest).key(), digest).await?;
            self.write_link(&Path::TagCurrentLink(repo.as_str(), tag.as_str()).key(), digest).await?;
            // A mirror's cached tags are searchable at once, like pushed ones.
            self.search.tagged(repo, tag);
        }
        Ok(())
    }
}

impl Registry {
    /// Streams `[offset, offset + len)` of a stored blob, wherever it is linked.
    pub async fn blob_stream(&self, digest: &Digest, offset: u64, len: u64) -> Result<ByteStream> {
        match self.backend.read(&Path::BlobData(digest).key(), offset, Some(len)).await {
            Ok(body) => Ok(body),
            Err(e) if e.is_not_found() => Err(Error::BlobUnknown(digest.clone())),
            Err(e) => Err(e.into()),
        }
    }
}
