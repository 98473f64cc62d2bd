//! The HTTP API: the distribution spec's `/v2/` routes.
//!
//! One catch-all route hands the raw path to [`endpoint::parse`], which
//! yields a typed [`Endpoint`]; [`dispatch`] then picks the handler by
//! endpoint and method. Handlers parse the request, make one call into
//! `crate::registry` and return a typed response from [`response`]. This
//! module never touches storage.

pub mod blobs;
pub mod catalog;
pub mod endpoint;
pub mod error;
pub mod forwarded;
pub mod manifests;
pub mod mirror;
pub mod referrers;
pub mod response;
pub mod search;
pub mod tags;
pub mod token;
pub mod uploads;

use std::io;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures::StreamExt;

use crate::auth::scope::Access;
use crate::auth::{Auth, Identity, RequestAuth};
use crate::registry::Registry;
use crate::storage::ByteStream;
use endpoint::Endpoint;
use error::ApiError;

/// Everything a request handler needs, built once at startup.
pub struct AppState {
    pub registry: Arc<Registry>,
    pub auth: Auth,
    /// `http.prefix` without a trailing slash (may be empty).
    pub prefix: String,
    /// `http.host`: the base of absolute URLs, when configured.
    pub host: Option<String>,
    /// `http.relativeurls`.
    pub relative_urls: bool,
    /// Whether the listener speaks TLS (for URLs built from `Host`).
    pub tls: bool,
    /// `http.headers`, added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The pull-through cache (`proxy` section), when configured.
    pub mirror: Option<Arc<crate::mirror::Mirror>>,
    /// `http.trustedproxies`: whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: forwarded::TrustedProxies,
}

/// Per-request view of the request line and headers.
pub struct Ctx<'a> {
    pub state: &'a AppState,
    pub method: Method,
    pub headers: HeaderMap,
    query: Vec<(String, String)>,
    /// The client and the address it reached (`X-Forwarded-*` from trusted proxies only).
    pub origin: forwarded::Origin,
    /// Who is asking: `None` until auth has run (handlers run only after it).
    identity: Option<Identity>,
}

/// The peer address of a connection, inserted by `server::serve`.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

impl Ctx<'_> {
    pub fn registry(&self) -> &Registry {
        &self.state.registry
    }

    /// Whether the client may do `access`; nothing before auth has run.
    pub fn allows(&self, access: &Access) -> bool {
        self.identity.as_ref().is_some_and(|i| i.allows(access))
    }

    /// The authenticated user, if any.
    pub fn user(&self) -> Option<&str> {
        self.identity.as_ref().and_then(|i| i.user.as_deref())
    }

    /// The registry, for work that outlives the request (a flight's reader).
    pub fn registry_arc(&self) -> Arc<Registry> {
        self.state.registry.clone()
    }

    pub fn auth_request(&self) -> RequestAuth<'_> {
        RequestAuth {
            headers: &self.headers,
            client: self.origin.client,
            scheme: &self.origin.scheme,
            host: self.origin.host.as_deref(),
            prefix: &self.state.prefix,
        }
    }

    /// The first value of a query parameter.
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// An URL for `path` (which starts with `/v2/`), absolute unless
    /// `http.relativeurls` is set.
    pub fn url(&self, path: &str) -> String {
        let s = self.state;
        if s.relative_urls {
            return format!("{}{path}", s.prefix);
        }
        if let Some(host) = &s.host {
            return format!("{}{}{path}", host.trim_end_matches('/'), s.prefix);
        }
        match &self.origin.host {
            Some(host) => format!("{}://{host}{}{path}", self.origin.scheme, s.prefix),
            None => format!("{}{path}", s.prefix),
        }
    }
}

/// The request body as a byte stream, counted for metrics.
pub fn body_stream(body: Body) -> ByteStream {
    body.into_data_stream()
        .map(|r| r.inspect(|b| crate::metrics::bytes_received(b.len())).map_err(io::Error::other))
        .boxed()
}

pub fn router(state: Arc<AppState>) -> Router {
    let prefix = state.prefix.clone();
    let v2 = Router::new()
        .route("/auth/token", any(token::endpoint))
        .route("/v2/_wharf/search", any(search::json_endpoint))
        .route("/v1/search", any(search::v1_endpoint))
        .route("/v1/_ping", any(search::v1_ping_endpoint))
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
        .fallback(|| async { ApiError::not_found() })
        .with_state(state);
    if prefix.is_empty() { v2 } else { Router::new().nest(&prefix, v2) }
}

