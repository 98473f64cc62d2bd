//! `GET /v2/<name>/tags/list` with `n`/`last` pagination.

use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::registry::catalog::paginate;
use crate::registry::reference::RepoName;

use super::Ctx;
use super::error::ApiError;
use super::response::JsonPage;

#[derive(Serialize)]
struct TagList {
    name: String,
    tags: Vec<String>,
}

/// Reads `n` (page size) and `last` from the query.
pub fn page_params<'a>(ctx: &'a Ctx<'_>) -> Result<(Option<usize>, Option<&'a str>), ApiError> {
    let n = match ctx.query("n") {
        None | Some("") => None,
        Some(v) => Some(
            v.parse::<usize>()
                .map_err(|_| ApiError::invalid_parameter(format!("n must be a non-negative integer, got `{v}`")))?,
        ),
    };
    Ok((n, ctx.query("last").filter(|l| !l.is_empty())))
}

/// The `Link` target for the page after `last_item`.
pub fn next_link(ctx: &Ctx<'_>, path: &str, n: Option<usize>, more: bool, last_item: Option<&str>) -> Option<String> {
    let (n, last) = (n?, last_item?);
    more.then(|| {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("n", &n.to_string())
            .append_pair("last", last)
            .finish();
        format!("{}{path}?{q}", ctx.state.prefix)
    })
}

pub async fn get(ctx: &Ctx<'_>, name: &RepoName) -> Result<Response, ApiError> {
    let (n, last) = page_params(ctx)?;
    let tags = ctx.registry().tags(name).await?;
    let (page, more) = paginate(&tags, n, last);
    let tags: Vec<String> = page.iter().map(|t| t.to_string()).collect();
    let mut resp = JsonPage::new(TagList { name: name.to_string(), tags: tags.clone() });
    resp.next = next_link(ctx, &format!("/v2/{name}/tags/list"), n, more, tags.last().map(String::as_str));
    Ok(resp.into_response())
}
