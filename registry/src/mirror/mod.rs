//! The pull-through cache (mirror, issue 4): repositories that belong to an
//! upstream registry are fetched on demand, stored in the ordinary registry:2
//! layout, and served from there.
//!
//! - the `proxy` section of config.yml (`crate::config::mirror`) and the safe-start rule (seed 004).
//! - [`upstream`]: the HTTP client and the upstream's auth dance.
//! - [`single_flight`]: one upstream fetch per manifest and per blob.
//! - [`cache`]: tag freshness, use times, the size bound and the expiry sweep.
//! - [`access`]: which pass-through clients the upstream has confirmed.
//!
//! This module decides *what* comes from where; `crate::api::mirror` turns it
//! into HTTP. It reads through `crate::registry` and writes cached content
//! into storage itself, with keys from `storage::paths` and the registry's
//! commit order (blob, then links; upload area, then rename), because cached
//! manifests arrive before their blobs, which `Registry::manifest_put` refuses.

pub mod access;
pub mod cache;
pub mod single_flight;
pub mod upstream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;

use crate::metrics::{self, MirrorKind};
use crate::registry::Registry;
use crate::registry::digest::{Digest, Hasher};
use crate::registry::reference::{Reference, RepoName};
use access::Confirmations;
pub use access::Probe;
use cache::Cache;
use single_flight::{BlobFlight, Flights, Progress, Publisher};
use std::sync::atomic::Ordering;
use upstream::CredKey;
use upstream::{Credentials, Missing, Upstream};

/// Why the mirror could not serve something.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("{missing} is not known to upstream {upstream}")]
    NotFound { upstream: String, missing: Missing },
    #[error("upstream {upstream} refused access: {message}")]
    Unauthorized { upstream: String, message: String },
    #[error("upstream {upstream} is rate limiting this mirror")]
    TooManyRequests { upstream: String, retry_after: Option<u64> },
    #[error("upstream {upstream} is unreachable: {message}")]
    Unreachable { upstream: String, message: String },
    #[error("upstream {upstream} failed with {status}: {message}")]
    Upstream { upstream: String, status: u16, message: String },
    #[error("upstream {upstream}: {message}")]
    Refused { upstream: String, message: String },
    #[error("upstream {upstream} sent content for {expected} that hashes to {actual}; nothing was cached")]
    DigestMismatch { upstream: String, expected: Digest, actual: Digest },
    #[error(
        "upstream {upstream} could not confirm this client's access to {repository} ({cause}); cached content is \
         served only to clients the upstream has confirmed"
    )]
    Unconfirmed { upstream: String, repository: String, cause: String },
    #[error("storing cached content: {0}")]
    Store(String),
    /// The cache's storage cannot be reached now; a retry may succeed.
    #[error("storing cached content: {0}")]
    StoreUnavailable(String),
}

