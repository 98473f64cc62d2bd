//! Search: wharf's JSON API (`GET /v2/_wharf/search?q=&n=&last=`, paged by
//! a `Link` header as the catalog is) and the docker search protocol
//! (`GET /v1/search?q=&n=` and the `/v1/_ping` the docker daemon sends
//! first), both answered from the registry's search index
//! (`registry/search.rs`) and showing only what the caller may pull.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::viewer::Viewer;
use crate::registry::reference::RepoName;
use crate::registry::search::{Page, Query};

use super::error::ApiError;
use super::response::JsonPage;
use super::{AppState, Ctx, PeerAddr, forwarded};

/// The longest query: a repository name's limit, and a tag's after a `:`.
const MAX_QUERY: usize = 255 + 1 + 128;
/// Page sizes: the JSON API's default and most; docker's (its CLI sends 1 to 100).
const JSON_DEFAULT_N: usize = 100;
const JSON_MAX_N: usize = 1000;
const V1_DEFAULT_N: usize = 25;
const V1_MAX_N: usize = 100;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonResults {
    query: String,
    repositories: Vec<JsonRepo>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonRepo {
    name: String,
    tag_count: usize,
    /// The tags the query matched (empty when it matched the name).
    tags: Vec<String>,
}

/// The shape the docker daemon and containers/image decode.
#[derive(Serialize)]
struct V1Results {
    num_results: usize,
    query: String,
    results: Vec<V1Result>,
    page: u32,
    page_size: usize,
    num_pages: u32,
}

#[derive(Serialize)]
struct V1Result {
    name: String,
    description: String,
    star_count: u32,
    is_official: bool,
    is_automated: bool,
}

fn page_size(ctx: &Ctx<'_>, default: usize, max: usize) -> Result<usize, ApiError> {
    match ctx.query("n") {
        None | Some("") => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::pagination_number_invalid(format!(
                "n must be a whole number from 1 to {max}, got `{}`",
                v.chars().take(40).collect::<String>()
            ))),
        },
    }
}

fn query_text(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let q = ctx.query("q").unwrap_or("").trim();
    if q.len() > MAX_QUERY {
        return Err(ApiError::invalid_parameter(format!(
            "q is {} bytes long; a search is at most {MAX_QUERY}",
            q.len()
        )));
    }
    if q.chars().any(char::is_control) {
        return Err(ApiError::invalid_parameter("q holds control characters"));
    }
    Ok(q.to_ascii_lowercase())
}

/// Runs the search for whoever asks.
async fn search(ctx: &Ctx<'_>, q: &Query) -> Result<Page, ApiError> {
    let viewer: Viewer = ctx.state.auth.viewer(&ctx.auth_request()).await?;
    let state = ctx.state;
    let visible = |name: &str| {
        viewer.may_pull(name)
            && (state.mirror.is_none() || RepoName::parse(name).is_ok_and(|r| super::mirror::listed(state, &r)))
    };
    Ok(ctx.state.registry.search(q, &visible).await?)
}

async fn json(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let n = page_size(ctx, JSON_DEFAULT_N, JSON_MAX_N)?;
    let text = query_text(ctx)?;
    let last = match ctx.query("last").filter(|l| !l.is_empty()) {
        Some(l) => Some(
            RepoName::parse(l)
                .map_err(|e| ApiError::name_invalid(format!("last must be a repository name: {e}")))?
                .to_string(),
        ),
        None => None,
    };
    let page = search(ctx, &Query { text: text.clone(), n, last }).await?;
    let next = match (page.more, page.hits.last()) {
        (true, Some(h)) => Some(format!(
            "{}/v2/_wharf/search?{}",
            ctx.state.prefix,
            form_urlencoded::Serializer::new(String::new())
                .append_pair("q", &text)
                .append_pair("n", &n.to_string())
                .append_pair("last", &h.name)
                .finish()
        )),
        _ => None,
    };
    let repositories =
        page.hits.into_iter().map(|h| JsonRepo { name: h.name, tag_count: h.tag_count, tags: h.tags }).collect();
    let mut resp = JsonPage::new(JsonResults { query: text, repositories });
    resp.next = next;
    Ok(resp.into_response())
}

async fn v1(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let n = page_size(ctx, V1_DEFAULT_N, V1_MAX_N)?;
    let text = query_text(ctx)?;
    let page = search(ctx, &Query { text: text.clone(), n, last: None }).await?;
    let results: Vec<V1Result> = page
        .hits
        .into_iter()
        .map(|h| V1Result {
            name: h.name,
            description: String::new(),
            star_count: 0,
            is_official: false,
            is_automated: false,
        })
        .collect();
    Ok(JsonPage::new(V1Results {
        num_results: results.len(),
        query: text,
        results,
        page: 1,
        page_size: n,
        num_pages: 1,
    })
    .into_response())
}

/// `GET /v1/_ping`: the docker daemon checks the v1 endpoint with it before
/// searching; "standalone" tells it no separate index hands out v1 tokens.
fn v1_ping() -> Response {
    let mut resp = JsonPage::new(serde_json::json!({ "standalone": true }));
    resp.extra.push((HeaderName::from_static("x-docker-registry-standalone"), HeaderValue::from_static("true")));
    resp.into_response()
}

async fn run(state: Arc<AppState>, req: Request, route: &'static str) -> Response {
    let started = Instant::now();
    let (parts, _body) = req.into_parts();
    let query =
        parts.uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
    let origin = forwarded::Origin::resolve(&parts.headers, &parts.uri, peer, state.tls, &state.trusted_proxies);
    let method = parts.method.clone();
    let ctx = Ctx { state: &state, method: parts.method, headers: parts.headers, query, origin, identity: None };
    let result = match (&method, route) {
        (&Method::GET | &Method::HEAD, "search") => json(&ctx).await,
        (&Method::GET | &Method::HEAD, "v1_search") => v1(&ctx).await,
        (&Method::GET | &Method::HEAD, _) => Ok(v1_ping()),
        _ => Err(ApiError::method_not_allowed()),
    };
    let mut resp = result.unwrap_or_else(IntoResponse::into_response);
    let h = resp.headers_mut();
    for (k, v) in &state.headers {
        h.append(k.clone(), v.clone());
    }
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    crate::metrics::request(route, method.as_str(), status, elapsed);
    tracing::info!(
        client = ctx.origin.client.map(|c| c.to_string()).unwrap_or_default(),
        method = %method,
        route,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    resp
}

pub async fn json_endpoint(State(state): State<Arc<AppState>>, req: Request) -> Response {
    run(state, req, "search").await
}

pub async fn v1_endpoint(State(state): State<Arc<AppState>>, req: Request) -> Response {
    run(state, req, "v1_search").await
}

pub async fn v1_ping_endpoint(State(state): State<Arc<AppState>>, req: Request) -> Response {
    run(state, req, "v1_ping").await
}
