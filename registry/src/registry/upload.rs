//! Upload sessions. The bytes live in storage (`_uploads/<id>/data`), so a
//! session started on one replica can be continued on another. Each process
//! keeps the running hash of the sessions it has seen, so the digest is
//! computed while data is written; a session that arrives from elsewhere is
//! re-hashed from storage once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures::StreamExt;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::storage::ByteStream;
use crate::storage::paths::Path;

use super::digest::{Algorithm, Digest, Hasher};
use super::reference::RepoName;
use super::{Error, Registry, Result};

/// Writes are batched to this size before they are hashed and stored.
const WRITE_BATCH: usize = 1024 * 1024;

/// The running state of one session in this process.
struct Cursor {
    size: u64,
    /// The hash of exactly `size` bytes, when this process saw them all.
    hasher: Option<Hasher>,
}

#[derive(Default)]
pub(super) struct Cursors(Mutex<HashMap<String, Arc<tokio::sync::Mutex<Cursor>>>>);

impl Cursors {
    fn get(&self, id: &str) -> Arc<tokio::sync::Mutex<Cursor>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(Cursor { size: 0, hasher: None })))
            .clone()
    }

    pub(super) fn remove(&self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    pub(super) fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Whether `id` can be an upload id we issued (a UUID), so it is safe in a key.
pub fn valid_upload_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// An upload session as the API reports it.
#[derive(Debug, Clone)]
pub struct UploadStatus {
    pub id: String,
    /// Bytes received so far.
    pub size: u64,
    /// Signed state for the `_state` query parameter.
    pub state: String,
}

/// What a `Content-Range` on a PATCH declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    pub start: u64,
    pub end: u64,
}

impl ChunkRange {
    /// Parses `<start>-<end>` (with or without a `bytes ` prefix and a `/size` suffix).
    pub fn parse(header: &str) -> Option<ChunkRange> {
        let h = header.trim();
        let h = h.strip_prefix("bytes ").or_else(|| h.strip_prefix("bytes=")).unwrap_or(h);
        let h = h.split('/').next()?;
        let (a, b) = h.split_once('-')?;
        let (start, end) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        (end >= start).then_some(ChunkRange { start, end })
    }
}

impl Registry {
    fn sign_state(&self, repo: &RepoName, id: &str) -> String {
        let payload = format!("{}|{}", repo.as_str(), id);
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.options.upload_secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(payload.as_bytes());
        format!("{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// Checks a `_state` parameter issued by `sign_state` (by this or another
    /// replica sharing `http.secret`).
    pub fn verify_state(&self, repo: &RepoName, id: &str, state: &str) -> Result<()> {
        let invalid = || Error::UploadInvalid("the upload state token is invalid or belongs to another upload".into());
        let (payload, sig) = state.split_once('.').ok_or_else(invalid)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?;
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| invalid())?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.options.upload_secret).map_err(|_| invalid())?;
        mac.update(&payload);
        mac.verify_slice(&sig).map_err(|_| invalid())?;
        if payload != format!("{}|{}", repo.as_str(), id).as_bytes() {
            return Err(invalid());
        }
        Ok(())
    }

    fn status(&self, repo: &RepoName, id: &str, size: u64) -> UploadStatus {
        UploadStatus { id: id.to_string(), size, state: self.sign_state(repo, id) }
    }

    /// Starts a new, empty session.
    pub async fn upload_start(&self, repo: &RepoName) -> Result<UploadStatus> {
        self.check_writable()?;
        let id = uuid::Uuid::new_v4().to_string();
        let now =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        // Session state is scratch: a power loss may lose it, and the client starts over.
        self.backend.put_scratch(&Path::UploadStartedAt(repo.as_str(), &id).key(), Bytes::from(now)).await?;
        self.backend.append(&Path::UploadData(repo.as_str(), &id).key(), 0).await?.close().await?;
        let cursor = self.uploads.get(&id);
        *cursor.lock().await = Cursor { size: 0, hasher: Some(Hasher::new(Algorithm::Sha256)) };
        Ok(self.status(repo, &id, 0))
    }

