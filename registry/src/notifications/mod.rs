//! Delivery of queued notification events (`notifications.endpoints`).
//!
//! One task per enabled endpoint. The replica holding the endpoint's lease
//! (best effort, as the collector's) lists the queue once per round and
//! sends the batches oldest first, consecutive ones together (up to 100
//! events an envelope), removing a request's batches in one bulk delete
//! once the endpoint accepted it: at least once, in queue order (so in
//! order per repository). A failure retries the
//! same batch after `backoff`; past `threshold` failures in a row the wait
//! doubles each time, up to 32 × `backoff` (at most 5 minutes, or `backoff`
//! if that is longer). Past `maxpending` events the oldest batches are
//! dropped, with a metric and a log line.

mod send;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::config::notifications::{Endpoint, Notifications};
use crate::metrics;
use crate::registry::Registry;
use crate::registry::events::{QueuedBatch, Source};

pub use send::Sender;

/// How long a deliverer's lease lasts, and how often it is renewed.
const LEASE_TTL: Duration = Duration::from_secs(10);
const LEASE_RENEW: Duration = Duration::from_secs(3);
/// How often an idle deliverer looks for batches other replicas wrote (its
/// own replica's wake it at once): one listing per endpoint per 2 s on S3.
const POLL: Duration = Duration::from_secs(2);

/// The `source` of this process's events: `host:port` and an instance id.
pub fn source(listen_addr: &str) -> Source {
    let port = listen_addr.rsplit(':').next().unwrap_or("5000");
    Source { addr: format!("{}:{port}", hostname()), instance_id: uuid::Uuid::new_v4().to_string() }
}

/// How this replica names itself in delivery leases: a restarted process
/// on the same host and address takes its predecessor's lease at once.
pub fn holder(listen_addr: &str) -> String {
    format!("{}/{listen_addr}", hostname())
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()))
        .unwrap_or_else(|| "localhost".to_string())
}

/// Starts a deliverer for every enabled endpoint. `holder` names this
/// replica in the leases.
pub fn spawn(registry: Arc<Registry>, config: &Notifications, holder: String) -> anyhow::Result<()> {
    let Some(events) = registry.events() else { return Ok(()) };
    let source = events_source_name(config);
    for ep in config.enabled() {
        let sender = Sender::new(ep, source.clone())?;
        let wake = events.wakeup(&ep.name).unwrap_or_default();
        tokio::spawn(deliver(registry.clone(), ep.clone(), sender, wake, holder.clone()));
    }
    Ok(())
}

/// CloudEvents' `source`: stable for the registry, not per process.
fn events_source_name(_config: &Notifications) -> String {
    format!("wharf-registry/{}", hostname())
}

/// How long to wait after `failures` failed attempts in a row.
pub fn retry_delay(ep: &Endpoint, failures: u32) -> Duration {
    let base = ep.backoff();
    if failures < ep.threshold() {
        return base;
    }
    let doublings = (failures - ep.threshold() + 1).min(5);
    let cap = base.max((base * 32).min(Duration::from_secs(300)));
    (base * (1u32 << doublings)).min(cap)
}

async fn deliver(registry: Arc<Registry>, ep: Endpoint, sender: Sender, wake: Arc<Notify>, holder: String) {
    let name = ep.name.as_str();
    let mut failures: u32 = 0;
    let mut leased_at: Option<Instant> = None;
    loop {
        if leased_at.is_none_or(|t| t.elapsed() >= LEASE_RENEW) {
            match registry.take_notification_lease(name, &holder, LEASE_TTL).await {
                Ok(true) => leased_at = Some(Instant::now()),
                Ok(false) => {
                    leased_at = None;
                    tracing::debug!(endpoint = name, "another replica delivers this endpoint's events");
                    tokio::time::sleep(LEASE_RENEW).await;
                    continue;
                }
                Err(e) => {
                    leased_at = None;
                    tracing::warn!(endpoint = name, error = %e, "reading the notification lease");
                    tokio::time::sleep(LEASE_RENEW).await;
                    continue;
                }
            }
        }
        let batches = match registry.notification_queue(name).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(endpoint = name, error = %e, "listing the notification queue");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        let batches = enforce_bound(&registry, &ep, batches).await;
        metrics::notifications_pending(name, batches.iter().map(|b| b.count as u64).sum());
        if batches.is_empty() {
            let _ = tokio::time::timeout(POLL, wake.notified()).await;
            continue;
        }
        for chunk in chunks(&batches) {
            let count: usize = chunk.iter().map(|b| b.count).sum();
            match send_batches(&registry, &ep, &sender, chunk).await {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(endpoint = name, failures, "notification endpoint accepts events again");
                    }
                    failures = 0;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    metrics::notifications_failed(name, count);
                    let wait = retry_delay(&ep, failures);
                    tracing::warn!(endpoint = name, error = %e, failures, retry_in_ms = wait.as_millis() as u64,
                        "notification delivery failed");
                    tokio::time::sleep(wait).await;
                    break;
                }
            }
            if leased_at.is_none_or(|t| t.elapsed() >= LEASE_RENEW) {
                break;
            }
        }
    }
}

