//! The distribution spec's error codes, and the one place that pairs a code
//! with a status: every failure the API answers is built by one of the
//! named constructors below (the translations of internal errors, in
//! [`from`], use them too). Nothing outside this module writes a `Code`.

mod from;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::registry::digest::Digest;

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
    /// distribution's code for a page size out of range (wharf's search).
    PaginationNumberInvalid,
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
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    /// Private: a code is chosen only by the constructors of this module.
    fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), detail: None, headers: Vec::new() }
    }

    /// The `{"digest": …}` detail that names the blob an error is about.
    fn with_digest(mut self, digest: &Digest) -> Self {
        self.detail = Some(serde_json::json!({ "digest": digest.to_string() }));
        self
    }

    /// Adds a response header; a header never changes the code or status.
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    // Blobs and uploads.

    /// 404 `BLOB_UNKNOWN`, naming the digest in the detail.
    pub fn blob_unknown(message: impl Into<String>, digest: &Digest) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, Code::BlobUnknown, message).with_digest(digest)
    }

    /// 404 `BLOB_UPLOAD_UNKNOWN`: no such upload session.
    pub fn upload_unknown(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, Code::BlobUploadUnknown, message)
    }

    /// 400 `BLOB_UPLOAD_INVALID`: the session or its body cannot continue.
    pub fn upload_invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, Code::BlobUploadInvalid, message)
    }

    /// 416 `BLOB_UPLOAD_INVALID` with `Range: 0-<size-1>`: a chunk that
    /// does not continue an upload of `size` bytes; the header says where to resume.
    pub fn upload_range_invalid(message: impl Into<String>, size: u64) -> Self {
        let err = ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, Code::BlobUploadInvalid, message);
        match HeaderValue::from_str(&format!("0-{}", size.saturating_sub(1))) {
            Ok(v) => err.with_header(header::RANGE, v),
            Err(_) => err,
        }
    }

    /// 416 `BLOB_UPLOAD_INVALID`: a chunk's `Content-Range` is malformed or
    /// disagrees with its length.
    pub fn content_range_invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, Code::BlobUploadInvalid, message)
    }

    /// 400 `DIGEST_INVALID`.
    pub fn digest_invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, Code::DigestInvalid, message)
    }

    /// 400 `SIZE_INVALID`.
    pub fn size_invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, Code::SizeInvalid, message)
    }

    /// 413 `SIZE_INVALID`: the body is over a limit.
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, Code::SizeInvalid, message)
    }

    /// 416 `SIZE_INVALID` with `Content-Range: bytes */<size>`: a `Range`
    /// outside a blob of `size` bytes.
    pub fn range_not_satisfiable(message: impl Into<String>, size: u64) -> Self {
        let err = ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, Code::SizeInvalid, message);
        match HeaderValue::from_str(&format!("bytes */{size}")) {
            Ok(v) => err.with_header(header::CONTENT_RANGE, v),
            Err(_) => err,
        }
    }

    // Manifests and names.

    /// 404 `MANIFEST_UNKNOWN`.
    pub fn manifest_unknown(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, Code::ManifestUnknown, message)
    }

    /// 400 `MANIFEST_INVALID`.
    pub fn manifest_invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, Code::ManifestInvalid, message)
    }

    /// 400 `MANIFEST_BLOB_UNKNOWN`, naming the missing blob in the detail.
    pub fn manifest_blob_unknown(message: impl Into<String>, digest: &Digest) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, Code::ManifestBlobUnknown, message).with_digest(digest)
    }

    /// 400 `NAME_INVALID`.
    pub fn name_invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, Code::NameInvalid, message)
    }

    /// 404 `NAME_UNKNOWN`.
    pub fn name_unknown(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, Code::NameUnknown, message)
    }

    // Requests the registry does not serve.

    /// 404 `UNSUPPORTED`: no endpoint of the API at this path.
    pub fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, Code::Unsupported, "no such endpoint in the registry API")
    }

    /// 405 `UNSUPPORTED`: the endpoint exists, the method does not.
    pub fn method_not_allowed() -> Self {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, Code::Unsupported, "method not allowed on this endpoint")
    }

    /// 405 `UNSUPPORTED`: an operation this registry (or this repository) refuses, and why.
    pub fn unsupported(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, Code::Unsupported, message)
    }

    /// 400 `UNSUPPORTED`: a query or form parameter that cannot be used.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, Code::Unsupported, message)
    }

    /// 400 `PAGINATION_NUMBER_INVALID`: a page size `n` out of range.
    pub fn pagination_number_invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, Code::PaginationNumberInvalid, message)
    }

    // Access.

    /// 401 `UNAUTHORIZED`, with the `WWW-Authenticate` challenge when there is one.
    pub fn unauthorized(message: impl Into<String>, challenge: Option<HeaderValue>) -> Self {
        let err = ApiError::new(StatusCode::UNAUTHORIZED, Code::Unauthorized, message);
        match challenge {
            Some(v) => err.with_header(header::WWW_AUTHENTICATE, v),
            None => err,
        }
    }

    /// 401 `UNAUTHORIZED` with a `Basic` challenge for `realm`: clients
    /// answer it with the user's credentials (a pass-through mirror's upstream ones).
    pub fn basic_challenge(message: impl Into<String>, realm: &str) -> Self {
        let challenge = HeaderValue::from_str(&format!("Basic realm=\"{}\"", realm.replace(['"', '\\'], "")))
            .unwrap_or_else(|_| HeaderValue::from_static("Basic realm=\"wharf\""));
        ApiError::unauthorized(message, Some(challenge))
    }

    /// 403 `DENIED`.
    pub fn denied(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, Code::Denied, message)
    }

    /// 403 `DENIED`: a push over a storage quota; the detail has the exact bytes.
    pub fn quota_exceeded(message: impl Into<String>, quota: &str, used: u64, new: u64, limit: u64) -> Self {
        let mut err = ApiError::denied(message);
        err.detail = Some(serde_json::json!({
            "quota": quota, "usedBytes": used, "newBytes": new, "limitBytes": limit,
        }));
        err
    }

    /// 429 `TOOMANYREQUESTS`, with `Retry-After` in seconds when known.
    pub fn too_many_requests(message: impl Into<String>, retry_after: Option<u64>) -> Self {
        let err = ApiError::new(StatusCode::TOO_MANY_REQUESTS, Code::Toomanyrequests, message);
        match retry_after {
            Some(secs) => err.with_header(header::RETRY_AFTER, HeaderValue::from(secs)),
            None => err,
        }
    }

    // Failures of the registry or of what it depends on. The spec has no
    // code for these, so they are `UNKNOWN` (or distribution's
    // `UNAVAILABLE`), and the status and message say what happened.

    /// 503 `UNAVAILABLE` with `Retry-After: 5`: the store is down or refuses
    /// us; the request may work later, and nothing half-written became visible.
    pub fn storage_unavailable() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Unavailable,
            "storage is unavailable; retry later (nothing was stored by this request)",
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
    }

    /// 500 `UNKNOWN`: the message is all the client learns (the cause is logged).
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, Code::Unknown, message)
    }

    /// 502 `UNKNOWN`: a mirror's upstream failed, was unreachable or sent
    /// bad content; the message names the upstream and the cause.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_GATEWAY, Code::Unknown, message)
    }

    /// 503 `UNKNOWN`: a mirror's upstream could not confirm the client's
    /// access, so cached content is withheld; asking again may work.
    pub fn upstream_unavailable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, Code::Unknown, message)
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
