//! How each internal error becomes a spec error: the registry's, a
//! refused login, a bad name or digest in the path, and a mirror's upstream.

use axum::http::HeaderValue;

use crate::auth::Denial;
use crate::mirror::Error as MirrorError;
use crate::mirror::upstream::Missing;
use crate::registry::Error as RegistryError;
use crate::registry::digest::DigestError;
use crate::registry::reference::ReferenceError;
use crate::storage::StorageError;

use super::ApiError;

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        use RegistryError as E;
        let msg = e.to_string();
        match e {
            E::BlobUnknown(d) => ApiError::blob_unknown(msg, &d),
            E::UploadUnknown => ApiError::upload_unknown(msg),
            E::UploadInvalid(_) => ApiError::upload_invalid(msg),
            E::UploadRange { size, .. } => ApiError::upload_range_invalid(msg, size),
            E::DigestMismatch { .. } => ApiError::digest_invalid(msg),
            E::SizeInvalid(_) => ApiError::size_invalid(msg),
            E::ManifestUnknown(_) => ApiError::manifest_unknown(msg),
            E::ManifestInvalid(_) => ApiError::manifest_invalid(msg),
            E::ManifestBlobUnknown(d) => ApiError::manifest_blob_unknown(msg, &d),
            E::NameUnknown(_) => ApiError::name_unknown(msg),
            E::Unsupported(_) => ApiError::unsupported(msg),
            E::QuotaExceeded { ref quota, used, new, limit } => ApiError::quota_exceeded(msg, quota, used, new, limit),
            E::RangeNotSatisfiable { size } => ApiError::range_not_satisfiable(msg, size),
            // The client went away or sent a truncated body; nothing was committed.
            E::Body(_) => ApiError::upload_invalid(msg),
            E::Storage(StorageError::Unavailable(ref why)) => {
                tracing::error!(error = %why, "storage unavailable");
                crate::metrics::storage_error();
                ApiError::storage_unavailable()
            }
            E::Storage(ref inner) => {
                tracing::error!(error = %inner, source = ?std::error::Error::source(inner), "storage failure");
                crate::metrics::storage_error();
                ApiError::internal("internal storage error")
            }
            E::CorruptLink { .. } | E::CorruptManifest { .. } => {
                tracing::error!(error = %msg, "corrupt data in storage");
                crate::metrics::storage_error();
                ApiError::internal("internal storage error")
            }
        }
    }
}

/// A repository name or a manifest reference in the path that does not
/// parse. A bad tag is `MANIFEST_INVALID`: the spec has no tag code.
impl From<ReferenceError> for ApiError {
    fn from(e: ReferenceError) -> Self {
        match e {
            ReferenceError::Name(_) | ReferenceError::NameTooLong => ApiError::name_invalid(e.to_string()),
            ReferenceError::Digest(d) => ApiError::from(d),
            ReferenceError::Tag(_) => ApiError::manifest_invalid(e.to_string()),
        }
    }
}

impl From<DigestError> for ApiError {
    fn from(e: DigestError) -> Self {
        ApiError::digest_invalid(e.to_string())
    }
}

impl From<Denial> for ApiError {
    fn from(d: Denial) -> Self {
        match d {
            Denial::Unauthorized { challenge, message } => {
                ApiError::unauthorized(message, HeaderValue::from_str(&challenge).ok())
            }
            Denial::TooManyRequests { retry_after } => {
                let secs = retry_after.as_secs().max(1);
                ApiError::too_many_requests(format!("too many failed logins; retry in {secs}s"), Some(secs))
            }
        }
    }
}

impl ApiError {
    /// A mirror's failure. In pass-through mode a refusal upstream asks the
    /// client for its own credentials (401); otherwise the mirror's
    /// configured credentials were refused, which the client cannot fix (403).
    pub fn from_mirror(e: &MirrorError, passthrough: bool) -> Self {
        let msg = e.to_string();
        match e {
            MirrorError::NotFound { missing: Missing::Blob(d), .. } => ApiError::blob_unknown(msg, d),
            MirrorError::NotFound { .. } => ApiError::manifest_unknown(msg),
            MirrorError::Unauthorized { upstream, .. } if passthrough => ApiError::basic_challenge(msg, upstream),
            MirrorError::Unauthorized { .. } => ApiError::denied(msg),
            MirrorError::TooManyRequests { retry_after, .. } => ApiError::too_many_requests(msg, *retry_after),
            // "upstream <name> is unreachable: <cause>": the spec has no code
            // for a failed upstream, so 502 says it and the message says why.
            MirrorError::Unreachable { .. }
            | MirrorError::Upstream { .. }
            | MirrorError::Refused { .. }
            | MirrorError::DigestMismatch { .. } => ApiError::bad_gateway(msg),
            MirrorError::Unconfirmed { .. } => ApiError::upstream_unavailable(msg),
            MirrorError::StoreUnavailable(_) => {
                tracing::warn!(error = %msg, "the cache's storage is unavailable");
                ApiError::storage_unavailable()
            }
            MirrorError::Store(_) => {
                tracing::error!(error = %msg, "storing cached content failed");
                crate::metrics::storage_error();
                ApiError::internal("internal storage error")
            }
        }
    }
}
