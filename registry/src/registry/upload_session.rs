//! An upload session's state and how a request's bytes become parts.
//!
//! Everything a replica needs to take the next chunk lives in storage
//! (`_uploads/<id>/state`): the store's id for the object being written in
//! parts, the tags of the parts written, the offsets of pending pieces (bytes
//! short of a whole part, each its own small object) and the SHA-256 state
//! over every byte received. A request changes the state last, so a request
//! that fails half-way leaves the session as it was: parts it wrote are
//! written again under the same numbers, pieces under the same offsets.
//!
//! On a backend that appends in place (the filesystem) there are no pending
//! pieces: bytes go straight into `data` at their offset.

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::storage::paths::Path;
use crate::storage::{Backend, ByteStream, PartRule, StorageError};

use super::digest::{Algorithm, Hasher};
use super::{Error, Result};

/// Writes to a backend that appends are handed over in batches of this size,
/// each written while the next one is received and hashed (each batch is one
/// open and one vectored write: larger batches mean fewer system calls).
const APPEND_BATCH: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Session {
    /// The store's id for `data` (an S3 multipart upload id).
    pub upload: String,
    /// Bytes received.
    pub size: u64,
    /// Tags of the whole parts written, in order.
    #[serde(default)]
    pub parts: Vec<String>,
    /// Start offsets of the pending pieces, in order; they run to `size`.
    #[serde(default)]
    pub pending: Vec<u64>,
    /// SHA-256 over the `size` bytes; absent if it could not be kept.
    #[serde(default)]
    pub hash: Option<String>,
    /// Set once `data` is one finished object (a retried PUT goes on from there).
    #[serde(default)]
    pub finished: bool,
}

impl Session {
    pub fn new(upload: String) -> Session {
        Session {
            upload,
            size: 0,
            parts: Vec::new(),
            pending: Vec::new(),
            hash: Hasher::new(Algorithm::Sha256).save(),
            finished: false,
        }
    }

    pub async fn load(backend: &dyn Backend, repo: &str, id: &str) -> Result<Session> {
        let key = Path::UploadState(repo, id).key();
        let raw = match backend.get(&key).await {
            Ok(raw) => raw,
            Err(e) if e.is_not_found() => return Err(Error::UploadUnknown),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&raw).map_err(|e| {
            Error::Storage(StorageError::Other {
                op: "read",
                key,
                message: format!("the upload session's state does not parse: {e}"),
            })
        })
    }

    /// Records the session. Scratch: a power loss may lose a session, and
    /// its client starts over.
    pub async fn save(&self, backend: &dyn Backend, repo: &str, id: &str) -> Result<()> {
        let raw = serde_json::to_vec(self).map_err(|e| Error::UploadInvalid(e.to_string()))?;
        backend.put_scratch(&Path::UploadState(repo, id).key(), Bytes::from(raw)).await?;
        Ok(())
    }
}

/// One request's writes into a session.
pub(super) struct Appender<'a> {
    backend: &'a std::sync::Arc<dyn Backend>,
    repo: &'a str,
    id: &'a str,
    data_key: String,
    rule: PartRule,
    hasher: Option<Hasher>,
    /// Bytes not yet in a part, starting at `carry_start`.
    carry: Vec<Bytes>,
    carry_len: u64,
    carry_start: u64,
    /// Bytes in the stored pending pieces when the request began.
    stored_pending: u64,
    /// Whether `carry` begins with the stored pending pieces (loaded once
    /// they are about to fill a part), or only with this request's bytes.
    pending_loaded: bool,
    /// The part (or append batch) being written while more bytes arrive.
    in_flight: Option<JoinHandle<Result<String, StorageError>>>,
    /// Pieces made obsolete by a part; deleted once the state no longer names them.
    obsolete: Vec<u64>,
}

