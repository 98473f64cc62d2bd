//! The storage backend trait: keys and bytes, nothing about blobs or tags.
//!
//! A key is a `/`-separated relative path produced by [`super::paths`].
//! Backends must make `put` and `rename` atomic: a reader sees the old
//! object or the new one, never a partial one. The registry relies on that
//! for crash safety.

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

/// A writer that appends to one object. Nothing is guaranteed visible until
/// `close` returns.
#[async_trait]
pub trait Writer: Send {
    /// Appends `chunks` in order (one vectored write where the backend can).
    async fn write(&mut self, chunks: Vec<Bytes>) -> Result<()>;
    /// Flushes and returns the object's total size.
    async fn close(self: Box<Self>) -> Result<u64>;
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
    /// session's start time): atomic, not flushed.
    async fn put_scratch(&self, key: &str, data: Bytes) -> Result<()> {
        self.put(key, data).await
    }

    async fn stat(&self, key: &str) -> Result<Meta>;

    /// Streams `len` bytes (or to the end) starting at `offset`.
    async fn read(&self, key: &str, offset: u64, len: Option<u64>) -> Result<ByteStream>;

    /// The names of the direct children of a directory-like prefix, sorted.
    async fn list(&self, key: &str) -> Result<Vec<String>>;

    /// Deletes an object or everything under a prefix.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Moves an object atomically, replacing the destination.
    async fn rename(&self, from: &str, to: &str) -> Result<()>;

    /// Opens a writer that appends to `key`, which must currently hold
    /// exactly `offset` bytes (0 creates it).
    async fn append(&self, key: &str, offset: u64) -> Result<Box<dyn Writer>>;
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
