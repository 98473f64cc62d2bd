//! `GET`, `HEAD`, `PUT` and `DELETE /v2/<name>/manifests/<reference>`.

use axum::body::{Body, BodyDataStream};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use futures::StreamExt;

use crate::oci::manifest::MAX_MANIFEST_BYTES;
use crate::registry::reference::{Reference, RepoName};

use super::Ctx;
use super::error::ApiError;
use super::response::{Accepted, Content, Created, NotModified};

/// Whether the request's `Accept` headers allow `media_type`. No `Accept`
/// at all means anything goes.
fn accepts(ctx: &Ctx<'_>, media_type: &str) -> bool {
    let mut any = false;
    for value in ctx.headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mt = item.split(';').next().unwrap_or("").trim();
            if mt.is_empty() {
                continue;
            }
            any = true;
            if mt == media_type || mt == "*/*" {
                return true;
            }
        }
    }
    !any
}

pub async fn get(ctx: &Ctx<'_>, name: &RepoName, reference: &Reference, head: bool) -> Result<Response, ApiError> {
    let m = ctx.registry().manifest_get(name, reference).await?;
    if !accepts(ctx, &m.media_type) {
        return Err(ApiError::manifest_unknown(format!(
            "the manifest is {}, which the request's Accept header does not allow",
            m.media_type
        )));
    }
    if !head {
        // Batched in memory: retention's pull times cost no storage write here.
        ctx.registry().record_pull(name, reference, &m.digest);
    }
    let etag = format!("\"{}\"", m.digest);
    if ctx.header(&header::IF_NONE_MATCH).is_some_and(|v| v.split(',').any(|t| t.trim() == etag)) {
        return Ok(NotModified(m.digest).into_response());
    }
    let size = m.body.len() as u64;
    Ok(Content {
        digest: m.digest,
        media_type: m.media_type,
        size,
        range: None,
        body: (!head).then(|| Body::from(m.body)),
    }
    .into_response())
}

/// How much of an oversized manifest is read and thrown away before the
/// answer. A client that is still sending when the server answers and
/// closes gets a reset connection instead of the error; reading the rest
/// (up to this bound) lets it read the 413.
const DRAIN_LIMIT: u64 = 16 * MAX_MANIFEST_BYTES as u64;

fn too_large(size: Option<u64>) -> ApiError {
    let what = size.map_or_else(|| "manifest".to_string(), |n| format!("manifest of {n} bytes"));
    ApiError::payload_too_large(format!(
        "{what} exceeds the {} MiB limit ({MAX_MANIFEST_BYTES} bytes)",
        MAX_MANIFEST_BYTES / (1024 * 1024)
    ))
}

/// The answer to an oversized manifest once the body is dealt with: read to
/// its end within [`DRAIN_LIMIT`], or else the connection closes after it.
async fn refuse_oversized(mut body: BodyDataStream, mut read: u64, size: Option<u64>) -> ApiError {
    while read <= DRAIN_LIMIT {
        match body.next().await {
            Some(Ok(chunk)) => read += chunk.len() as u64,
            // The client stopped sending: it can still read the answer.
            Some(Err(_)) | None => return too_large(size),
        }
    }
    too_large(size).with_header(header::CONNECTION, HeaderValue::from_static("close"))
}

pub async fn put(ctx: &Ctx<'_>, name: &RepoName, reference: &Reference, body: Body) -> Result<Response, ApiError> {
    let declared = ctx.header(&header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > MAX_MANIFEST_BYTES as u64) {
        // A client waiting for `100 Continue` has sent nothing, and will not:
        // answer now. Past the drain bound, too.
        let waiting = ctx.header(&header::EXPECT).is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        if waiting || n > DRAIN_LIMIT {
            return Err(too_large(Some(n)).with_header(header::CONNECTION, HeaderValue::from_static("close")));
        }
        return Err(refuse_oversized(body.into_data_stream(), 0, Some(n)).await);
    }
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::manifest_invalid(format!("reading the manifest: {e}")))?;
        if buf.len() + chunk.len() > MAX_MANIFEST_BYTES {
            return Err(refuse_oversized(stream, (buf.len() + chunk.len()) as u64, declared).await);
        }
        buf.extend_from_slice(&chunk);
    }
    let bytes = buf.freeze();
    crate::metrics::bytes_received(bytes.len());
    let content_type = ctx.header(&header::CONTENT_TYPE);
    let put = ctx.registry().manifest_put(name, reference, content_type, bytes).await?;
    let location = ctx.url(&format!("/v2/{name}/manifests/{}", put.digest));
    Ok(Created { location, digest: put.digest, subject: put.subject }.into_response())
}

pub async fn delete(ctx: &Ctx<'_>, name: &RepoName, reference: &Reference) -> Result<Response, ApiError> {
    ctx.registry().manifest_delete(name, reference).await?;
    Ok(Accepted.into_response())
}