    /// The bytes stored so far, or `UploadUnknown`.
    async fn stored_size(&self, repo: &RepoName, id: &str) -> Result<u64> {
        if !valid_upload_id(id) {
            return Err(Error::UploadUnknown);
        }
        match self.backend.stat(&Path::UploadData(repo.as_str(), id).key()).await {
            Ok(m) => Ok(m.size),
            Err(e) if e.is_not_found() => Err(Error::UploadUnknown),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn upload_status(&self, repo: &RepoName, id: &str) -> Result<UploadStatus> {
        let size = self.stored_size(repo, id).await?;
        Ok(self.status(repo, id, size))
    }

    /// Appends a chunk. With `range`, the chunk must start where the session
    /// ends; without it (a streamed PATCH) it is simply appended.
    pub async fn upload_append(
        &self,
        repo: &RepoName,
        id: &str,
        range: Option<ChunkRange>,
        body: ByteStream,
    ) -> Result<UploadStatus> {
        self.check_writable()?;
        let cursor = self.cursor(repo, id).await?;
        let mut cursor = cursor.lock().await;
        self.sync_cursor(repo, id, &mut cursor, range).await?;
        let written = self.write_chunk(repo, id, &mut cursor, body).await?;
        if let Some(r) = range
            && written != r.end - r.start + 1
        {
            return Err(Error::UploadInvalid(format!(
                "Content-Range declared {} bytes but the body had {written}",
                r.end - r.start + 1
            )));
        }
        Ok(self.status(repo, id, cursor.size))
    }

    /// The cursor of a session that exists in storage. An unknown id is
    /// refused before any state is kept for it, so requests naming made-up
    /// ids cannot grow memory.
    async fn cursor(&self, repo: &RepoName, id: &str) -> Result<Arc<tokio::sync::Mutex<Cursor>>> {
        if let Err(e) = self.stored_size(repo, id).await {
            // Cancelled or completed elsewhere: forget it here too.
            self.uploads.remove(id);
            return Err(e);
        }
        Ok(self.uploads.get(id))
    }

    /// Aligns this process's cursor with what storage holds, and checks that
    /// a declared chunk range starts where the session ends.
    async fn sync_cursor(
        &self,
        repo: &RepoName,
        id: &str,
        cursor: &mut Cursor,
        range: Option<ChunkRange>,
    ) -> Result<()> {
        let size = match self.stored_size(repo, id).await {
            Ok(size) => size,
            Err(e) => {
                // Cancelled or completed meanwhile: forget it.
                self.uploads.remove(id);
                return Err(e);
            }
        };
        if size != cursor.size || cursor.hasher.is_none() {
            // Another replica (or a crashed request) changed it: hash again when completing.
            cursor.size = size;
            cursor.hasher = if size == 0 { Some(Hasher::new(Algorithm::Sha256)) } else { None };
        }
        match range {
            Some(r) if r.start != size => Err(Error::UploadRange { start: r.start, end: r.end, size }),
            _ => Ok(()),
        }
    }

    /// Streams `body` into the session, hashing each chunk as it arrives and
    /// handing about `WRITE_BATCH` bytes at a time to the backend's writer,
    /// which writes them while the next batch is read and hashed.
    async fn write_chunk(&self, repo: &RepoName, id: &str, cursor: &mut Cursor, mut body: ByteStream) -> Result<u64> {
        let key = Path::UploadData(repo.as_str(), id).key();
        let mut writer = self.backend.append(&key, cursor.size).await?;
        let mut written = 0u64;
        let mut pending: Vec<Bytes> = Vec::new();
        let mut pending_len = 0usize;
        let mut failure = None;
        loop {
            let next = body.next().await;
            let end = match next {
                Some(Ok(chunk)) => {
                    if let Some(h) = cursor.hasher.as_mut() {
                        h.update(&chunk);
                    }
                    pending_len += chunk.len();
                    pending.push(chunk);
                    false
                }
                Some(Err(e)) => {
                    // Keep what arrived: the session can be resumed from its status.
                    failure = Some(e);
                    true
                }
                None => true,
            };
            if pending_len >= WRITE_BATCH || (end && pending_len > 0) {
                let n = pending_len as u64;
                pending_len = 0;
                if let Err(e) = writer.write(std::mem::take(&mut pending)).await {
                    cursor.hasher = None;
                    cursor.size = self.stored_size(repo, id).await.unwrap_or(cursor.size);
                    return Err(e.into());
                }
                cursor.size += n;
                written += n;
            }
            if end {
                break;
            }
        }
        if let Err(e) = writer.close().await {
            cursor.hasher = None;
            cursor.size = self.stored_size(repo, id).await.unwrap_or(cursor.size);
            return Err(e.into());
        }
        match failure {
            Some(e) => Err(Error::Body(e)),
            None => Ok(written),
        }
    }

    /// Appends the final chunk (if any), verifies the digest and commits the
    /// blob. Nothing is visible under the digest until it is verified.
    pub async fn upload_complete(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        range: Option<ChunkRange>,
        body: Option<ByteStream>,
    ) -> Result<()> {
        self.check_writable()?;
        let cursor_ref = self.cursor(repo, id).await?;
        let mut cursor = cursor_ref.lock().await;
        self.sync_cursor(repo, id, &mut cursor, range).await?;
        if let Some(body) = body {
            self.write_chunk(repo, id, &mut cursor, body).await?;
        }
        let data_key = Path::UploadData(repo.as_str(), id).key();
        let actual = match cursor.hasher.take() {
            Some(h) if h.algorithm() == digest.alg() => h.finish(),
            _ => self.hash_stored(&data_key, digest.alg()).await?,
        };
        if &actual != digest {
            self.discard_upload(repo, id).await;
            return Err(Error::DigestMismatch { expected: digest.clone(), actual });
        }
        let blob_key = Path::BlobData(digest).key();
        if !self.blob_intact(&blob_key, cursor.size).await? {
            // The rename is durable (storage::sync) before the link below
            // makes the blob visible in the repository.
            self.backend.rename(&data_key, &blob_key).await?;
        }
        self.write_link(&Path::LayerLink(repo.as_str(), digest).key(), digest).await?;
        self.discard_upload(repo, id).await;
        Ok(())
    }

    /// Whether `key` already holds a blob of `size` bytes. Content-addressed:
    /// then the verified upload is identical and is dropped. A blob of
    /// another size was damaged (say, truncated by a power loss before
    /// commits were flushed) and is replaced by the verified new copy.
    async fn blob_intact(&self, key: &str, size: u64) -> Result<bool> {
        match self.backend.stat(key).await {
            Ok(meta) if meta.size == size => Ok(true),
            Ok(meta) => {
                tracing::warn!(blob = key, stored = meta.size, pushed = size, "replacing a damaged blob");
                Ok(false)
            }
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn hash_stored(&self, key: &str, alg: Algorithm) -> Result<Digest> {
        let mut hasher = Hasher::new(alg);
        let mut stream = self.backend.read(key, 0, None).await?;
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk.map_err(|e| crate::storage::StorageError::io("read", key, e))?);
        }
        Ok(hasher.finish())
    }

    async fn discard_upload(&self, repo: &RepoName, id: &str) {
        self.uploads.remove(id);
        if let Err(e) = self.backend.delete(&Path::Upload(repo.as_str(), id).key()).await
            && !e.is_not_found()
        {
            tracing::warn!(error = %e, upload = id, "removing upload session");
        }
    }

    /// Cancels a session and deletes its data.
    pub async fn upload_cancel(&self, repo: &RepoName, id: &str) -> Result<()> {
        self.check_writable()?;
        self.stored_size(repo, id).await?;
        self.discard_upload(repo, id).await;
        Ok(())
    }

    /// Sessions this process is tracking (for the open-uploads gauge).
    pub fn open_uploads(&self) -> usize {
        self.uploads.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_ranges() {
        assert_eq!(ChunkRange::parse("0-99"), Some(ChunkRange { start: 0, end: 99 }));
        assert_eq!(ChunkRange::parse("bytes 100-199/1000"), Some(ChunkRange { start: 100, end: 199 }));
        assert_eq!(ChunkRange::parse("9-1"), None);
        assert_eq!(ChunkRange::parse("x-1"), None);
    }

    fn registry(dir: &std::path::Path) -> Registry {
        let backend = std::sync::Arc::new(crate::storage::fs::Filesystem::new(dir));
        Registry::new(backend, super::super::Options { upload_secret: b"k".to_vec(), ..Default::default() })
    }

    fn body(data: &'static [u8]) -> ByteStream {
        futures::stream::iter([Ok(Bytes::from_static(data))]).boxed()
    }

    #[tokio::test]
    async fn unknown_upload_ids_leave_no_state() {
        let dir = tempfile::tempdir().unwrap();
        let reg = registry(dir.path());
        let repo = RepoName::parse("r").unwrap();
        let d = Digest::sha256_of(b"x");
        for i in 0..100 {
            let id = format!("00000000-0000-0000-0000-{i:012}");
            let range = (i % 2 == 0).then_some(ChunkRange { start: 0, end: 0 });
            assert!(matches!(reg.upload_append(&repo, &id, range, body(b"x")).await, Err(Error::UploadUnknown)));
            assert!(matches!(reg.upload_complete(&repo, &id, &d, None, None).await, Err(Error::UploadUnknown)));
        }
        assert_eq!(reg.open_uploads(), 0, "state kept for ids that do not exist");
        // A real session is tracked until it ends, and forgotten when it
        // vanishes underneath (cancelled on another replica).
        let s = reg.upload_start(&repo).await.unwrap();
        assert_eq!(reg.open_uploads(), 1);
        reg.backend.delete(&Path::Upload("r", &s.id).key()).await.unwrap();
        assert!(matches!(reg.upload_append(&repo, &s.id, None, body(b"x")).await, Err(Error::UploadUnknown)));
        assert_eq!(reg.open_uploads(), 0);
        assert!(
            !dir.path()
                .join("docker/registry/v2/repositories/r/_uploads/00000000-0000-0000-0000-000000000000")
                .exists()
        );
    }

    #[test]
    fn upload_ids() {
        assert!(valid_upload_id("0b6a3d2e-6b1e-4d8e-9a4c-2f1f7d3b9e11"));
        for bad in ["", "..", "a/b", "a%2fb", &"a".repeat(65)] {
            assert!(!valid_upload_id(bad), "{bad}");
        }
    }
}
