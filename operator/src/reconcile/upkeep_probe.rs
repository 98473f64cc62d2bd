//! The last garbage collection and the quotas' use, for the status, as one
//! ready registry pod reports them on its debug port: `GET /debug/gc` (the
//! last collection, online or by the CronJob; kept in storage, so any pod
//! answers for all) and `GET /debug/quotas`. The same request as
//! [`super::pod_probe`]: pod IP, `debug` port, 3 s, a bounded body.
//!
//! Reading is best effort: a pod that cannot be reached or answers
//! something unexpected leaves the previous values in the status, and never
//! fails the reconcile.

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};
use serde::Deserialize;

use crate::crd::{LastCollection, QuotaUse, RegistryStatus};
use crate::names::{self, OwnerKind};

use super::pod_probe::{debug_addr, get_debug};

/// Largest `/debug/gc` body taken (one small JSON object).
const MAX_GC_BODY: usize = 16 * 1024;
/// Largest `/debug/quotas` body taken (at most 64 quotas).
const MAX_QUOTAS_BODY: usize = 64 * 1024;
/// Most entries of `status.quotas` (the CRD allows 64 quotas).
const MAX_QUOTAS: usize = 64;
/// Longest collection error kept in the status.
const MAX_ERROR: usize = 400;

/// What to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// Garbage collection is configured.
    pub gc: bool,
    /// Quotas are configured.
    pub quotas: bool,
}

/// What a pod said. `None`: not read (not wanted, no ready pod, or no usable answer).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpkeepReport {
    /// `Some(None)`: the pod says no collection has run yet (404).
    pub garbage_collection: Option<Option<LastCollection>>,
    /// The quotas' use.
    pub quotas: Option<Vec<QuotaUse>>,
}

/// `/debug/gc` as the registry writes it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GcWire {
    finished_at: String,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    blobs_deleted: u64,
    #[serde(default)]
    bytes_reclaimed: u64,
    #[serde(default)]
    manifests_deleted: u64,
    #[serde(default)]
    error: Option<String>,
}

/// One entry of `/debug/quotas`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QuotaWire {
    repositories: String,
    used_bytes: u64,
    limit_bytes: u64,
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn bounded(text: &str) -> String {
    let mut text: String = text.chars().filter(|c| !c.is_control()).collect();
    if text.len() > MAX_ERROR {
        let mut cut = MAX_ERROR;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// The answer to `GET /debug/gc`, if usable.
fn parse_gc(status: u16, body: &str) -> Option<Option<LastCollection>> {
    match status {
        404 => Some(None),
        200 => {
            let w: GcWire = serde_json::from_str(body).ok()?;
            Some(Some(LastCollection {
                finished_at: Some(bounded(&w.finished_at)),
                dry_run: w.dry_run,
                blobs_deleted: clamp(w.blobs_deleted),
                bytes_reclaimed: clamp(w.bytes_reclaimed),
                manifests_deleted: clamp(w.manifests_deleted),
                error: w.error.as_deref().map(bounded),
            }))
        }
        _ => None,
    }
}

/// The answer to `GET /debug/quotas`, if usable.
fn parse_quotas(status: u16, body: &str) -> Option<Vec<QuotaUse>> {
    if status != 200 {
        return None;
    }
    let list: Vec<QuotaWire> = serde_json::from_str(body).ok()?;
    Some(
        list.into_iter()
            .take(MAX_QUOTAS)
            .map(|q| QuotaUse {
                repositories: bounded(&q.repositories),
                used_bytes: clamp(q.used_bytes),
                limit_bytes: clamp(q.limit_bytes),
            })
            .collect(),
    )
}

/// The status fields: what was read, else what the status said before;
/// nothing for a feature that is not configured.
pub fn resolve(
    wanted: Wanted,
    report: UpkeepReport,
    previous: Option<&RegistryStatus>,
) -> (Option<LastCollection>, Vec<QuotaUse>) {
    let gc = if wanted.gc {
        report.garbage_collection.unwrap_or_else(|| previous.and_then(|p| p.garbage_collection.clone()))
    } else {
        None
    };
    let quotas = if wanted.quotas {
        report.quotas.unwrap_or_else(|| previous.map(|p| p.quotas.clone()).unwrap_or_default())
    } else {
        Vec::new()
    };
    (gc, quotas)
}

/// A registry pod that is ready and not going away.
fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.name == "registry" && c.ready))
}

