//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (new session, monolithic
//! or cross-repository mount) and `GET`/`PATCH`/`PUT`/`DELETE` on a session.

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::scope::Access;
use crate::registry::Error as RegistryError;
use crate::registry::digest::Digest;
use crate::registry::reference::RepoName;
use crate::registry::upload::{ChunkRange, UploadStatus, valid_upload_id};

use super::error::ApiError;
use super::response::{Created, NoContent, UploadSession};
use super::{Ctx, body_stream};

fn session(ctx: &Ctx<'_>, name: &RepoName, status: StatusCode, s: UploadStatus) -> Response {
    let location = ctx.url(&format!("/v2/{name}/blobs/uploads/{}?_state={}", s.id, s.state));
    UploadSession { status, location, id: s.id, size: s.size }.into_response()
}

fn created(ctx: &Ctx<'_>, name: &RepoName, digest: Digest) -> Response {
    Created { location: ctx.url(&format!("/v2/{name}/blobs/{digest}")), digest, subject: None }.into_response()
}

fn digest_param(ctx: &Ctx<'_>) -> Result<Option<Digest>, ApiError> {
    match ctx.query("digest") {
        None => Ok(None),
        Some(d) => Ok(Some(d.parse::<Digest>()?)),
    }
}

/// A `Content-Range` that is present but malformed is a client error.
fn chunk_range(ctx: &Ctx<'_>) -> Result<Option<ChunkRange>, ApiError> {
    match ctx.header(&header::CONTENT_RANGE) {
        None => Ok(None),
        Some(h) => ChunkRange::parse(h)
            .map(Some)
            .ok_or_else(|| ApiError::content_range_invalid(format!("malformed Content-Range `{h}`"))),
    }
}

fn content_length(ctx: &Ctx<'_>) -> Option<u64> {
    ctx.header(&header::CONTENT_LENGTH).and_then(|v| v.parse().ok())
}

/// Checks the `_state` parameter, which is required (as in registry:2): a
/// session is continued only at the Location URL the registry handed out.
fn check_state(ctx: &Ctx<'_>, name: &RepoName, id: &str) -> Result<(), ApiError> {
    if !valid_upload_id(id) {
        return Err(RegistryError::UploadUnknown.into());
    }
    let state = ctx.query("_state").ok_or_else(|| {
        RegistryError::UploadInvalid(
            "the _state query parameter is missing: continue the upload at the Location URL the registry returned"
                .into(),
        )
    })?;
    ctx.registry().verify_state(name, id, state)?;
    Ok(())
}

pub async fn start(ctx: &Ctx<'_>, name: &RepoName, body: Body) -> Result<Response, ApiError> {
    let reg = ctx.registry();
    if let Some(mount) = ctx.query("mount") {
        // A mount that cannot be done falls back to an ordinary session (202).
        if let (Ok(digest), Some(Ok(from))) = (mount.parse::<Digest>(), ctx.query("from").map(RepoName::parse))
            && ctx.allows(&Access::repository(from.as_str(), &["pull"]))
            && super::mirror::mount_allowed(ctx, &from, &digest).await
            && reg.blob_mount(name, &from, &digest).await?
        {
            return Ok(created(ctx, name, digest));
        }
    }
    if let Some(digest) = digest_param(ctx)? {
        let s = reg.upload_start(name).await?;
        reg.upload_complete(name, &s.id, &digest, None, Some(body_stream(body))).await?;
        return Ok(created(ctx, name, digest));
    }
    let s = reg.upload_start(name).await?;
    Ok(session(ctx, name, StatusCode::ACCEPTED, s))
}

pub async fn status(ctx: &Ctx<'_>, name: &RepoName, id: &str) -> Result<Response, ApiError> {
    check_state(ctx, name, id)?;
    let s = ctx.registry().upload_status(name, id).await?;
    Ok(session(ctx, name, StatusCode::NO_CONTENT, s))
}

pub async fn patch(ctx: &Ctx<'_>, name: &RepoName, id: &str, body: Body) -> Result<Response, ApiError> {
    check_state(ctx, name, id)?;
    let range = chunk_range(ctx)?;
    if let (Some(r), Some(len)) = (range, content_length(ctx))
        && len != r.end - r.start + 1
    {
        return Err(ApiError::content_range_invalid(format!(
            "Content-Range {}-{} does not match Content-Length {len}",
            r.start, r.end
        )));
    }
    let s = ctx.registry().upload_append(name, id, range, body_stream(body)).await?;
    Ok(session(ctx, name, StatusCode::ACCEPTED, s))
}

pub async fn put(ctx: &Ctx<'_>, name: &RepoName, id: &str, body: Body) -> Result<Response, ApiError> {
    let digest = digest_param(ctx)?
        .ok_or_else(|| ApiError::digest_invalid("the digest query parameter is required to complete an upload"))?;
    check_state(ctx, name, id)?;
    let range = chunk_range(ctx)?;
    // A PUT without a body (Content-Length 0) only completes the upload.
    let body = (content_length(ctx) != Some(0)).then(|| body_stream(body));
    ctx.registry().upload_complete(name, id, &digest, range, body).await?;
    Ok(created(ctx, name, digest))
}

pub async fn cancel(ctx: &Ctx<'_>, name: &RepoName, id: &str) -> Result<Response, ApiError> {
    check_state(ctx, name, id)?;
    ctx.registry().upload_cancel(name, id).await?;
    Ok(NoContent.into_response())
}
