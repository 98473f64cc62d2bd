//! Upload sessions. A session's bytes and state live in storage (see
//! `upload_session`), so a session started on one replica can be continued
//! on any other: the running hash is stored with it, and no replica reads
//! the bytes back to hash them.

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
use super::events::{Action, Happened};
use super::reference::RepoName;
use super::upload_session::{Appender, Session};
use super::{Error, Registry, Result};

/// Serialises this process's requests on one session: a client's chunks
/// come in order, but a retry may overlap the request it retries. Entries
/// live only while a request holds them, so made-up ids leave nothing.
#[derive(Default)]
pub(super) struct Locks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

/// A hold on one session's lock entry; the entry goes with the last holder.
pub(super) struct LockRef<'a> {
    locks: &'a Locks,
    id: String,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Locks {
    fn entry(&self, id: &str) -> LockRef<'_> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let lock = map.entry(id.to_string()).or_default().clone();
        LockRef { locks: self, id: id.to_string(), lock }
    }

    pub(super) fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for LockRef<'_> {
    fn drop(&mut self) {
        let mut map = self.locks.0.lock().unwrap_or_else(|p| p.into_inner());
        // Two holders left: the map and this one.
        if Arc::strong_count(&self.lock) == 2 {
            map.remove(&self.id);
        }
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
    #[tracing::instrument(skip_all, fields(repo = %repo))]
    pub async fn upload_start(&self, repo: &RepoName) -> Result<UploadStatus> {
        self.check_writable()?;
        let id = uuid::Uuid::new_v4().to_string();
        let now =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        // Session state is scratch: a power loss may lose it, and the client starts over.
        self.backend.put_scratch(&Path::UploadStartedAt(repo.as_str(), &id).key(), Bytes::from(now)).await?;
        let upload = self.backend.parts_start(&Path::UploadData(repo.as_str(), &id).key()).await?;
        Session::new(upload).save(self.backend.as_ref(), repo.as_str(), &id).await?;
        Ok(self.status(repo, &id, 0))
    }

    async fn session(&self, repo: &RepoName, id: &str) -> Result<Session> {
        if !valid_upload_id(id) {
            return Err(Error::UploadUnknown);
        }
        Session::load(self.backend.as_ref(), repo.as_str(), id).await
    }

    #[tracing::instrument(skip_all, fields(repo = %repo, upload = id))]
    pub async fn upload_status(&self, repo: &RepoName, id: &str) -> Result<UploadStatus> {
        let s = self.session(repo, id).await?;
        Ok(self.status(repo, id, s.size))
    }

    /// Appends a chunk. With `range`, the chunk must start where the session
    /// ends; without it (a streamed PATCH) it is simply appended.
    #[tracing::instrument(skip_all, fields(repo = %repo, upload = id, bytes = tracing::field::Empty))]
    pub async fn upload_append(
        &self,
        repo: &RepoName,
        id: &str,
        range: Option<ChunkRange>,
        body: ByteStream,
    ) -> Result<UploadStatus> {
        self.check_writable()?;
        // Made-up ids are refused before they get a lock entry.
        self.session(repo, id).await?;
        let entry = self.uploads.entry(id);
        let _held = entry.lock.lock().await;
        // Again under the lock: a request that held it may have moved it on.
        let mut s = self.session(repo, id).await?;
        if s.finished {
            return Err(Error::UploadInvalid("the upload is being completed; it takes no more chunks".into()));
        }
        if let Some(r) = range
            && r.start != s.size
        {
            return Err(Error::UploadRange { start: r.start, end: r.end, size: s.size });
        }
        let mut appender = Appender::new(&self.backend, repo.as_str(), id, &s);
        let (taken, broken) = appender.write(&mut s, body).await?;
        tracing::Span::current().record("bytes", taken);
        // What arrived is kept even if the body broke off: the client can
        // resume from the session's status.
        appender.finish(&mut s, false).await?;
        if let Some(e) = broken {
            return Err(Error::Body(e));
        }
        if let Some(r) = range
            && taken != r.end - r.start + 1
        {
            return Err(Error::UploadInvalid(format!(
                "Content-Range declared {} bytes but the body had {taken}",
                r.end - r.start + 1
            )));
        }
        Ok(self.status(repo, id, s.size))
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
        let size = self.commit_upload(repo, id, digest, range, body).await?;
        self.notify(Happened::blob(Action::Push, repo, digest, size)).await
    }

    /// `upload_complete` without the push event (the mirror's fills, which
    /// registry:2 does not announce either); returns the blob's size.
    // Named as the operation it was before the split: traces and debug logs say upload_complete.
    #[tracing::instrument(name = "upload_complete", skip_all, fields(repo = %repo, upload = id, digest = %digest, bytes = tracing::field::Empty))]
    pub(super) async fn commit_upload(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        range: Option<ChunkRange>,
        body: Option<ByteStream>,
    ) -> Result<u64> {
        self.check_writable()?;
        self.session(repo, id).await?;
        let entry = self.uploads.entry(id);
        let _held = entry.lock.lock().await;
        let mut s = self.session(repo, id).await?;
        let data_key = Path::UploadData(repo.as_str(), id).key();
        if !s.finished {
            if let Some(r) = range
                && r.start != s.size
            {
                return Err(Error::UploadRange { start: r.start, end: r.end, size: s.size });
            }
            let mut appender = Appender::new(&self.backend, repo.as_str(), id, &s);
            if let Some(body) = body {
                let (_, broken) = appender.write(&mut s, body).await?;
                if let Some(e) = broken {
                    appender.finish(&mut s, false).await?;
                    return Err(Error::Body(e));
                }
            }
            appender.finish(&mut s, true).await?;
            self.backend.parts_finish(&data_key, &s.upload, s.parts.clone()).await?;
            s.finished = true;
            s.save(self.backend.as_ref(), repo.as_str(), id).await?;
        }
        tracing::Span::current().record("bytes", s.size);
        let actual = match s.hash.as_deref().and_then(Hasher::restore) {
            Some(h) if h.algorithm() == digest.alg() => h.finish(),
            _ => self.hash_stored(&data_key, digest.alg()).await?,
        };
        if &actual != digest {
            self.discard_upload(repo, id).await;
            return Err(Error::DigestMismatch { expected: digest.clone(), actual });
        }
        let blob_key = Path::BlobData(digest).key();
        // A blob already stored is referenced again: pinned, so a
        // collection does not take it right after this push was told it is here.
        self.pin(&[digest]).await?;
        if !self.blob_intact(&blob_key, s.size).await? {
            // The commit is durable (storage::sync on a filesystem) before
            // the link below makes the blob visible in the repository.
            self.backend.commit(&data_key, &blob_key).await?;
        }
        self.write_link(&Path::LayerLink(repo.as_str(), digest).key(), digest).await?;
        self.discard_upload(repo, id).await;
        Ok(s.size)
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

    #[tracing::instrument(level = "debug", skip_all, fields(key = key))]
    async fn hash_stored(&self, key: &str, alg: Algorithm) -> Result<Digest> {
        let mut hasher = Hasher::new(alg);
        let mut stream = self.backend.read(key, 0, None).await?;
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk.map_err(|e| crate::storage::StorageError::io("read", key, e))?);
        }
        Ok(hasher.finish())
    }

    /// Drops a session: its unfinished parts, then everything under it.
    pub(super) async fn discard_upload(&self, repo: &RepoName, id: &str) {
        if let Ok(s) = Session::load(self.backend.as_ref(), repo.as_str(), id).await
            && !s.finished
            && let Err(e) = self.backend.parts_abort(&Path::UploadData(repo.as_str(), id).key(), &s.upload).await
        {
            tracing::warn!(error = %e, upload = id, "aborting the upload's parts");
        }
        if let Err(e) = self.backend.delete(&Path::Upload(repo.as_str(), id).key()).await
            && !e.is_not_found()
        {
            tracing::warn!(error = %e, upload = id, "removing upload session");
        }
    }

    /// Cancels a session and deletes its data.
    #[tracing::instrument(skip_all, fields(repo = %repo, upload = id))]
    pub async fn upload_cancel(&self, repo: &RepoName, id: &str) -> Result<()> {
        self.check_writable()?;
        self.session(repo, id).await?;
        self.discard_upload(repo, id).await;
        Ok(())
    }

    /// Sessions with a request in progress in this process (the open-uploads gauge).
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
        // A real session holds process state only while a request runs, and
        // is unknown once it vanishes underneath (cancelled on another replica).
        let s = reg.upload_start(&repo).await.unwrap();
        reg.upload_append(&repo, &s.id, None, body(b"x")).await.unwrap();
        assert_eq!(reg.open_uploads(), 0);
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
