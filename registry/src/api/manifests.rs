//! `GET`, `HEAD`, `PUT` and `DELETE /v2/<name>/manifests/<reference>`.

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};

use crate::registry::manifest::MAX_MANIFEST_BYTES;
use crate::registry::reference::{Reference, RepoName};

use super::Ctx;
use super::error::{ApiError, Code};
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
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Code::ManifestUnknown,
            format!("the manifest is {}, which the request's Accept header does not allow", m.media_type),
        ));
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

pub async fn put(ctx: &Ctx<'_>, name: &RepoName, reference: &Reference, body: Body) -> Result<Response, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::SizeInvalid,
            format!("manifest exceeds the {} MiB limit", MAX_MANIFEST_BYTES / (1024 * 1024)),
        )
    };
    if ctx.header(&header::CONTENT_LENGTH).and_then(|v| v.parse::<usize>().ok()).is_some_and(|n| n > MAX_MANIFEST_BYTES)
    {
        return Err(too_large());
    }
    let bytes = match Limited::new(body, MAX_MANIFEST_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::ManifestInvalid,
                format!("reading the manifest: {e}"),
            ));
        }
    };
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
