//! The registry's operations: blobs, uploads, manifests, tags, the catalog
//! and referrers, expressed over storage keys from `storage::paths`.
//!
//! This layer knows the content rules (digests are verified before anything
//! becomes visible, manifests may only refer to content that exists) and the
//! commit order that keeps the layout consistent after a crash. It knows
//! nothing about HTTP; `crate::api` calls it, and it calls only
//! `crate::storage`.

pub mod blobs;
pub mod browse;
// The names are the leaf `oci` module's; re-exported where callers know them.
pub use crate::oci::{digest, reference};
pub mod catalog;
pub mod events;
pub mod gc;
mod ingest;
pub mod manifests;
pub mod pulls;
pub mod purge;
pub mod referrers;
pub mod retention;
pub mod search;
pub mod upload;
mod upload_session;

// Storage quotas (`storage.quotas`).
pub mod quota;
mod quota_walk;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::oci::manifest::{ManifestError, Parsed};
use crate::storage::paths::Path;
use crate::storage::{Backend, StorageError};
use digest::Digest;
use reference::RepoName;

/// What went wrong, in terms the API layer maps to the spec's error codes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("blob unknown to registry: {0}")]
    BlobUnknown(Digest),
    #[error("blob upload unknown to registry")]
    UploadUnknown,
    #[error("blob upload invalid: {0}")]
    UploadInvalid(String),
    #[error("the range {start}-{end} does not continue the upload, which holds {size} bytes")]
    UploadRange { start: u64, end: u64, size: u64 },
    #[error("provided digest did not match uploaded content: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("{0}")]
    SizeInvalid(String),
    #[error("manifest unknown: {0}")]
    ManifestUnknown(String),
    #[error(transparent)]
    ManifestInvalid(#[from] ManifestError),
    #[error("manifest refers to content this repository does not have: {0}")]
    ManifestBlobUnknown(Digest),
    #[error("repository name not known to registry: {0}")]
    NameUnknown(RepoName),
    #[error("{0}")]
    Unsupported(String),
    #[error("requested range is not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("reading the request body: {0}")]
    Body(std::io::Error),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("stored link {key} is corrupt: {content:?}")]
    CorruptLink { key: String, content: String },
    #[error("stored manifest {what} does not parse: {reason}")]
    CorruptManifest { what: String, reason: ManifestError },
    #[error(
        "quota {quota} exceeded: {} used + {} new > limit {}",
        quota::human_bytes(*used),
        quota::human_bytes(*new),
        quota::human_bytes(*limit)
    )]
    QuotaExceeded { quota: String, used: u64, new: u64, limit: u64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Settings that change the registry's behaviour.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `storage.quotas`.
    pub quotas: Vec<quota::QuotaRule>,
    pub delete_enabled: bool,
    pub read_only: bool,
    /// Key that signs upload-session state in Location URLs (`http.secret`).
    pub upload_secret: Vec<u8>,
    /// Blob GETs answer 307 to the store's presigned URL where it has one
    /// (`storage.redirect.disable` unset).
    pub redirect: bool,
    /// Remember manifest pulls for retention (`storage.retention` is set).
    pub record_pulls: bool,
    /// How old the search index may get before a search walks storage again
    /// (`search.refresh`; zero: the default).
    pub search_refresh: std::time::Duration,
}

pub struct Registry {
    backend: Arc<dyn Backend>,
    /// Usage of `storage.quotas` (`quota.rs`).
    quotas: quota::Quotas,
    options: Options,
    uploads: upload::Locks,
    /// Parsed manifests by digest; content is immutable so entries never go stale.
    parsed: Mutex<HashMap<Digest, Arc<Parsed>>>,
    /// Pulls not yet written to storage (`pulls.rs`).
    pulls: pulls::PullLog,
    /// Notification events (`events/`), when an endpoint is enabled.
    events: std::sync::OnceLock<events::Emitter>,
    /// Repositories and tags for search (`search.rs`).
    search: search::SearchIndex,
}

impl Registry {
    pub fn new(backend: Arc<dyn Backend>, options: Options) -> Self {
        let pulls = pulls::PullLog::new(options.record_pulls);
        let quotas = quota::Quotas::new(&options.quotas);
        let refresh = if options.search_refresh.is_zero() { search::DEFAULT_REFRESH } else { options.search_refresh };
        Registry {
            search: search::SearchIndex::new(refresh),
            backend,
            options,
            uploads: upload::Locks::default(),
            parsed: Mutex::new(HashMap::new()),
            pulls,
            quotas,
            events: std::sync::OnceLock::new(),
        }
    }

    /// Makes and queues notification events from now on (`notifications`
    /// in the config; set once, at start).
    pub fn set_events(&self, events: events::Emitter) {
        let _ = self.events.set(events);
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The storage driver's name (`filesystem`, `s3`), for logs and health.
    pub fn storage_name(&self) -> &'static str {
        self.backend.name()
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    fn check_writable(&self) -> Result<()> {
        if self.options.read_only {
            return Err(Error::Unsupported("the registry is in read-only mode (storage.maintenance.readonly)".into()));
        }
        Ok(())
    }

    fn check_delete(&self) -> Result<()> {
        self.check_writable()?;
        if !self.options.delete_enabled {
            return Err(Error::Unsupported("deletion is disabled; set storage.delete.enabled to true".into()));
        }
        Ok(())
    }

    /// Reads a link file (`<alg>:<hex>`); `None` when it does not exist.
    async fn read_link(&self, key: &str) -> Result<Option<Digest>> {
        match self.backend.get(key).await {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let d = text
                    .trim()
                    .parse()
                    .map_err(|_| Error::CorruptLink { key: key.to_string(), content: text.to_string() })?;
                Ok(Some(d))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn write_link(&self, key: &str, digest: &Digest) -> Result<()> {
        self.backend.put(key, Bytes::from(digest.to_string())).await?;
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        match self.backend.stat(key).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the repository holds anything at all (object stores have
    /// no directories: a repository exists while something is under it).
    pub async fn repository_exists(&self, repo: &RepoName) -> Result<bool> {
        match self.backend.list(&Path::Repository(repo.as_str()).key()).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks that storage answers; used by `/debug/health` and `/debug/ready`.
    pub async fn check_storage(&self) -> Result<()> {
        self.backend.check().await?;
        Ok(())
    }
}
