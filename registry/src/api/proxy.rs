//! Requests for mirrored repositories (issue 4). [`route`] runs before auth:
//! it names the repository as local storage and the access rules know it
//! (`docker.io/library/nginx` for `?ns=docker.io`), and refuses pushes with
//! the reason. [`handle`] asks `crate::proxy::Mirror` to make the content
//! present, then serves it with the ordinary handlers (or follows a blob
//! fetch in flight).

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::basic_credentials;
use crate::proxy::upstream::Missing;
use crate::proxy::{BlobSource, Error as MirrorError, Freshness, Selection, Target};
use crate::registry::blobs::ByteRange;
use crate::registry::digest::Digest;
use crate::registry::reference::RepoName;

use super::endpoint::Endpoint;
use super::error::{ApiError, Code};
use super::response::Content;
use super::{AppState, Ctx, blobs, manifests, referrers};

/// Decides whether a request is for a mirrored repository; if so, renames
/// the endpoint's repository to its local name.
pub fn route(
    state: &AppState,
    ep: Endpoint,
    method: &Method,
    ns: Option<&str>,
) -> Result<(Endpoint, Option<Target>), ApiError> {
    let Some(mirror) = &state.mirror else { return Ok((ep, None)) };
    let Some(name) = ep.repository() else { return Ok((ep, None)) };
    let target = match mirror.select(name, ns) {
        Selection::Local => return Ok((ep, None)),
        Selection::Unrouted(why) => return Err(ApiError::new(StatusCode::NOT_FOUND, Code::NameUnknown, why)),
        Selection::Mirrored(t) => t,
    };
    let read = matches!(ep, Endpoint::Manifest(..) | Endpoint::Blob(..) | Endpoint::Tags(_) | Endpoint::Referrers(..))
        && (method == Method::GET || method == Method::HEAD);
    if !read {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            Code::Unsupported,
            format!(
                "{name} is a read-only pull-through cache of {}/{}: push to the upstream itself{}",
                t_url(&target),
                target.remote,
                match mirror.cache.local_prefix() {
                    Some(p) => format!(", or to a local repository under {p}/ on this registry"),
                    None => String::new(),
                }
            ),
        ));
    }
    let local = target.local.clone();
    let ep = match ep {
        Endpoint::Manifest(_, r) => Endpoint::Manifest(local, r),
        Endpoint::Blob(_, d) => Endpoint::Blob(local, d),
        Endpoint::Tags(_) => Endpoint::Tags(local),
        Endpoint::Referrers(_, d) => Endpoint::Referrers(local, d),
        other => other,
    };
    Ok((ep, Some(target)))
}

fn t_url(t: &Target) -> &str {
    &t.upstream.url
}

