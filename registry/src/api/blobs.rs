//! `GET`, `HEAD` and `DELETE /v2/<name>/blobs/<digest>`.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::registry::blobs::ByteRange;
use crate::registry::digest::Digest;
use crate::registry::reference::RepoName;

use super::Ctx;
use super::error::ApiError;
use super::response::{Accepted, Content, NotModified};

pub async fn get(ctx: &Ctx<'_>, name: &RepoName, digest: Digest, head: bool) -> Result<Response, ApiError> {
    let etag = format!("\"{digest}\"");
    if ctx.header(&header::IF_NONE_MATCH).is_some_and(|v| v.split(',').any(|t| t.trim() == etag)) {
        ctx.registry().blob_size(name, &digest).await?;
        return Ok(NotModified(digest).into_response());
    }
    // An unparseable Range header is ignored, as HTTP requires.
    let range = if head { None } else { ctx.header(&header::RANGE).and_then(ByteRange::parse) };
    if head {
        let size = ctx.registry().blob_head(name, &digest).await?;
        return Ok(Content { digest, media_type: "application/octet-stream".into(), size, range: None, body: None }
            .into_response());
    }
    // As registry:2: GET (never HEAD) is redirected to the store when it can
    // serve the bytes itself.
    if let Some(url) = ctx.registry().blob_redirect(name, &digest).await? {
        return Ok(super::response::Redirect { location: url, digest }.into_response());
    }
    let read = ctx.registry().blob_read(name, &digest, range).await?;
    Ok(Content::blob(digest, read, false).into_response())
}

pub async fn delete(ctx: &Ctx<'_>, name: &RepoName, digest: &Digest) -> Result<Response, ApiError> {
    ctx.registry().blob_delete(name, digest).await?;
    Ok(Accepted.into_response())
}
