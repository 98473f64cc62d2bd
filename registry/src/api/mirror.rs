//! Requests for mirrored repositories (issue 4). [`select`] runs before auth:
//! it names the repository as local storage and the access rules know it
//! (`docker.io/library/nginx` for `?ns=docker.io`), and refuses pushes with
//! the reason. [`handle`] asks `crate::mirror::Mirror` to make the content
//! present, then serves it with the ordinary handlers (or follows a blob
//! fetch in flight).
//!
//! Pass-through mode (issue 12): `/v2/` challenges clients that sent no
//! credentials, so skopeo and crane send theirs (containerd sends them after
//! the first 401 on a repository); every read of cached content, referrers
//! and mounts from a mirrored repository included, first has the upstream
//! confirm the client's access; the catalog never names mirrored repositories.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};

use crate::auth::basic_credentials;
use crate::mirror::upstream::Missing;
use crate::mirror::{BlobSource, Error as MirrorError, Freshness, Probe, Selection, Target};
use crate::oci::manifest::{OCI_INDEX, ReferrersIndex};
use crate::registry::blobs::ByteRange;
use crate::registry::digest::Digest;
use crate::registry::reference::{Reference, RepoName};

use super::endpoint::Endpoint;
use super::error::ApiError;
use super::response::{Content, JsonPage};
use super::{AppState, Ctx, blobs, manifests, referrers};

/// Decides whether a request is for a mirrored repository (by
/// [`Mirror::select`](crate::mirror::Mirror::select)); if so, renames the
/// endpoint's repository to its local name.
pub fn select(
    state: &AppState,
    ep: Endpoint,
    method: &Method,
    ns: Option<&str>,
    headers: &HeaderMap,
) -> Result<(Endpoint, Option<Target>), ApiError> {
    let Some(mirror) = &state.mirror else { return Ok((ep, None)) };
    // skopeo and crane ping /v2/ and send credentials only if it challenges them.
    if mirror.passthrough && matches!(ep, Endpoint::Base) && !sent_credentials(headers) {
        return Err(ApiError::basic_challenge(
            "this pass-through mirror uses your own upstream credentials: log in with them",
            "wharf-registry pass-through mirror",
        ));
    }
    let Some(name) = ep.repository() else { return Ok((ep, None)) };
    let target = match mirror.select(name, ns) {
        Selection::Local => return Ok((ep, None)),
        Selection::NoUpstream(why) => return Err(ApiError::name_unknown(why)),
        Selection::Mirrored(t) => t,
    };
    let read = matches!(ep, Endpoint::Manifest(..) | Endpoint::Blob(..) | Endpoint::Tags(_) | Endpoint::Referrers(..))
        && (method == Method::GET || method == Method::HEAD);
    if !read {
        return Err(ApiError::unsupported(format!(
            "{name} is a read-only pull-through cache of {}/{}: push to the upstream itself{}",
            target.upstream.url,
            target.remote,
            match mirror.cache.local_prefix() {
                Some(p) => format!(", or to a local repository under {p}/ on this registry"),
                None => String::new(),
            }
        )));
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

/// Basic credentials, not the empty pair skopeo sends when it has none.
fn sent_credentials(headers: &HeaderMap) -> bool {
    basic_credentials(headers).is_some_and(|(user, password)| !(user.is_empty() && password.is_empty()))
}

/// Whether a cross-repository mount may link a blob of `from` (issue 12): in
/// pass-through mode, a mirrored `from` needs the upstream to confirm this
/// client's access first. `false` makes the mount fall back to an upload.
pub async fn mount_allowed(ctx: &Ctx<'_>, from: &RepoName, digest: &Digest) -> bool {
    let Some(mirror) = ctx.state.mirror.as_ref().filter(|m| m.passthrough) else { return true };
    match mirror.select(from, None) {
        Selection::Mirrored(t) => {
            let creds = mirror.credentials(&t, basic_credentials(&ctx.headers));
            mirror.confirm(&t, &creds, Probe::Blob(digest)).await.is_ok()
        }
        Selection::Local | Selection::NoUpstream(_) => true,
    }
}

/// Whether the catalog may name `repo`: in pass-through mode, mirrored
/// repositories are never listed (who may read them is the upstream's
/// business, per client, and a name can be private too).
pub fn listed(state: &AppState, repo: &RepoName) -> bool {
    match &state.mirror {
        Some(m) if m.passthrough => matches!(m.select(repo, None), Selection::Local),
        _ => true,
    }
}

pub async fn handle(ctx: &Ctx<'_>, t: Target, ep: Endpoint, _body: Body) -> Result<Response, ApiError> {
    let Some(mirror) = &ctx.state.mirror else { return Err(ApiError::not_found()) };
    let creds = mirror.credentials(&t, basic_credentials(&ctx.headers));
    let err = |e: std::sync::Arc<MirrorError>| ApiError::from_mirror(&e, mirror.passthrough);
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
                let body = flight.follow(ctx.registry_arc(), start, if size == 0 { 0 } else { end + 1 });
                Ok(octets(digest, size, range, Some(Body::from_stream(body))))
            }
        },
        Endpoint::Tags(name) => {
            tags(ctx, &t, &name, &creds).await.map_err(|e| ApiError::from_mirror(&e, mirror.passthrough))
        }
        Endpoint::Referrers(name, digest) => {
            match mirror.confirm(&t, &creds, Probe::Manifest(&Reference::Digest(digest.clone()))).await {
                Ok(()) => referrers::get(ctx, &name, &digest).await,
                // No such subject upstream: no referrers (the spec answers 200, never 404).
                Err(e) if matches!(*e, MirrorError::NotFound { .. }) => {
                    let mut resp = JsonPage::new(ReferrersIndex {
                        schema_version: 2,
                        media_type: OCI_INDEX,
                        manifests: Vec::new(),
                    });
                    resp.content_type = OCI_INDEX;
                    Ok(resp.into_response())
                }
                Err(e) => Err(err(e)),
            }
        }
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
    creds: &crate::mirror::upstream::Credentials,
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