pub async fn handle(ctx: &Ctx<'_>, t: Target, ep: Endpoint, _body: Body) -> Result<Response, ApiError> {
    let Some(mirror) = &ctx.state.mirror else { return Err(ApiError::not_found()) };
    let creds = mirror.credentials(&t, basic_credentials(&ctx.headers));
    let err = |e: std::sync::Arc<MirrorError>| to_api(&e, mirror.passthrough);
    let head = ctx.method == Method::HEAD;
    match ep {
        Endpoint::Manifest(name, reference) => {
            let freshness = mirror.manifest(&t, &reference, &creds).await.map_err(err)?;
            let mut resp = manifests::get(ctx, &name, &reference, head).await?;
            if let Freshness::Stale(warning) = freshness
                && let Ok(v) = HeaderValue::from_str(&warning)
            {
                resp.headers_mut().insert(header::WARNING, v);
            }
            Ok(resp)
        }
        Endpoint::Blob(name, digest) if head => match mirror.blob_head(&t, &digest, &creds).await.map_err(err)? {
            None => blobs::get(ctx, &name, digest, true).await,
            Some(size) => Ok(octets(digest, size, None, None)),
        },
        Endpoint::Blob(name, digest) => match mirror.blob(&t, &digest, &creds).await.map_err(err)? {
            BlobSource::Stored => blobs::get(ctx, &name, digest, false).await,
            BlobSource::Fetching(flight) => {
                let size = flight.size().await.map_err(err)?;
                let range = match ctx.header(&header::RANGE).and_then(ByteRange::parse) {
                    None => None,
                    Some(r) => Some(
                        r.resolve(size)
                            .ok_or_else(|| ApiError::from(crate::registry::Error::RangeNotSatisfiable { size }))?,
                    ),
                };
                let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
                let body = flight.follow(ctx.registry().backend().clone(), start, if size == 0 { 0 } else { end + 1 });
                Ok(octets(digest, size, range, Some(Body::from_stream(body))))
            }
        },
        Endpoint::Tags(name) => tags(ctx, &t, &name, &creds).await.map_err(|e| to_api(&e, mirror.passthrough)),
        Endpoint::Referrers(name, digest) => referrers::get(ctx, &name, &digest).await,
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn octets(digest: Digest, size: u64, range: Option<(u64, u64)>, body: Option<Body>) -> Response {
    Content { digest, media_type: "application/octet-stream".into(), size, range, body }.into_response()
}

/// The upstream's tag list, with the repository named as the client named it.
async fn tags(
    ctx: &Ctx<'_>,
    t: &Target,
    name: &RepoName,
    creds: &crate::proxy::upstream::Credentials,
) -> Result<Response, MirrorError> {
    let mut path = "tags/list".to_string();
    let query: Vec<String> = ["n", "last"]
        .iter()
        .filter_map(|k| {
            ctx.query(k).map(|v| format!("{k}={}", form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()))
        })
        .collect();
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let resp = t.upstream.send(Method::GET, &t.remote, &path, None, creds).await?;
    let resp = t.upstream.check(resp, &t.remote, Missing::Manifest(format!("{} (tags)", t.remote)))?;
    let body = resp.bytes().await.map_err(|e| t.upstream.body_error(&e))?;
    let mut v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| MirrorError::Upstream {
        upstream: t.upstream.label(),
        status: 200,
        message: format!("the tag list is not JSON: {e}"),
    })?;
    v["name"] = serde_json::Value::String(name.to_string());
    Ok(super::response::JsonPage::new(v).into_response())
}

/// The one place a mirror failure becomes an HTTP error.
fn to_api(e: &MirrorError, passthrough: bool) -> ApiError {
    let msg = e.to_string();
    match e {
        MirrorError::NotFound { missing: Missing::Blob(d), .. } => {
            ApiError::new(StatusCode::NOT_FOUND, Code::BlobUnknown, msg)
                .with_detail(serde_json::json!({ "digest": d.to_string() }))
        }
        MirrorError::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, Code::ManifestUnknown, msg),
        MirrorError::Unauthorized { upstream, .. } if passthrough => {
            // The client's own credentials were refused (or it sent none): ask for them.
            ApiError::new(StatusCode::UNAUTHORIZED, Code::Unauthorized, msg).with_header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&format!("Basic realm=\"{}\"", upstream.replace('"', "")))
                    .unwrap_or_else(|_| HeaderValue::from_static("Basic realm=\"wharf\"")),
            )
        }
        MirrorError::Unauthorized { .. } => ApiError::new(StatusCode::FORBIDDEN, Code::Denied, msg),
        MirrorError::TooManyRequests { retry_after, .. } => {
            let mut err = ApiError::new(StatusCode::TOO_MANY_REQUESTS, Code::Toomanyrequests, msg);
            if let Some(s) = retry_after {
                err = err.with_header(header::RETRY_AFTER, HeaderValue::from(*s));
            }
            err
        }
        MirrorError::Unreachable { .. } => ApiError::new(StatusCode::BAD_GATEWAY, Code::Unknown, msg),
        MirrorError::Upstream { .. } | MirrorError::Refused { .. } | MirrorError::DigestMismatch { .. } => {
            ApiError::new(StatusCode::BAD_GATEWAY, Code::Unknown, msg)
        }
        MirrorError::Store(_) => {
            tracing::error!(error = %msg, "storing cached content failed");
            crate::metrics::storage_error();
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, Code::Unknown, "internal storage error")
        }
    }
}
