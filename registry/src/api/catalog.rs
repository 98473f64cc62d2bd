//! `GET /v2/_catalog` with `n`/`last` pagination.

use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::registry::catalog::paginate;

use super::Ctx;
use super::error::ApiError;
use super::response::JsonPage;
use super::tags::{next_link, page_params};

#[derive(Serialize)]
struct Catalog {
    repositories: Vec<String>,
}

pub async fn get(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let (n, last) = page_params(ctx)?;
    let mut all = ctx.registry().catalog().await?;
    all.retain(|repo| super::mirror::listed(ctx.state, repo));
    // With the built-in token service, the catalog shows only what the caller may pull.
    if let Some(service) = ctx.state.auth.token_service() {
        let rules = service.rules();
        let user = ctx.user();
        all.retain(|repo| rules.permitted(user, repo.as_str()).contains("pull"));
    }
    let (page, more) = paginate(&all, n, last);
    let repositories: Vec<String> = page.iter().map(|r| r.to_string()).collect();
    let next = next_link(ctx, "/v2/_catalog", n, more, repositories.last().map(String::as_str));
    let mut resp = JsonPage::new(Catalog { repositories });
    resp.next = next;
    Ok(resp.into_response())
}
