//! The debug listener (`http.debug.addr`): `/debug/health` checks storage,
//! `/debug/ready` answers once storage is usable (for Kubernetes probes;
//! its body says what is wrong when it is not), and Prometheus metrics at
//! `http.debug.prometheus.path`. `/debug/gc` gives the last garbage
//! collection's report (the operator shows it in the `Registry` status),
//! `/debug/quotas` each quota's use, as JSON.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::registry::Registry;

/// Storage health as the periodic check sees it.
pub struct Health {
    registry: Arc<Registry>,
    failures: AtomicU32,
    /// Why the registry is not ready (storage unusable), or `None` when it is.
    unready: std::sync::Mutex<Option<String>>,
    /// Consecutive failures that make the registry unhealthy; 0 means check on every request.
    threshold: u32,
}

impl Health {
    pub fn new(registry: Arc<Registry>, threshold: u32) -> Arc<Self> {
        Arc::new(Health {
            registry,
            failures: AtomicU32::new(0),
            unready: std::sync::Mutex::new(Some("storage has not been checked yet".into())),
            threshold,
        })
    }

    /// Checks that storage is usable every `interval`, forever, logging
    /// each change. An object store that is unreachable at start-up, refuses
    /// the credentials or lacks the bucket keeps the registry unready, not down.
    pub async fn watch_ready(self: Arc<Self>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            self.check_ready().await;
        }
    }

    /// Checks storage once and records (and logs, on a change) the answer.
    pub async fn check_ready(&self) {
        let now = self.registry.check_storage().await.err().map(|e| e.to_string());
        let mut unready = self.unready.lock().unwrap_or_else(|p| p.into_inner());
        if *unready != now {
            let storage = self.registry.storage_name();
            match &now {
                None => tracing::info!(storage, "storage is usable: ready"),
                Some(why) => tracing::error!(storage, reason = %why, "storage is not usable: not ready"),
            }
            *unready = now;
        }
    }

    /// Checks storage every `interval`, forever.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            match self.registry.check_storage().await {
                Ok(()) => self.failures.store(0, Ordering::Relaxed),
                Err(e) => {
                    let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(error = %e, consecutive = n, "storage health check failed");
                }
            }
        }
    }
}

pub fn router(health: Arc<Health>, metrics_path: Option<String>) -> Router {
    let mut r = Router::new()
        .route("/debug/health", get(health_check))
        .route("/debug/ready", get(ready))
        .route("/debug/gc", get(last_collection))
        .route("/debug/quotas", get(quotas));
    if let Some(path) = metrics_path {
        r = r.route(&path, get(metrics));
    }
    r.with_state(health)
}

async fn ready(State(h): State<Arc<Health>>) -> impl IntoResponse {
    match h.unready.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        None => (StatusCode::OK, "ok\n".to_string()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
    }
}

async fn health_check(State(h): State<Arc<Health>>) -> impl IntoResponse {
    let failing = if h.threshold == 0 {
        h.registry.check_storage().await.err().map(|e| e.to_string())
    } else if h.failures.load(Ordering::Relaxed) >= h.threshold {
        Some(format!("storage failed {} consecutive checks", h.failures.load(Ordering::Relaxed)))
    } else {
        None
    };
    match failing {
        None => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{}".to_string()),
        Some(msg) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ format!("storagedriver_{}", h.registry.storage_name()): msg }).to_string(),
        ),
    }
}

/// The last collection by any replica or the CLI; 404 before the first.
async fn last_collection(State(h): State<Arc<Health>>) -> impl IntoResponse {
    let json = [(header::CONTENT_TYPE, "application/json")];
    match h.registry.last_collection().await {
        Ok(Some(last)) => (StatusCode::OK, json, serde_json::to_string(&last).unwrap_or_default()),
        Ok(None) => (StatusCode::NOT_FOUND, json, r#"{"error":"no garbage collection has run yet"}"#.to_string()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, json, serde_json::json!({ "error": e.to_string() }).to_string()),
    }
}

/// `[{"repositories","usedBytes","limitBytes","blobs","computedAt"}]`, as this replica counts them.
async fn quotas(State(h): State<Arc<Health>>) -> impl IntoResponse {
    axum::Json(h.registry.quota_reports())
}

async fn metrics(State(h): State<Arc<Health>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        crate::metrics::render(h.registry.open_uploads()),
    )
}
