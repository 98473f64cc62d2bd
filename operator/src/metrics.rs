//! Reconcile metrics: runs, failures (by kind and error) and duration, in a
//! prefixed prometheus-client registry served at `/metrics`.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of runs and durations.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// Registry or RegistryMirror.
    pub kind: String,
}

/// Labels of failures.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// Registry or RegistryMirror.
    pub kind: String,
    /// The error's metric label (its variant name).
    pub error: String,
}

/// The operator's metrics.
#[derive(Clone)]
pub struct Metrics {
    runs: Family<KindLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    duration: Family<KindLabels, Histogram>,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        let runs = Family::<KindLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
        });
        let mut registry = Registry::with_prefix("wharf_operator");
        registry.register("reconcile_runs", "Reconciliations started", runs.clone());
        registry.register("reconcile_failures", "Reconciliations that failed", failures.clone());
        registry.register("reconcile_duration_seconds", "Time spent reconciling", duration.clone());
        Metrics { runs, failures, duration, registry: Arc::new(registry) }
    }
}

impl Metrics {
    /// Counts a run and returns a timer that records its duration when dropped, on every exit path.
    pub fn reconcile_started(&self, kind: &str) -> ReconcileTimer {
        let labels = KindLabels { kind: kind.to_string() };
        self.runs.get_or_create(&labels).inc();
        ReconcileTimer { start: Instant::now(), histogram: self.duration.get_or_create(&labels).clone() }
    }

    /// Counts a failure.
    pub fn reconcile_failed(&self, kind: &str, error: &str) {
        self.failures.get_or_create(&FailureLabels { kind: kind.to_string(), error: error.to_string() }).inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Records the elapsed time into the duration histogram when dropped.
pub struct ReconcileTimer {
    start: Instant,
    histogram: Histogram,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_records_on_drop() {
        let m = Metrics::default();
        {
            let _t = m.reconcile_started("Registry");
        }
        m.reconcile_failed("Registry", "SecretMissing");
        let text = m.encode().expect("encode");
        assert!(text.contains("wharf_operator_reconcile_runs_total{kind=\"Registry\"} 1"), "{text}");
        assert!(text.contains("wharf_operator_reconcile_duration_seconds_count{kind=\"Registry\"} 1"), "{text}");
        assert!(text.contains("error=\"SecretMissing\""), "{text}");
    }
}