async fn dispatch(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    // Endpoint parsing sees the raw path: percent-encoded names are refused, never decoded.
    let full = parts.uri.path();
    let rest = full.strip_prefix(state.prefix.as_str()).unwrap_or(full);
    let rest = rest.strip_prefix("/v2").unwrap_or(rest);
    let query =
        parts.uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let parts_peer = parts.extensions.get::<PeerAddr>().map(|p| p.0);
    let peer = parts_peer.map(|p| p.ip());
    let origin = forwarded::Origin::resolve(&parts.headers, &parts.uri, peer, state.tls, &state.trusted_proxies);
    let mut ctx = Ctx { state: &state, method: parts.method, headers: parts.headers, query, origin, identity: None };

    let parsed = endpoint::parse_request(rest, &ctx.method);
    let kind = parsed.as_ref().map(Endpoint::kind).unwrap_or("invalid");
    let repository = parsed.as_ref().ok().and_then(|e| e.repository()).map(|r| r.to_string());
    // The root of a request's trace: the route, never the raw path (it may carry `_state` or credentials).
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{method} {kind}"),
        otel.kind = "server",
        method = %method,
        route = kind,
        repository = repository.as_deref().unwrap_or(""),
        status = tracing::field::Empty,
        bytes = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    crate::telemetry::otlp::continue_trace(&span, &ctx.headers);
    // Mirrored repositories (issue 4) are renamed to their local name before
    // auth, so access rules see it; pushes into them are refused here.
    let parsed = parsed.and_then(|ep| mirror::select(&state, ep, &ctx.method, ctx.query("ns"), &ctx.headers));
    let handled = async {
        match parsed {
            Ok((ep, mirrored)) => match state.auth.check(&ctx.auth_request(), &needed_access(&ep, &ctx.method)).await {
                Ok(identity) => {
                    ctx.identity = Some(identity);
                    let served = async {
                        match mirrored {
                            Some(target) => mirror::handle(&ctx, target, ep, body).await,
                            None => handle(&ctx, ep, body).await,
                        }
                        .unwrap_or_else(IntoResponse::into_response)
                    };
                    if state.registry.notifying() {
                        crate::registry::events::scope(event_request(&ctx, &parts_peer), served).await
                    } else {
                        served.await
                    }
                }
                Err(denial) => ApiError::from(denial).into_response(),
            },
            Err(e) => e.into_response(),
        }
    };
    let mut resp = tracing::Instrument::instrument(handled, span.clone()).await;

    let h = resp.headers_mut();
    h.insert(HeaderName::from_static("docker-distribution-api-version"), HeaderValue::from_static("registry/2.0"));
    for (k, v) in &state.headers {
        h.append(k.clone(), v.clone());
    }
    let status = resp.status().as_u16();
    let bytes = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if method != Method::HEAD {
        crate::metrics::bytes_sent(bytes);
    }
    span.record("status", status).record("bytes", bytes);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    drop(span);
    let elapsed = started.elapsed();
    crate::metrics::request(kind, method.as_str(), status, elapsed);
    tracing::info!(
        client = ctx.origin.client.map(|c| c.to_string()).unwrap_or_default(),
        method = %method,
        route = kind,
        repository = repository.as_deref().unwrap_or(""),
        status,
        bytes,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    resp
}

/// The request as registry:2's events describe it (`request`, `actor`, URLs).
fn event_request(ctx: &Ctx<'_>, peer: &Option<std::net::SocketAddr>) -> crate::registry::events::RequestInfo {
    use crate::registry::events::{RequestInfo, RequestRecord};
    // The client as registry:2 names it: the peer's address and port, or the
    // forwarded client (from a trusted proxy) alone.
    let addr = match (ctx.origin.client, peer) {
        (Some(c), Some(p)) if c == p.ip().to_canonical() => p.to_string(),
        (Some(c), _) => c.to_string(),
        (None, _) => String::new(),
    };
    RequestInfo {
        request: RequestRecord {
            id: uuid::Uuid::new_v4().to_string(),
            addr,
            host: ctx.origin.host.clone().unwrap_or_default(),
            method: ctx.method.to_string(),
            useragent: ctx.header(&header::USER_AGENT).unwrap_or_default().to_string(),
        },
        actor: ctx.user().unwrap_or_default().to_string(),
        base_url: ctx.url(""),
    }
}

/// The scopes an endpoint needs, as the token spec names them.
fn needed_access(ep: &Endpoint, method: &Method) -> Vec<Access> {
    let repo =
        |actions: &[&str]| ep.repository().map(|r| vec![Access::repository(r.as_str(), actions)]).unwrap_or_default();
    match (ep, method) {
        (Endpoint::Base, _) => Vec::new(),
        (Endpoint::Catalog, _) => vec![Access::catalog()],
        (_, &Method::GET | &Method::HEAD) => repo(&["pull"]),
        (Endpoint::Manifest(..) | Endpoint::Blob(..), &Method::DELETE) => repo(&["delete"]),
        _ => repo(&["pull", "push"]),
    }
}

async fn handle(ctx: &Ctx<'_>, ep: Endpoint, body: Body) -> Result<Response, ApiError> {
    use Method as M;
    let m = ctx.method.clone();
    match (ep, m) {
        (Endpoint::Base, M::GET | M::HEAD) => Ok(response::JsonPage::new(serde_json::json!({})).into_response()),
        (Endpoint::Catalog, M::GET) => catalog::get(ctx).await,
        (Endpoint::Tags(name), M::GET) => tags::get(ctx, &name).await,
        (Endpoint::Manifest(name, r), M::GET) => manifests::get(ctx, &name, &r, false).await,
        (Endpoint::Manifest(name, r), M::HEAD) => manifests::get(ctx, &name, &r, true).await,
        (Endpoint::Manifest(name, r), M::PUT) => manifests::put(ctx, &name, &r, body).await,
        (Endpoint::Manifest(name, r), M::DELETE) => manifests::delete(ctx, &name, &r).await,
        (Endpoint::Blob(name, d), M::GET) => blobs::get(ctx, &name, d, false).await,
        (Endpoint::Blob(name, d), M::HEAD) => blobs::get(ctx, &name, d, true).await,
        (Endpoint::Blob(name, d), M::DELETE) => blobs::delete(ctx, &name, &d).await,
        (Endpoint::UploadStart(name), M::POST) => uploads::start(ctx, &name, body).await,
        (Endpoint::Upload(name, id), M::GET) => uploads::status(ctx, &name, &id).await,
        (Endpoint::Upload(name, id), M::PATCH) => uploads::patch(ctx, &name, &id, body).await,
        (Endpoint::Upload(name, id), M::PUT) => uploads::put(ctx, &name, &id, body).await,
        (Endpoint::Upload(name, id), M::DELETE) => uploads::cancel(ctx, &name, &id).await,
        (Endpoint::Referrers(name, d), M::GET) => referrers::get(ctx, &name, &d).await,
        _ => Err(ApiError::method_not_allowed()),
    }
}
