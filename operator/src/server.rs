//! The operator's HTTP endpoints: `/healthz`, `/readyz` and `/metrics`.
//!
//! `serve(listener, state, shutdown)` takes a bound listener, so tests bind port 0.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// What the endpoints report.
#[derive(Clone)]
pub struct Health {
    /// The metrics registry.
    pub metrics: Metrics,
    /// Set once the operator has started (CRDs found); readiness follows it.
    pub ready: Arc<AtomicBool>,
    /// Whether this replica currently leads (exported for debugging).
    pub leader: Arc<AtomicBool>,
}

impl Health {
    /// Not ready, not leading.
    pub fn new(metrics: Metrics) -> Self {
        Health { metrics, ready: Arc::new(AtomicBool::new(false)), leader: Arc::new(AtomicBool::new(false)) }
    }
}

/// The router.
pub fn router(state: Health) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(h): State<Health>) -> impl IntoResponse {
    if h.ready.load(Ordering::Relaxed) {
        let role = if h.leader.load(Ordering::Relaxed) { "leader" } else { "standby" };
        (StatusCode::OK, format!("ok ({role})"))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting".to_string())
    }
}

async fn metrics(State(h): State<Health>) -> impl IntoResponse {
    match h.metrics.encode() {
        Ok(body) => (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test]
    async fn health_ready_and_metrics() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let health = Health::new(Metrics::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, health.clone(), async {
            let _ = rx.await;
        }));
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        health.ready.store(true, Ordering::Relaxed);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        drop(health.metrics.reconcile_started("Registry"));
        let metrics = get(addr, "/metrics").await;
        assert!(metrics.contains("wharf_operator_reconcile_runs"), "{metrics}");
        let _ = tx.send(());
        server.await.expect("join").expect("serve");
    }
}