/// Most events sent in one request (registry:2's envelope holds a list).
const MAX_EVENTS_PER_REQUEST: usize = 100;

/// Consecutive batches, up to [`MAX_EVENTS_PER_REQUEST`] events each.
fn chunks(batches: &[QueuedBatch]) -> Vec<&[QueuedBatch]> {
    let mut out = Vec::new();
    let (mut start, mut events) = (0, 0);
    for (i, b) in batches.iter().enumerate() {
        if i > start && events + b.count > MAX_EVENTS_PER_REQUEST {
            out.push(&batches[start..i]);
            (start, events) = (i, 0);
        }
        events += b.count;
    }
    if start < batches.len() {
        out.push(&batches[start..]);
    }
    out
}

/// Sends consecutive batches in one request and removes them once the
/// endpoint accepted it. Batches already gone count as done.
async fn send_batches(
    registry: &Registry,
    ep: &Endpoint,
    sender: &Sender,
    batches: &[QueuedBatch],
) -> Result<(), String> {
    let mut events = Vec::new();
    for b in batches {
        match registry.notification_batch(&ep.name, b).await {
            Ok(Some(e)) => events.extend(e),
            Ok(None) => {}
            Err(e) => return Err(format!("reading the queue: {e}")),
        }
    }
    if !events.is_empty() {
        sender.send(&events).await?;
        metrics::notifications_delivered(&ep.name, events.len());
    }
    registry.notifications_done(&ep.name, batches).await.map_err(|e| format!("removing delivered batches: {e}"))
}

/// Drops the oldest batches while the queue holds more than `maxpending`
/// events; returns what is left.
async fn enforce_bound(registry: &Registry, ep: &Endpoint, batches: Vec<QueuedBatch>) -> Vec<QueuedBatch> {
    let mut total: u64 = batches.iter().map(|b| b.count as u64).sum();
    let max = ep.max_pending();
    if total <= max {
        return batches;
    }
    // The oldest batches that bring the queue down to the bound.
    let mut cut = 0;
    while total > max && cut < batches.len() {
        total -= batches[cut].count as u64;
        cut += 1;
    }
    if let Err(e) = registry.notifications_done(&ep.name, &batches[..cut]).await {
        tracing::warn!(endpoint = %ep.name, error = %e, "dropping old notification batches");
        return batches;
    }
    let dropped: usize = batches[..cut].iter().map(|b| b.count).sum();
    let left = batches[cut..].to_vec();
    if dropped > 0 {
        metrics::notifications_dropped(&ep.name, dropped);
        tracing::warn!(
            endpoint = %ep.name,
            dropped,
            maxpending = max,
            "notification queue is full: dropped the oldest events unsent"
        );
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_past_the_threshold_and_is_capped() {
        let ep = Endpoint {
            threshold: Some(2),
            backoff: Some(crate::config::GoDuration(Duration::from_secs(1))),
            ..Default::default()
        };
        let waits: Vec<u64> = (1..=9).map(|f| retry_delay(&ep, f).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 32, 32, 32]);
    }

    #[test]
    fn requests_take_consecutive_batches_up_to_the_limit() {
        let b = |count| QueuedBatch { name: String::new(), count };
        let batches = vec![b(60), b(30), b(20), b(150), b(1)];
        let sizes: Vec<usize> = chunks(&batches).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![2, 1, 1, 1]);
        assert!(chunks(&[]).is_empty());
    }
}