impl<'a> Appender<'a> {
    pub fn new(backend: &'a std::sync::Arc<dyn Backend>, repo: &'a str, id: &'a str, s: &Session) -> Appender<'a> {
        Appender {
            backend,
            repo,
            id,
            data_key: Path::UploadData(repo, id).key(),
            rule: backend.part_rule(),
            hasher: s.hash.as_deref().and_then(Hasher::restore),
            carry: Vec::new(),
            carry_len: 0,
            carry_start: s.size,
            stored_pending: match backend.part_rule() {
                PartRule::Fixed(part) => s.size.saturating_sub(s.parts.len() as u64 * part),
                PartRule::Append => 0,
            },
            pending_loaded: false,
            in_flight: None,
            obsolete: Vec::new(),
        }
    }

    /// Streams `body` into the session. Returns the bytes taken and, when
    /// the body broke off, its error (what arrived before it is kept).
    pub async fn write(&mut self, s: &mut Session, mut body: ByteStream) -> Result<(u64, Option<std::io::Error>)> {
        let mut taken = 0u64;
        let mut broken = None;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            };
            if let Some(h) = self.hasher.as_mut() {
                h.update(&chunk);
            }
            taken += chunk.len() as u64;
            self.carry_len += chunk.len() as u64;
            self.carry.push(chunk);
            self.flush(s, false).await?;
        }
        s.size += taken;
        Ok((taken, broken))
    }

    /// Hands whole parts (or append batches) to the backend.
    async fn flush(&mut self, s: &mut Session, last: bool) -> Result<()> {
        match self.rule {
            PartRule::Append => {
                if self.carry_len >= APPEND_BATCH as u64 || (last && self.carry_len > 0) {
                    let offset = self.carry_start;
                    let n = self.carry_len;
                    let chunks = std::mem::take(&mut self.carry);
                    self.send(s, offset, chunks).await?;
                    self.carry_start += n;
                    self.carry_len = 0;
                }
            }
            PartRule::Fixed(part) => {
                if !self.pending_loaded && (self.stored_pending + self.carry_len >= part || last) {
                    self.load_pending(s).await?;
                }
                while self.carry_len >= part || (last && self.carry_len > 0) {
                    let take = self.carry_len.min(part);
                    let chunks = split_front(&mut self.carry, take as usize);
                    let offset = s.parts.len() as u64 * part;
                    self.carry_len -= take;
                    self.carry_start += take;
                    self.send(s, offset, chunks).await?;
                }
            }
        }
        Ok(())
    }

    /// Puts the stored pending pieces in front of this request's bytes.
    async fn load_pending(&mut self, s: &Session) -> Result<()> {
        let mut front = Vec::new();
        for &offset in &s.pending {
            front.push(self.backend.get(&Path::UploadPending(self.repo, self.id, offset).key()).await?);
        }
        let n: u64 = front.iter().map(|b| b.len() as u64).sum();
        front.append(&mut self.carry);
        self.carry = front;
        self.carry_len += n;
        self.carry_start -= n;
        self.obsolete.extend(s.pending.iter().copied());
        self.pending_loaded = true;
        Ok(())
    }

    /// Writes one part or batch, after the previous one has landed.
    async fn send(&mut self, s: &mut Session, offset: u64, chunks: Vec<Bytes>) -> Result<()> {
        self.land(s).await?;
        let (backend, key, upload) = (self.backend.clone(), self.data_key.clone(), s.upload.clone());
        let index = s.parts.len();
        // The write keeps the request's span, so its storage span nests under the upload.
        let write = async move { backend.put_part(&key, &upload, index, offset, chunks).await };
        self.in_flight = Some(tokio::spawn(tracing::Instrument::in_current_span(write)));
        if matches!(self.rule, PartRule::Fixed(_)) {
            // The index is taken now; the tag is filled in when it lands.
            s.parts.push(String::new());
        }
        Ok(())
    }

    /// Waits for the write in flight and records its tag.
    async fn land(&mut self, s: &mut Session) -> Result<()> {
        if let Some(task) = self.in_flight.take() {
            let tag = task.await.map_err(|e| {
                Error::Storage(StorageError::Other { op: "write", key: self.data_key.clone(), message: e.to_string() })
            })??;
            if let (PartRule::Fixed(_), Some(slot)) = (self.rule, s.parts.last_mut()) {
                *slot = tag;
            }
        }
        Ok(())
    }

    /// Ends the request: the last write lands, bytes short of a part are
    /// stored as a piece, and the state is recorded. With `last`, every
    /// byte goes into a (possibly short) final part instead.
    pub async fn finish(mut self, s: &mut Session, last: bool) -> Result<()> {
        // The rest goes out now: as the final part, or (appending in place)
        // as a last batch. Otherwise it stays as a pending piece below.
        if last || matches!(self.rule, PartRule::Append) {
            self.flush(s, true).await?;
        }
        self.land(s).await?;
        if let PartRule::Fixed(_) = self.rule {
            if self.pending_loaded {
                s.pending.clear();
            }
            if !last && self.carry_len > 0 {
                let piece = Bytes::from(self.carry.concat());
                let offset = self.carry_start;
                self.backend.put_scratch(&Path::UploadPending(self.repo, self.id, offset).key(), piece).await?;
                s.pending.push(offset);
            }
        }
        s.hash = self.hasher.as_ref().and_then(Hasher::save);
        s.save(self.backend.as_ref(), self.repo, self.id).await?;
        for offset in self.obsolete {
            let _ = self.backend.delete(&Path::UploadPending(self.repo, self.id, offset).key()).await;
        }
        Ok(())
    }
}

/// Takes the first `n` bytes off `chunks`, splitting one chunk if needed.
fn split_front(chunks: &mut Vec<Bytes>, n: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut need = n;
    let mut i = 0;
    while need > 0 && i < chunks.len() {
        let len = chunks[i].len();
        if len <= need {
            need -= len;
            i += 1;
        } else {
            let head = chunks[i].split_to(need);
            out.extend(chunks.drain(..i));
            out.push(head);
            return out;
        }
    }
    out.extend(chunks.drain(..i));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_front_takes_exactly_n() {
        let mut v = vec![Bytes::from_static(b"abc"), Bytes::from_static(b"defg"), Bytes::from_static(b"h")];
        assert_eq!(split_front(&mut v, 5).concat(), b"abcde");
        assert_eq!(v.concat(), b"fgh");
        assert_eq!(split_front(&mut v, 2).concat(), b"fg");
        assert_eq!(split_front(&mut v, 1).concat(), b"h");
        assert!(v.is_empty());
    }
}
