//! The storage backend trait: keys and bytes, nothing about blobs or tags.
//!
//! A key is a `/`-separated relative path produced by [`super::paths`].
//! The contract fits object stores: objects and prefixes, no directories,
//! no appends across requests, no rename. Backends make `put` and `commit`
//! atomic: a reader sees the old object or the new one, never a partial
//! one. Large objects are written in parts whose ids live in storage, so
//! any replica can add the next part.

use std::io;
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

/// A stream of bytes read from (or written to) storage.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{key}: not found")]
    NotFound { key: String },
    #[error("{key}: not a valid storage key")]
    InvalidKey { key: String },
    #[error("{key}: offset {offset} is past the end ({size} bytes)")]
    InvalidOffset { key: String, offset: u64, size: u64 },
    #[error("{op} {key}")]
    Io {
        op: &'static str,
        key: String,
        #[source]
        source: io::Error,
    },
    #[error("{op} {key}: {message}")]
    Other { op: &'static str, key: String, message: String },
    /// The store cannot be reached or refuses us (credentials, a missing
    /// bucket): the request may succeed later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl StorageError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound { .. })
    }

    /// Wraps an I/O error, turning "not found" into [`StorageError::NotFound`].
    pub fn io(op: &'static str, key: &str, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::NotFound {
            StorageError::NotFound { key: key.to_string() }
        } else {
            StorageError::Io { op, key: key.to_string(), source }
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// What `stat` knows about an object.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub size: u64,
    pub modified: Option<SystemTime>,
}

/// How a backend takes an object written in parts (an upload session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartRule {
    /// Parts of any size, appended in place (a file): `put_part`'s offset
    /// is where the part goes.
    Append,
    /// Every part but the last has exactly this many bytes (S3 and its
    /// clones: at least 5 MiB, equal sizes for R2 and OSS).
    Fixed(u64),
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// A short name for logs and metrics (`filesystem`, `s3`).
    fn name(&self) -> &'static str;

    /// Reads a small object whole.
    async fn get(&self, key: &str) -> Result<Bytes>;

    /// Writes a small object atomically, replacing any old one. Durable
    /// when it returns (a commit).
    async fn put(&self, key: &str, data: Bytes) -> Result<()>;

    /// Like `put`, for scratch state a power loss may lose (an upload
    /// session's state): atomic, not flushed.
    async fn put_scratch(&self, key: &str, data: Bytes) -> Result<()> {
        self.put(key, data).await
    }

    /// Size and age of an object. A prefix that only holds other objects
    /// is not an object: `NotFound`.
    async fn stat(&self, key: &str) -> Result<Meta>;

    /// Streams `len` bytes (or to the end) starting at `offset`.
    async fn read(&self, key: &str, offset: u64, len: Option<u64>) -> Result<ByteStream>;

    /// The names one level below `prefix` (objects and deeper prefixes),
    /// sorted and complete however many pages the store returns. An empty
    /// or absent prefix is `NotFound`.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;

    /// Deletes an object, or every object under a prefix.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Deletes these objects (exact keys, never prefixes); those already
    /// gone count as deleted. Backends do it in fewer calls than one per
    /// key where they can (a drained notification queue is many objects).
    async fn delete_objects(&self, keys: &[String]) -> Result<()> {
        for key in keys {
            match self.delete(key).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Moves a finished object (a verified upload) to `to`, replacing it.
    /// Durable when it returns; `from` is gone afterwards.
    async fn commit(&self, from: &str, to: &str) -> Result<()>;

    /// How parts must be sized.
    fn part_rule(&self) -> PartRule;

    /// Starts an object written in parts; returns the store's id for it.
    async fn parts_start(&self, key: &str) -> Result<String>;

    /// Writes part `index` (from 0), which starts at byte `offset` of the
    /// object. Writing a part again (a retried request) replaces it and
    /// drops any part after it. Returns the tag that `parts_finish` needs.
    async fn put_part(&self, key: &str, upload: &str, index: usize, offset: u64, data: Vec<Bytes>) -> Result<String>;

    /// Makes the parts one object at `key`.
    async fn parts_finish(&self, key: &str, upload: &str, tags: Vec<String>) -> Result<()>;

    /// Drops an unfinished object and its parts.
    async fn parts_abort(&self, key: &str, upload: &str) -> Result<()>;

    /// A URL a client can GET `key` from directly for `ttl`, where the
    /// store has one (S3's presigned URLs).
    async fn presign_get(&self, _key: &str, _ttl: std::time::Duration) -> Result<Option<String>> {
        Ok(None)
    }

    /// Whether the store can be used at all (reachable, credentials
    /// accepted, bucket present): readiness, with the reason when not.
    async fn check(&self) -> Result<()>;
}

/// Refuses keys that could escape the storage root. Keys come from
/// `paths.rs`, so this is a second line of defence, not the first.
pub fn check_key(key: &str) -> Result<()> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..")
        || key.contains('\0')
        || key.contains('\\');
    if bad { Err(StorageError::InvalidKey { key: key.to_string() }) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape() {
        for bad in ["", "/etc/passwd", "a/../b", "a//b", "a/./b", "..", "a\\b"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_key("docker/registry/v2/blobs").is_ok());
    }
}
