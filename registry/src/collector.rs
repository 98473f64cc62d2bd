//! The online collector (`storage.gc.enabled`): every `interval`, the
//! replica that holds the lease applies the retention policies
//! (`storage.retention`, when set) and then collects garbage, while the
//! registry keeps taking pushes. What makes that safe is in `registry::gc`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::gc::Gc;
use crate::config::retention::Retention;
use crate::metrics;
use crate::registry::Registry;
use crate::registry::gc::LastCollection;

/// Runs until the process stops.
pub async fn run(registry: Arc<Registry>, gc: Gc, retention: Option<Retention>) {
    let holder = uuid::Uuid::new_v4().to_string();
    // The first pass after one interval: replicas starting together (a
    // rollout) do not all walk the store at once, on top of their start-up.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + gc.interval.0, gc.interval.0);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match registry.take_gc_lease(&holder, gc.interval.0 + Duration::from_secs(5)).await {
            Ok(true) => {
                if let Some(r) = &retention {
                    retain(&registry, r).await;
                }
                collect(&registry, &gc).await
            }
            Ok(false) => tracing::debug!("another replica holds the collection lease"),
            Err(e) => tracing::warn!(error = %e, "reading the collection lease"),
        }
    }
}

/// Deletes the tags the policies do not keep, so this pass collects their blobs.
async fn retain(registry: &Registry, retention: &Retention) {
    match registry.apply_retention(retention, false).await {
        Ok(report) => tracing::info!(
            dry_run = report.dry_run,
            tags = report.tags_deleted.len(),
            manifests = report.manifests_deleted.len(),
            "retention finished"
        ),
        Err(e) => tracing::warn!(error = %e, "retention failed"),
    }
}

async fn collect(registry: &Registry, gc: &Gc) {
    tracing::info!(dry_run = gc.dryrun, "garbage collection started");
    let started = Instant::now();
    let outcome = registry.garbage_collect(gc.delay.0, gc.dryrun, gc.deleteuntagged).await;
    let elapsed = started.elapsed();
    match &outcome {
        Ok(report) => {
            tracing::info!(
                dry_run = gc.dryrun,
                blobs = report.deleted.len(),
                bytes = report.freed_bytes,
                manifests = report.untagged_deleted.len(),
                spared_referenced = report.spared_referenced,
                elapsed_ms = elapsed.as_millis() as u64,
                "garbage collection finished"
            );
            let counts = (report.freed_bytes, report.deleted.len() as u64, report.untagged_deleted.len() as u64);
            metrics::gc_finished(Some(if gc.dryrun { (0, 0, 0) } else { counts }), elapsed);
        }
        Err(e) => {
            tracing::warn!(error = %e, "garbage collection failed");
            metrics::gc_finished(None, elapsed);
        }
    }
    registry.record_collection(&LastCollection::of(&outcome, gc.dryrun, elapsed)).await;
    // Freed bytes show in quota use now rather than at the next recount.
    if outcome.is_ok()
        && !gc.dryrun
        && let Err(e) = registry.recompute_quotas().await
    {
        tracing::warn!(error = %e, "recounting quota use after the collection");
    }
}