/// Asks one ready pod of the resource for what `wanted` names.
pub async fn upkeep_report(
    client: &Client,
    namespace: &str,
    kind: OwnerKind,
    instance: &str,
    wanted: Wanted,
) -> UpkeepReport {
    if !wanted.gc && !wanted.quotas {
        return UpkeepReport::default();
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let Ok(list) = pods.list(&ListParams::default().labels(&names::children_selector(kind, instance))).await else {
        tracing::debug!("cannot list the registry pods to read the last collection and quota use");
        return UpkeepReport::default();
    };
    let Some(addr) = list.items.iter().filter(|p| is_ready(p)).find_map(debug_addr) else {
        return UpkeepReport::default();
    };
    let mut report = UpkeepReport::default();
    if wanted.gc {
        match get_debug(addr, "/debug/gc", MAX_GC_BODY).await {
            Ok((status, body)) => report.garbage_collection = parse_gc(status, &body),
            Err(e) => tracing::debug!(%addr, error = %e, "no answer from /debug/gc"),
        }
    }
    if wanted.quotas {
        match get_debug(addr, "/debug/quotas", MAX_QUOTAS_BODY).await {
            Ok((status, body)) => report.quotas = parse_quotas(status, &body),
            Err(e) => tracing::debug!(%addr, error = %e, "no answer from /debug/quotas"),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    const GC: &str = r#"{"finishedAt":"2026-11-30T22:00:00Z","dryRun":false,"blobsDeleted":12,"bytesReclaimed":3145728,"manifestsDeleted":2,"durationSeconds":1.5}"#;

    #[test]
    fn debug_answers_become_status_fields() {
        let last = parse_gc(200, GC).expect("read").expect("a collection");
        assert_eq!(last.finished_at.as_deref(), Some("2026-11-30T22:00:00Z"));
        assert_eq!((last.blobs_deleted, last.bytes_reclaimed, last.manifests_deleted), (12, 3_145_728, 2));
        assert_eq!(last.error, None);
        let failed = parse_gc(200, r#"{"finishedAt":"t","blobsDeleted":0,"bytesReclaimed":0,"manifestsDeleted":0,"durationSeconds":0,"error":"storage: timeout"}"#)
            .expect("read")
            .expect("a collection");
        assert_eq!(failed.error.as_deref(), Some("storage: timeout"));
        assert_eq!(parse_gc(404, r#"{"error":"no garbage collection has run yet"}"#), Some(None));
        assert_eq!(parse_gc(503, r#"{"error":"storage down"}"#), None, "unknown: keep what the status says");
        assert_eq!(parse_gc(200, "<html>"), None);

        let quotas = parse_quotas(200, r#"[{"repositories":"team-a/**","usedBytes":10,"limitBytes":53687091200}]"#)
            .expect("read");
        assert_eq!(
            quotas,
            [QuotaUse { repositories: "team-a/**".into(), used_bytes: 10, limit_bytes: 53_687_091_200 }]
        );
        assert_eq!(parse_quotas(404, "not found"), None);
        assert_eq!(parse_quotas(200, r#"{"repositories":"x"}"#), None);
        let huge = parse_quotas(200, r#"[{"repositories":"a","usedBytes":18446744073709551615,"limitBytes":1}]"#);
        assert_eq!(huge.expect("read")[0].used_bytes, i64::MAX);
    }

    #[test]
    fn a_failed_read_keeps_the_previous_values_and_unconfigured_features_clear() {
        let previous = RegistryStatus {
            garbage_collection: parse_gc(200, GC).expect("read"),
            quotas: vec![QuotaUse { repositories: "a/**".into(), used_bytes: 1, limit_bytes: 2 }],
            ..RegistryStatus::default()
        };
        let both = Wanted { gc: true, quotas: true };
        let (gc, quotas) = resolve(both, UpkeepReport::default(), Some(&previous));
        assert_eq!((gc, quotas), (previous.garbage_collection.clone(), previous.quotas.clone()));

        let fresh = UpkeepReport { garbage_collection: Some(None), quotas: Some(Vec::new()) };
        assert_eq!(resolve(both, fresh, Some(&previous)), (None, Vec::new()), "what the pod says wins");

        let none = Wanted { gc: false, quotas: false };
        assert_eq!(resolve(none, UpkeepReport::default(), Some(&previous)), (None, Vec::new()));
    }

    #[tokio::test]
    async fn get_debug_bounds_the_body() {
        let app = axum::Router::new()
            .route("/debug/gc", axum::routing::get(|| async { GC }))
            .route("/debug/quotas", axum::routing::get(|| async { "x".repeat(MAX_QUOTAS_BODY + 1) }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let (status, body) = get_debug(addr, "/debug/gc", MAX_GC_BODY).await.expect("answer");
        assert_eq!(parse_gc(status, &body).expect("read").expect("one").blobs_deleted, 12);
        assert!(get_debug(addr, "/debug/quotas", MAX_QUOTAS_BODY).await.is_err(), "an oversized body is refused");
        server.abort();
        let _ = server.await;
    }
}
