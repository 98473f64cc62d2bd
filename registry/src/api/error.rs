//! The distribution spec's error codes, and the one place that chooses a
//! code and status for each failure.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::registry::Error as RegistryError;
use crate::registry::reference::ReferenceError;
use crate::storage::StorageError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    Toomanyrequests,
    /// 503, as distribution's `UNAVAILABLE`: the store is down.
    Unavailable,
    Unknown,
}

/// An error as sent on the wire: `{"errors":[{"code","message","detail"}]}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
    pub detail: Option<serde_json::Value>,
    /// Extra response headers (`Range` on 416, challenges on 401).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), detail: None, headers: Vec::new() }
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn name_invalid(e: ReferenceError) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, Code::NameInvalid, e.to_string())
    }

    pub fn digest_invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, Code::DigestInvalid, message)
    }

    pub fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, Code::Unsupported, "no such endpoint in the registry API")
    }

    pub fn method_not_allowed() -> Self {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, Code::Unsupported, "method not allowed on this endpoint")
    }
}

#[derive(Serialize)]
struct Body<'a> {
    errors: [Entry<'a>; 1],
}

#[derive(Serialize)]
struct Entry<'a> {
    code: Code,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a serde_json::Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&Body {
            errors: [Entry { code: self.code, message: &self.message, detail: self.detail.as_ref() }],
        })
        .unwrap_or_default();
        let mut resp = (self.status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        for (k, v) in self.headers {
            resp.headers_mut().append(k, v);
        }
        resp
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        use RegistryError as E;
        let msg = e.to_string();
        match e {
            E::BlobUnknown(d) => ApiError::new(StatusCode::NOT_FOUND, Code::BlobUnknown, msg)
                .with_detail(serde_json::json!({ "digest": d.to_string() })),
            E::UploadUnknown => ApiError::new(StatusCode::NOT_FOUND, Code::BlobUploadUnknown, msg),
            E::UploadInvalid(_) => ApiError::new(StatusCode::BAD_REQUEST, Code::BlobUploadInvalid, msg),
            E::UploadRange { size, .. } => {
                let range = format!("0-{}", size.saturating_sub(1));
                let mut err = ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, Code::BlobUploadInvalid, msg);
                if let Ok(v) = HeaderValue::from_str(&range) {
                    err = err.with_header(header::RANGE, v);
                }
                err
            }
            E::DigestMismatch { .. } => ApiError::new(StatusCode::BAD_REQUEST, Code::DigestInvalid, msg),
            E::SizeInvalid(_) => ApiError::new(StatusCode::BAD_REQUEST, Code::SizeInvalid, msg),
            E::ManifestUnknown(_) => ApiError::new(StatusCode::NOT_FOUND, Code::ManifestUnknown, msg),
            E::ManifestInvalid(_) => ApiError::new(StatusCode::BAD_REQUEST, Code::ManifestInvalid, msg),
            E::ManifestBlobUnknown(d) => ApiError::new(StatusCode::BAD_REQUEST, Code::ManifestBlobUnknown, msg)
                .with_detail(serde_json::json!({ "digest": d.to_string() })),
            E::NameUnknown(_) => ApiError::new(StatusCode::NOT_FOUND, Code::NameUnknown, msg),
            E::Unsupported(_) => ApiError::new(StatusCode::METHOD_NOT_ALLOWED, Code::Unsupported, msg),
            E::RangeNotSatisfiable { size } => {
                let mut err = ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, Code::SizeInvalid, msg);
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    err = err.with_header(header::CONTENT_RANGE, v);
                }
                err
            }
            // The client went away or sent a truncated body; nothing was committed.
            E::Body(_) => ApiError::new(StatusCode::BAD_REQUEST, Code::BlobUploadInvalid, msg),
            // The store is down or refuses us: the request may work later,
            // and nothing half-written became visible.
            E::Storage(StorageError::Unavailable(ref why)) => {
                tracing::error!(error = %why, "storage unavailable");
                crate::metrics::storage_error();
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Code::Unavailable,
                    "storage is unavailable; retry later (nothing was stored by this request)",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
            }
            E::Storage(ref inner) => {
                tracing::error!(error = %inner, source = ?std::error::Error::source(inner), "storage failure");
                crate::metrics::storage_error();
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, Code::Unknown, "internal storage error")
            }
            E::CorruptLink { .. } | E::CorruptManifest { .. } => {
                tracing::error!(error = %msg, "corrupt data in storage");
                crate::metrics::storage_error();
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, Code::Unknown, "internal storage error")
            }
        }
    }
}
