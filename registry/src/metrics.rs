//! Prometheus metrics: requests by route and status, bytes in and out, open
//! upload sessions and storage errors. Served on the debug address.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabel {
    quota: String,
}

/// Quota gauges, by the quota's repository pattern (registry/quota.rs).
static QUOTA_USED: LazyLock<Family<QuotaLabel, Gauge>> = LazyLock::new(Family::default);
static QUOTA_LIMIT: LazyLock<Family<QuotaLabel, Gauge>> = LazyLock::new(Family::default);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: String,
}

/// Notification delivery, by endpoint name (registry/events, notifications/).
#[derive(Default)]
struct NotificationMetrics {
    pending: Family<EndpointLabel, Gauge>,
    delivered: Family<EndpointLabel, Counter>,
    failed: Family<EndpointLabel, Counter>,
    dropped: Family<EndpointLabel, Counter>,
}

static NOTIFICATIONS: LazyLock<NotificationMetrics> = LazyLock::new(NotificationMetrics::default);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MirrorLabels {
    kind: &'static str,
    result: &'static str,
}

/// The pull-through cache's answers (mirror/): served from storage (hit)
/// or fetched from the upstream (miss), by manifest or blob.
static MIRROR: LazyLock<Family<MirrorLabels, Counter>> = LazyLock::new(Family::default);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabel, Histogram>,
    bytes_received: Counter,
    bytes_sent: Counter,
    upload_sessions: Gauge,
    storage_errors: Counter,
    gc: GcMetrics,
    retention_tags_deleted: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// The online collector's (`storage.gc`) work; the CLI's runs report on stdout.
#[derive(Default)]
struct GcMetrics {
    runs: Family<OutcomeLabel, Counter>,
    reclaimed_bytes: Counter,
    reclaimed_blobs: Counter,
    manifests_deleted: Counter,
    duration: Gauge<f64, std::sync::atomic::AtomicU64>,
    last_success: Gauge<f64, std::sync::atomic::AtomicU64>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("wharf_registry");
    registry.register(
        "quota_used_bytes",
        "Bytes of distinct blobs the repositories of a quota reference, as this replica counts them",
        QUOTA_USED.clone(),
    );
    registry.register("quota_limit_bytes", "A quota's limit", QUOTA_LIMIT.clone());
    let n = &*NOTIFICATIONS;
    registry.register(
        "notifications_pending",
        "Events queued in storage for an endpoint, not yet delivered (as this replica last saw the queue)",
        n.pending.clone(),
    );
    registry.register("notifications_delivered", "Events an endpoint accepted", n.delivered.clone());
    registry.register("notifications_failed", "Events in delivery attempts that failed", n.failed.clone());
    registry.register(
        "notifications_dropped",
        "Events dropped unsent because the endpoint's queue passed maxpending",
        n.dropped.clone(),
    );
    registry.register(
        "mirror_requests",
        "Pull-through cache answers by kind (manifest, blob) and result (hit: from storage, miss: fetched upstream)",
        MIRROR.clone(),
    );
    let requests = Family::<RequestLabels, Counter>::default();
    let duration =
        Family::<RouteLabel, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 4.0, 10)));
    let bytes_received = Counter::default();
    let bytes_sent = Counter::default();
    let upload_sessions = Gauge::default();
    let storage_errors = Counter::default();
    let retention_tags_deleted = Counter::default();
    registry.register("http_requests", "HTTP requests by route, method and status", requests.clone());
    registry.register("http_request_duration_seconds", "Time to produce response headers, by route", duration.clone());
    registry.register("bytes_received", "Request body bytes received", bytes_received.clone());
    registry.register("bytes_sent", "Response body bytes sent (by Content-Length)", bytes_sent.clone());
    registry.register("upload_sessions", "Upload sessions this process is tracking", upload_sessions.clone());
    registry.register(
        "storage_errors",
        "Storage operations that failed with an internal error",
        storage_errors.clone(),
    );
    let gc = GcMetrics::default();
    registry.register("gc_runs", "Online garbage collections by outcome (ok, failed)", gc.runs.clone());
    registry.register(
        "gc_reclaimed_bytes",
        "Bytes of blobs deleted by online garbage collection",
        gc.reclaimed_bytes.clone(),
    );
    registry.register("gc_reclaimed_blobs", "Blobs deleted by online garbage collection", gc.reclaimed_blobs.clone());
    registry.register(
        "gc_manifests_deleted",
        "Untagged manifests deleted by online garbage collection",
        gc.manifests_deleted.clone(),
    );
    registry.register("gc_duration_seconds", "How long the last online garbage collection took", gc.duration.clone());
    registry.register(
        "gc_last_success_timestamp_seconds",
        "When the last online garbage collection finished without error (Unix time)",
        gc.last_success.clone(),
    );
    registry.register(
        "retention_tags_deleted",
        "Tags deleted by retention policies (storage.retention)",
        retention_tags_deleted.clone(),
    );
    Metrics {
        registry,
        requests,
        duration,
        bytes_received,
        bytes_sent,
        upload_sessions,
        storage_errors,
        gc,
        retention_tags_deleted,
    }
});

