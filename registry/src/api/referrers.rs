//! `GET /v2/<name>/referrers/<digest>`, with the `artifactType` filter.

use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};

use crate::oci::manifest::OCI_INDEX;
use crate::registry::digest::Digest;
use crate::registry::reference::RepoName;

use super::Ctx;
use super::error::ApiError;
use super::response::{JsonPage, OCI_FILTERS_APPLIED};

pub async fn get(ctx: &Ctx<'_>, name: &RepoName, digest: &Digest) -> Result<Response, ApiError> {
    let artifact_type = ctx.query("artifactType").filter(|a| !a.is_empty());
    let index = ctx.registry().referrers(name, digest, artifact_type).await?;
    let mut resp = JsonPage::new(index);
    resp.content_type = OCI_INDEX;
    if artifact_type.is_some() {
        resp.extra.push((OCI_FILTERS_APPLIED, HeaderValue::from_static("artifactType")));
    }
    Ok(resp.into_response())
}
