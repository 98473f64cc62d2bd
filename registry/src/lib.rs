//! wharf-registry: an OCI Distribution registry that is a drop-in for
//! registry:2 (same config.yml, same on-disk layout).
//!
//! Layers, and the only direction calls go:
//! - [`api`]: HTTP routes and the spec's errors; calls `registry`.
//! - [`registry`]: content rules and commit order; calls `storage`.
//! - [`storage`]: registry:2's layout over a key/bytes [`storage::Backend`].
//!
//! [`mirror`] (the pull-through cache) sits beside `registry`: `api::mirror`
//! calls it for mirrored repositories, and it reads and fills the cache
//! through `registry`'s operations.
//!
//! [`oci`] (digests, repository names, references) is the leaf both
//! `registry` and `storage` speak in.
//!
//! Around them: [`config`] (config.yml and `REGISTRY_*`), [`server`]
//! (listener and graceful shutdown), [`debug`] (health, readiness,
//! metrics), [`metrics`] and [`telemetry`].

pub mod api;
pub mod auth;
pub mod collector;
pub mod config;
pub mod debug;
pub mod metrics;
pub mod mirror;
pub mod notifications;
pub mod oci;
pub mod registry;
pub mod server;
pub mod storage;
pub mod telemetry;
pub mod tls;
pub mod ui;

use std::sync::Arc;

use anyhow::Context as _;
use axum::http::{HeaderName, HeaderValue};

use config::Config;
use registry::{Options, Registry};

/// The registry and its HTTP router, built from a validated config.
pub struct App {
    pub registry: Arc<Registry>,
    pub router: axum::Router,
}

/// reqwest 0.13 (the S3 client) uses rustls with the process's provider:
/// ring, as everywhere else in this binary. Idempotent.
pub fn install_crypto_provider() {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
}

pub fn build(config: &Config) -> anyhow::Result<App> {
    install_crypto_provider();
    let backend: Arc<dyn storage::Backend> = match &config.storage.s3 {
        Some(s3) => Arc::new(storage::s3::S3::new(s3).map_err(anyhow::Error::msg)?),
        None => {
            let root = config.root_directory();
            std::fs::create_dir_all(&root).with_context(|| format!("creating storage root {root}"))?;
            Arc::new(storage::fs::Filesystem::new(root))
        }
    };
    let backend: Arc<dyn storage::Backend> = Arc::new(storage::instrumented::Instrumented(backend));
    let upload_secret = match &config.http.secret {
        Some(s) if !s.is_empty() => s.as_bytes().to_vec(),
        _ => {
            tracing::warn!(
                "http.secret is not set: upload sessions cannot move between replicas; set it when running more than one"
            );
            rand::random::<[u8; 32]>().to_vec()
        }
    };
    let registry = Arc::new(Registry::new(
        backend,
        Options {
            quotas: config
                .storage
                .quotas
                .iter()
                .map(|q| registry::quota::QuotaRule { repositories: q.repositories.0.clone(), limit: q.limit.bytes })
                .collect(),
            delete_enabled: config.delete_enabled(),
            read_only: config.read_only(),
            upload_secret,
            redirect: !config.storage.redirect.is_some_and(|r| r.disable),
            record_pulls: config.storage.retention.is_some(),
            search_refresh: config
                .search
                .as_ref()
                .and_then(|s| s.refresh)
                .map_or(registry::search::DEFAULT_REFRESH, |d| d.0),
        },
    ));
    // Notification events (`notifications`), queued in storage.
    if let Some(n) = &config.notifications
        && let Some(events) = registry::events::Emitter::from_config(n, notifications::source(&config.listen_addr()))
    {
        registry.set_events(events);
    }
    let mut headers = Vec::new();
    for (name, values) in &config.http.headers {
        let name = HeaderName::try_from(name.as_str())
            .with_context(|| format!("http.headers: `{name}` is not a header name"))?;
        for v in values {
            let value =
                HeaderValue::try_from(v.as_str()).with_context(|| format!("http.headers.{name}: invalid value"))?;
            headers.push((name.clone(), value));
        }
    }
    let auth = auth::Auth::from_config(config.auth.as_ref()).map_err(anyhow::Error::msg)?;
    // The pull-through cache (issue 4).
    let mirror = match &config.proxy {
        Some(p) => {
            let mirror = Arc::new(mirror::Mirror::from_config(p, registry.clone()).map_err(anyhow::Error::msg)?);
            mirror.spawn_maintenance();
            Some(mirror)
        }
        None => None,
    };
    let state = Arc::new(api::AppState {
        registry: registry.clone(),
        auth,
        prefix: config.http.prefix.clone().unwrap_or_default().trim_end_matches('/').to_string(),
        host: config.http.host.clone(),
        relative_urls: config.http.relativeurls,
        tls: config.http.tls.is_some(),
        headers,
        mirror,
        trusted_proxies: api::forwarded::TrustedProxies::parse(&config.http.trustedproxies)
            .map_err(|e| anyhow::anyhow!("http.trustedproxies: {e}"))?,
    });
    let mut router = api::router(state.clone());
    if let Some(u) = config.ui.as_ref().filter(|u| u.enabled) {
        router = router.merge(ui::router(state, &u.path));
    }
    Ok(App { registry, router })
}