impl Error {
    /// Failures that say nothing about the content: a cached copy may still be served.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::TooManyRequests { .. } => true,
            Error::Upstream { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

impl From<crate::storage::StorageError> for Error {
    fn from(e: crate::storage::StorageError) -> Self {
        match e {
            crate::storage::StorageError::Unavailable(_) => Error::StoreUnavailable(e.to_string()),
            _ => Error::Store(e.to_string()),
        }
    }
}

impl From<crate::registry::Error> for Error {
    fn from(e: crate::registry::Error) -> Self {
        match e {
            crate::registry::Error::Storage(s) => s.into(),
            e => Error::Store(e.to_string()),
        }
    }
}

/// A mirrored repository: which upstream, and its name here and there.
#[derive(Debug, Clone)]
pub struct Target {
    pub upstream: Arc<Upstream>,
    /// The name in local storage (and in access rules): `docker.io/library/nginx`.
    pub local: RepoName,
    /// The name upstream: `library/nginx`.
    pub remote: String,
}

/// Where a repository's requests go.
pub enum Selection {
    Local,
    Mirrored(Target),
    /// Neither local nor served by any upstream: why.
    NoUpstream(String),
}

/// How a tag was served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// From the cache, current enough (within `tagttl`, or revalidated).
    Fresh,
    /// Fetched from the upstream just now.
    Fetched,
    /// The upstream could not be asked; the value is a `Warning` header.
    Stale(String),
}

/// Where a blob is served from.
pub enum BlobSource {
    Stored,
    Fetching(Arc<BlobFlight>),
}

type ManifestResult = Result<Freshness, Arc<Error>>;

pub struct Mirror {
    registry: Arc<Registry>,
    named: Vec<Arc<Upstream>>,
    default: Option<Arc<Upstream>>,
    pub passthrough: bool,
    pub cache: Arc<Cache>,
    manifests: Flights<(CredKey, String, String), ManifestResult>,
    blobs: Mutex<HashMap<(CredKey, String, Digest), Arc<BlobFlight>>>,
    confirmed: Confirmations,
}

fn read_secret(path: &str, key: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{key} {path}: {e}"))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

impl Mirror {
    /// Builds the mirror from a validated `proxy` section; reads credential files.
    pub fn from_config(p: &crate::config::mirror::MirrorConfig, registry: Arc<Registry>) -> Result<Mirror, String> {
        let account = |user: Option<String>, password: Option<String>| match (user, password) {
            (Some(user), Some(password)) if !p.passthrough => Credentials::Basic { user, password },
            _ => Credentials::Anonymous,
        };
        let default = match &p.remoteurl {
            Some(url) => {
                let account = account(p.username.clone(), p.password.clone());
                Some(Arc::new(Upstream::new("", url, account, &[], &[])?))
            }
            None => None,
        };
        let mut named = Vec::new();
        for (i, u) in p.upstreams.iter().enumerate() {
            let at = format!("proxy.upstreams[{i}]");
            let user = match (&u.username, &u.usernamefile) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(f)) => Some(read_secret(f, &format!("{at}.usernamefile"))?),
                _ => None,
            };
            let password = match (&u.password, &u.passwordfile) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(f)) => Some(read_secret(f, &format!("{at}.passwordfile"))?),
                _ => None,
            };
            let ca = match &u.cafile {
                Some(f) => std::fs::read(f).map_err(|e| format!("{at}.cafile {f}: {e}"))?,
                None => Vec::new(),
            };
            named.push(Arc::new(Upstream::new(&u.name, &u.url, account(user, password), &u.realmhosts, &ca)?));
        }
        let cache = Arc::new(Cache::new(
            registry.backend().clone(),
            p.tag_ttl(),
            p.ttl(),
            p.maxsize.map(|s| s.0),
            p.localprefix.clone(),
        ));
        Ok(Mirror {
            registry,
            named,
            default,
            passthrough: p.passthrough,
            cache,
            manifests: Flights::default(),
            blobs: Mutex::new(HashMap::new()),
            confirmed: Confirmations::default(),
        })
    }

    /// The upstreams, `remoteurl`'s (unnamed) first.
    pub fn upstreams(&self) -> impl Iterator<Item = &Upstream> {
        self.default.iter().chain(self.named.iter()).map(|u| &**u)
    }

    /// Loads the cache's view of storage, then sweeps and evicts periodically.
    pub fn spawn_maintenance(&self) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let cache = self.cache.clone();
        rt.spawn(async move {
            if let Err(e) = cache.load().await {
                tracing::warn!(error = %e, "cache: reading what storage holds failed; sizes start from zero");
            }
            tracing::info!(bytes = cache.total(), "cache: loaded");
            let Some(every) = cache.sweep_interval() else { return };
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let expired = cache.sweep().await;
                let evicted = cache.evict().await;
                if expired + evicted > 0 {
                    tracing::info!(expired, evicted, bytes = cache.total(), "cache: sweep finished");
                }
            }
        });
    }

    /// Chooses local storage or an upstream for a repository: `localprefix`
    /// first, then containerd's `ns` parameter, then a name prefix, then `remoteurl`.
    pub fn select(&self, name: &RepoName, ns: Option<&str>) -> Selection {
        let n = name.as_str();
        if self.cache.is_local(n) {
            return Selection::Local;
        }
        let target = |upstream: &Arc<Upstream>, local: &str, remote: &str| match RepoName::parse(local) {
            Ok(local) => {
                Selection::Mirrored(Target { upstream: upstream.clone(), local, remote: upstream.remote_name(remote) })
            }
            Err(e) => Selection::NoUpstream(format!("{local}: {e}")),
        };
        if let Some(ns) = ns
            && let Some(u) = self.named.iter().find(|u| u.name == ns)
        {
            return target(u, &format!("{}/{n}", u.prefix), n);
        }
        if let Some((first, rest)) = n.split_once('/')
            && let Some(u) = self.named.iter().find(|u| u.prefix == first)
        {
            return target(u, n, rest);
        }
        if let Some(u) = &self.default {
            return target(u, n, n);
        }
        let names: Vec<&str> = self.named.iter().map(|u| u.prefix.as_str()).collect();
        Selection::NoUpstream(format!(
            "{n} is not mirrored: name an upstream ({}) as the first path component or with ?ns=, {}",
            names.join(", "),
            match &self.cache.local_prefix() {
                Some(p) => format!("or push to a local repository under {p}/"),
                None => "or configure proxy.remoteurl for everything else".to_string(),
            }
        ))
    }

    /// The credentials used upstream for a client that sent `client`
    /// (its Basic credentials, in pass-through mode).
    pub fn credentials(&self, t: &Target, client: Option<(String, String)>) -> Credentials {
        if self.passthrough {
            match client {
                // skopeo answers a Basic challenge with empty credentials when it has none.
                Some((user, password)) if !(user.is_empty() && password.is_empty()) => {
                    Credentials::Basic { user, password }
                }
                _ => Credentials::Anonymous,
            }
        } else {
            t.upstream.account.clone()
        }
    }

    // ---------------------------------------------------------------- manifests

    /// Makes sure the manifest `reference` is in local storage and current
    /// enough to serve. Tags are revalidated after `tagttl`; digests never.
    pub async fn manifest(self: &Arc<Self>, t: &Target, reference: &Reference, creds: &Credentials) -> ManifestResult {
        let local = t.local.as_str();
        let cached = self.registry.resolve(&t.local, reference).await.ok();
        if let Some(d) = &cached {
            let fresh = match reference {
                Reference::Digest(_) => true,
                Reference::Tag(tag) => self.cache.tag_fresh(local, tag.as_str()),
            };
            if fresh {
                self.confirm(t, creds, Probe::Manifest(reference)).await?;
                self.touch_manifest(local, d).await;
                metrics::mirror_served(MirrorKind::Manifest, true);
                return Ok(Freshness::Fresh);
            }
        }
        let key = (creds.key(), local.to_string(), reference.to_string());
        let (me, t2, r, c) = (self.clone(), t.clone(), reference.clone(), creds.clone());
        // The flight is traced under the request that started it.
        let refresh = tracing::Instrument::in_current_span(async move { me.refresh(&t2, &r, cached, &c).await });
        let result = self
            .manifests
            .run(key, refresh, || Err(Arc::new(Error::Store("the manifest fetch task panicked".into()))))
            .await;
        // Counted per request, so clients that joined one fetch each count.
        if let Ok(f) = &result {
            metrics::mirror_served(MirrorKind::Manifest, *f != Freshness::Fetched);
        }
        result
    }

    async fn touch_manifest(&self, local: &str, d: &Digest) {
        if !self.cache.manifest_touched(local, d)
            && let Ok(Some(body)) = self.registry.manifest_bytes(d).await
        {
            let blobs = crate::oci::manifest::parse(&body, None).map(|p| p.blobs).unwrap_or_default();
            self.cache.manifest_used(local, d, blobs);
        }
    }

    /// Revalidates a cached tag (HEAD) or fetches the manifest (GET).
    async fn refresh(
        &self,
        t: &Target,
        reference: &Reference,
        cached: Option<Digest>,
        creds: &Credentials,
    ) -> ManifestResult {
        let stale = |e: &Error| {
            tracing::warn!(upstream = %t.upstream.label(), repository = %t.local, error = %e, "serving a cached tag the upstream could not confirm");
            Freshness::Stale(format!("110 - \"Response is Stale: {}\"", e.to_string().replace('"', "'")))
        };
        if let (Some(c), Reference::Tag(tag)) = (&cached, reference) {
            match t.upstream.manifest_head(&t.remote, tag.as_str(), creds).await {
                Ok(Some(d)) if &d == c => {
                    self.cache.tag_confirmed(t.local.as_str(), tag.as_str());
                    self.mark_confirmed(t, creds);
                    self.touch_manifest(t.local.as_str(), c).await;
                    return Ok(Freshness::Fresh);
                }
                // The tag moved, but this client may read the repository.
                Ok(_) => self.mark_confirmed(t, creds),
                Err(e) if e.is_transient() => return self.stale_access(t, creds, &e).map(|()| stale(&e)),
                Err(e) => return Err(Arc::new(e)),
            }
        }
        match self.fetch_manifest(t, reference, creds).await {
            Ok(()) => Ok(Freshness::Fetched),
            Err(e) if cached.is_some() && e.is_transient() => self.stale_access(t, creds, &e).map(|()| stale(&e)),
            Err(e) => Err(Arc::new(e)),
        }
    }

    #[tracing::instrument(name = "mirror_fill_manifest", skip_all, fields(upstream = %t.upstream.label(), repo = %t.local, reference = %reference))]
    async fn fetch_manifest(&self, t: &Target, reference: &Reference, creds: &Credentials) -> Result<(), Error> {
        let (body, media_type) = t.upstream.manifest_get(&t.remote, &reference.to_string(), creds).await?;
        let digest = match reference {
            Reference::Digest(d) => {
                if !d.verify(&body) {
                    let mut h = Hasher::new(d.alg());
                    h.update(&body);
                    return Err(Error::DigestMismatch {
                        upstream: t.upstream.label(),
                        expected: d.clone(),
                        actual: h.finish(),
                    });
                }
                d.clone()
            }
            Reference::Tag(_) => Digest::sha256_of(&body),
        };
        let parsed = crate::oci::manifest::parse(&body, media_type.as_deref()).map_err(|e| Error::Upstream {
            upstream: t.upstream.label(),
            status: 200,
            message: format!("the manifest of {}:{reference} cannot be cached: {e}", t.remote),
        })?;
        self.store_manifest(t, reference, &digest, body).await?;
        self.cache.manifest_used(t.local.as_str(), &digest, parsed.blobs);
        if let Reference::Tag(tag) = reference {
            self.cache.tag_confirmed(t.local.as_str(), tag.as_str());
        }
        self.mark_confirmed(t, creds);
        Ok(())
    }

    /// The registry's commit order: manifest blob, revision link, tag index, tag current.
    async fn store_manifest(
        &self,
        t: &Target,
        reference: &Reference,
        digest: &Digest,
        body: Bytes,
    ) -> Result<(), Error> {
        let tag = match reference {
            Reference::Tag(tag) => Some(tag),
            Reference::Digest(_) => None,
        };
        self.registry.manifest_ingest(&t.local, digest, body, tag).await.map_err(Error::from)
    }

    // ---------------------------------------------------------------- blobs

    /// A stored blob, or the flight that fetches it.
    pub async fn blob(
        self: &Arc<Self>,
        t: &Target,
        digest: &Digest,
        creds: &Credentials,
    ) -> Result<BlobSource, Arc<Error>> {
        if self.registry.blob_size(&t.local, digest).await.is_ok() {
            self.confirm(t, creds, Probe::Blob(digest)).await?;
            self.cache.blob_used(digest);
            metrics::mirror_served(MirrorKind::Blob, true);
            return Ok(BlobSource::Stored);
        }
        metrics::mirror_served(MirrorKind::Blob, false);
        let key = (creds.key(), t.local.as_str().to_string(), digest.clone());
        let mut map = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = map.get(&key) {
            return Ok(BlobSource::Fetching(f.clone()));
        }
        let (flight, publisher) = BlobFlight::new(digest.clone());
        map.insert(key.clone(), flight.clone());
        drop(map);
        let (me, t, d, c) = (self.clone(), t.clone(), digest.clone(), creds.clone());
        // The flight is traced under the request that started it.
        let in_span = tracing::Span::current();
        tokio::spawn(async move {
            let result = tracing::Instrument::instrument(me.fetch_blob(&t, &d, &c, &publisher), in_span).await;
            match result {
                Ok(size) => publisher.send(Progress::Done { size }),
                Err(e) => {
                    tracing::warn!(upstream = %t.upstream.label(), repository = %t.local, digest = %d, error = %e, "blob fetch failed");
                    publisher.send(Progress::Failed(Arc::new(e)));
                }
            }
            me.blobs.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        });
        Ok(BlobSource::Fetching(flight))
    }

    /// The size of a blob upstream, or `None` when it is stored here.
    pub async fn blob_head(&self, t: &Target, digest: &Digest, creds: &Credentials) -> Result<Option<u64>, Arc<Error>> {
        if self.registry.blob_size(&t.local, digest).await.is_ok() {
            self.confirm(t, creds, Probe::Blob(digest)).await?;
            return Ok(None);
        }
        let size = t.upstream.blob_head(&t.remote, digest, creds).await.map_err(Arc::new)?;
        self.mark_confirmed(t, creds);
        size.map(Some).ok_or_else(|| {
            Arc::new(Error::Upstream {
                upstream: t.upstream.label(),
                status: 200,
                message: "HEAD gave no Content-Length".into(),
            })
        })
    }

    /// Fetches a blob through an upload session (verified, then committed)
    /// while its readers take the bytes from memory.
    #[tracing::instrument(name = "mirror_fill_blob", skip_all, fields(upstream = %t.upstream.label(), repo = %t.local, digest = %d))]
    async fn fetch_blob(&self, t: &Target, d: &Digest, creds: &Credentials, out: &Publisher) -> Result<u64, Error> {
        let store = Error::from;
        if let Some(size) = self.registry.blob_stored(d).await.map_err(store)? {
            // Another repository brought these bytes. Link them only after the
            // upstream says this repository has the blob too.
            t.upstream.blob_head(&t.remote, d, creds).await?;
            self.registry.blob_link(&t.local, d).await.map_err(store)?;
            self.cache.blob_added(t.local.as_str(), d, size);
            out.send(Progress::Done { size });
            return Ok(size);
        }
        // Make room first (and finish any eviction under way), so the cache
        // stays near its bound while it fills.
        if self.cache.needs_eviction() {
            self.cache.evict().await;
        }
        let resp = t.upstream.blob_get(&t.remote, d, creds).await?;
        let declared = resp.content_length();
        if let Some(size) = declared {
            out.send(Progress::Streaming { size, written: 0 });
        }
        // What broke the body, in the mirror's terms (storage sees an io::Error).
        let broke: Arc<Mutex<Option<Error>>> = Arc::default();
        let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let body = {
            let (broke, received, out, upstream, d) =
                (broke.clone(), received.clone(), out.clone(), t.upstream.clone(), d.clone());
            resp.bytes_stream()
                .map(move |chunk| {
                    let fail = |e: Error| {
                        let text = e.to_string();
                        *broke.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        Err(std::io::Error::other(text))
                    };
                    let chunk = match chunk {
                        Ok(c) => c,
                        Err(e) => return fail(upstream.body_error(&e)),
                    };
                    let n = received.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
                    if let Some(size) = declared {
                        if n > size {
                            return fail(Error::Upstream {
                                upstream: upstream.label(),
                                status: 200,
                                message: format!("blob {d} is longer than its Content-Length {size}"),
                            });
                        }
                        out.chunk(size, chunk.clone());
                    }
                    Ok(chunk)
                })
                .boxed()
        };
        match self.registry.blob_ingest(&t.local, d, body).await {
            Ok(size) => {
                self.cache.blob_added(t.local.as_str(), d, size);
                Ok(size)
            }
            Err(e) => {
                if let Some(cause) = broke.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    return Err(cause);
                }
                let got = received.load(Ordering::Relaxed);
                if let Some(size) = declared.filter(|&size| size != got) {
                    return Err(Error::Unreachable {
                        upstream: t.upstream.label(),
                        message: format!("blob {d} ended after {got} of {size} bytes"),
                    });
                }
                Err(match e {
                    crate::registry::Error::DigestMismatch { expected, actual } => {
                        Error::DigestMismatch { upstream: t.upstream.label(), expected, actual }
                    }
                    e => store(e),
                })
            }
        }
    }
}