pub fn request(route: &'static str, method: &str, status: u16, elapsed: Duration) {
    let m = &*METRICS;
    m.requests.get_or_create(&RequestLabels { route, method: method.to_string(), status }).inc();
    m.duration.get_or_create(&RouteLabel { route }).observe(elapsed.as_secs_f64());
}

/// A quota's usage (`quota` is its repository pattern).
pub fn quota_used(quota: &str, bytes: u64) {
    QUOTA_USED.get_or_create(&QuotaLabel { quota: quota.to_string() }).set(clamp(bytes));
}

pub fn quota_limit(quota: &str, bytes: u64) {
    QUOTA_LIMIT.get_or_create(&QuotaLabel { quota: quota.to_string() }).set(clamp(bytes));
}

/// Gauges are i64; no store holds 8 EiB, but a limit may say so.
fn clamp(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

fn endpoint(name: &str) -> EndpointLabel {
    EndpointLabel { endpoint: name.to_string() }
}

/// What a mirror request was served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorKind {
    Manifest,
    Blob,
}

pub fn mirror_served(kind: MirrorKind, hit: bool) {
    let kind = match kind {
        MirrorKind::Manifest => "manifest",
        MirrorKind::Blob => "blob",
    };
    MIRROR.get_or_create(&MirrorLabels { kind, result: if hit { "hit" } else { "miss" } }).inc();
}

/// This replica's mirror hits and misses so far, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MirrorCounts {
    pub manifest_hits: u64,
    pub manifest_misses: u64,
    pub blob_hits: u64,
    pub blob_misses: u64,
}

pub fn mirror_counts() -> MirrorCounts {
    let get = |kind, result| MIRROR.get_or_create(&MirrorLabels { kind, result }).get();
    MirrorCounts {
        manifest_hits: get("manifest", "hit"),
        manifest_misses: get("manifest", "miss"),
        blob_hits: get("blob", "hit"),
        blob_misses: get("blob", "miss"),
    }
}

/// Events written to an endpoint's queue by this replica.
pub fn notifications_queued(name: &str, n: usize) {
    NOTIFICATIONS.pending.get_or_create(&endpoint(name)).inc_by(n as i64);
}

/// The endpoint's queue length, as the replica delivering it listed it.
pub fn notifications_pending(name: &str, n: u64) {
    NOTIFICATIONS.pending.get_or_create(&endpoint(name)).set(clamp(n));
}

pub fn notifications_delivered(name: &str, n: usize) {
    NOTIFICATIONS.delivered.get_or_create(&endpoint(name)).inc_by(n as u64);
    NOTIFICATIONS.pending.get_or_create(&endpoint(name)).dec_by(n as i64);
}

pub fn notifications_failed(name: &str, n: usize) {
    NOTIFICATIONS.failed.get_or_create(&endpoint(name)).inc_by(n as u64);
}

pub fn notifications_dropped(name: &str, n: usize) {
    NOTIFICATIONS.dropped.get_or_create(&endpoint(name)).inc_by(n as u64);
    NOTIFICATIONS.pending.get_or_create(&endpoint(name)).dec_by(n as i64);
}

pub fn bytes_received(n: usize) {
    METRICS.bytes_received.inc_by(n as u64);
}

pub fn bytes_sent(n: u64) {
    METRICS.bytes_sent.inc_by(n);
}

pub fn storage_error() {
    METRICS.storage_errors.inc();
}

/// One online collection finished: what it reclaimed, or that it failed.
pub fn gc_finished(reclaimed: Option<(u64, u64, u64)>, elapsed: Duration) {
    let gc = &METRICS.gc;
    gc.duration.set(elapsed.as_secs_f64());
    match reclaimed {
        Some((bytes, blobs, manifests)) => {
            gc.runs.get_or_create(&OutcomeLabel { outcome: "ok" }).inc();
            gc.reclaimed_bytes.inc_by(bytes);
            gc.reclaimed_blobs.inc_by(blobs);
            gc.manifests_deleted.inc_by(manifests);
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            gc.last_success.set(now.as_secs_f64());
        }
        None => {
            gc.runs.get_or_create(&OutcomeLabel { outcome: "failed" }).inc();
        }
    }
}

pub fn retention_tags_deleted(n: usize) {
    METRICS.retention_tags_deleted.inc_by(n as u64);
}

/// The text exposition, with the upload gauge read at scrape time.
pub fn render(open_uploads: usize) -> String {
    let m = &*METRICS;
    m.upload_sessions.set(open_uploads as i64);
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &m.registry).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn retention_deletions_are_exported() {
        super::retention_tags_deleted(3);
        let text = super::render(0);
        assert!(text.contains("wharf_registry_retention_tags_deleted_total 3"), "{text}");
    }
}
