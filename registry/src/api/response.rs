//! Typed responses. Each owns the headers of its shape (`Location`,
//! `Range`, `Docker-Content-Digest`, ...), so handlers cannot forget one.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::registry::blobs::BlobRead;
use crate::registry::digest::Digest;

pub const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
pub const DOCKER_UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
pub const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
pub const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn base(status: StatusCode) -> (StatusCode, HeaderMap) {
    (status, HeaderMap::new())
}

fn finish(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// The inclusive `Range` an upload session reports: `0-<last byte>`.
fn upload_range(size: u64) -> HeaderValue {
    hv(&format!("0-{}", size.saturating_sub(1)))
}

/// 202 or 204 describing an open upload session.
pub struct UploadSession {
    pub status: StatusCode,
    pub location: String,
    pub id: String,
    pub size: u64,
}

impl IntoResponse for UploadSession {
    fn into_response(self) -> Response {
        let (status, mut h) = base(self.status);
        h.insert(header::LOCATION, hv(&self.location));
        h.insert(header::RANGE, upload_range(self.size));
        h.insert(DOCKER_UPLOAD_UUID, hv(&self.id));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        finish(status, h, Body::empty())
    }
}

/// 201: content now exists at `location`.
pub struct Created {
    pub location: String,
    pub digest: Digest,
    pub subject: Option<Digest>,
}

impl IntoResponse for Created {
    fn into_response(self) -> Response {
        let (status, mut h) = base(StatusCode::CREATED);
        h.insert(header::LOCATION, hv(&self.location));
        h.insert(DOCKER_CONTENT_DIGEST, hv(&self.digest.to_string()));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        if let Some(s) = self.subject {
            h.insert(OCI_SUBJECT, hv(&s.to_string()));
        }
        finish(status, h, Body::empty())
    }
}

/// 202 with no body (deletes).
pub struct Accepted;

impl IntoResponse for Accepted {
    fn into_response(self) -> Response {
        let (status, mut h) = base(StatusCode::ACCEPTED);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        finish(status, h, Body::empty())
    }
}

/// 204 with no body.
pub struct NoContent;

impl IntoResponse for NoContent {
    fn into_response(self) -> Response {
        finish(StatusCode::NO_CONTENT, HeaderMap::new(), Body::empty())
    }
}

/// Content addressed by digest: a blob or a manifest, whole or a range,
/// with or without a body (HEAD).
pub struct Content {
    pub digest: Digest,
    pub media_type: String,
    /// Total size of the content.
    pub size: u64,
    pub range: Option<(u64, u64)>,
    pub body: Option<Body>,
}

impl Content {
    pub fn blob(digest: Digest, read: BlobRead, head: bool) -> Self {
        Content {
            digest,
            media_type: "application/octet-stream".into(),
            size: read.size,
            range: read.range,
            body: (!head).then(|| Body::from_stream(read.body)),
        }
    }
}

impl IntoResponse for Content {
    fn into_response(self) -> Response {
        let status = if self.range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
        let (status, mut h) = base(status);
        let len = match self.range {
            Some((s, e)) => {
                h.insert(header::CONTENT_RANGE, hv(&format!("bytes {s}-{e}/{}", self.size)));
                e - s + 1
            }
            None => self.size,
        };
        h.insert(header::CONTENT_LENGTH, hv(&len.to_string()));
        h.insert(header::CONTENT_TYPE, hv(&self.media_type));
        h.insert(DOCKER_CONTENT_DIGEST, hv(&self.digest.to_string()));
        h.insert(header::ETAG, hv(&format!("\"{}\"", self.digest)));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=31536000"));
        finish(status, h, self.body.unwrap_or_else(Body::empty))
    }
}

/// 304 for a matching `If-None-Match`.
pub struct NotModified(pub Digest);

impl IntoResponse for NotModified {
    fn into_response(self) -> Response {
        let (status, mut h) = base(StatusCode::NOT_MODIFIED);
        h.insert(DOCKER_CONTENT_DIGEST, hv(&self.0.to_string()));
        h.insert(header::ETAG, hv(&format!("\"{}\"", self.0)));
        finish(status, h, Body::empty())
    }
}

/// 307 to where the store serves a blob itself (a presigned URL).
pub struct Redirect {
    pub location: String,
    pub digest: Digest,
}

impl IntoResponse for Redirect {
    fn into_response(self) -> Response {
        let (status, mut h) = base(StatusCode::TEMPORARY_REDIRECT);
        h.insert(DOCKER_CONTENT_DIGEST, hv(&self.digest.to_string()));
        h.insert(header::LOCATION, hv(&self.location));
        finish(status, h, Body::empty())
    }
}

/// A JSON document, optionally with a `Link` to the next page.
pub struct JsonPage<T> {
    pub value: T,
    pub content_type: &'static str,
    pub next: Option<String>,
    pub extra: Vec<(HeaderName, HeaderValue)>,
}

impl<T: Serialize> JsonPage<T> {
    pub fn new(value: T) -> Self {
        JsonPage { value, content_type: "application/json", next: None, extra: Vec::new() }
    }
}

impl<T: Serialize> IntoResponse for JsonPage<T> {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.value).unwrap_or_default();
        let (status, mut h) = base(StatusCode::OK);
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        h.insert(header::CONTENT_LENGTH, hv(&body.len().to_string()));
        if let Some(next) = self.next {
            h.insert(header::LINK, hv(&format!("<{next}>; rel=\"next\"")));
        }
        for (k, v) in self.extra {
            h.insert(k, v);
        }
        finish(status, h, Body::from(body))
    }
}
