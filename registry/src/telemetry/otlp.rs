//! OTLP trace export, as distribution v3 has it, but off unless asked for:
//! on when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//! is set (and neither `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none`).
//! Off means no exporter, no thread and no layer: spans cost what the log
//! filter makes them cost.
//!
//! Spans leave as OTLP http/protobuf, batched on the SDK's own thread (hence
//! reqwest's blocking client: that thread has no tokio runtime). The SDK reads
//! the other standard variables itself: `OTEL_EXPORTER_OTLP_HEADERS`,
//! `_TIMEOUT`, `_COMPRESSION`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`,
//! `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME`.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use axum::http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

/// Whether spans are exported (a layer was built): requests then continue a
/// caller's trace.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether the environment asks for OTLP export (`env` reads a variable).
pub fn requested(env: impl Fn(&str) -> Option<String>) -> bool {
    let set = |k: &str| env(k).is_some_and(|v| !v.trim().is_empty());
    let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// The exporting tracer provider when the environment asks for one.
/// `service` names this program unless `OTEL_SERVICE_NAME` does.
pub fn from_env(service: &'static str) -> anyhow::Result<Option<SdkTracerProvider>> {
    if !requested(|k| std::env::var(k).ok()) {
        return Ok(None);
    }
    if let Ok(p) =
        std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        && p.trim() != "http/protobuf"
    {
        anyhow::bail!("OTEL_EXPORTER_OTLP_PROTOCOL={p}: only http/protobuf is supported");
    }
    // The blocking client builds its rustls config from the process's provider.
    crate::install_crypto_provider();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .context("OTEL_EXPORTER_OTLP_*: cannot build the OTLP trace exporter")?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service);
    }
    Ok(Some(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build()))
}

/// The layer that turns `tracing` spans into OpenTelemetry spans. It has its
/// own filter, independent of `log.level`: INFO spans from everywhere (the
/// request, the registry operation), DEBUG ones from `crate_target` (the
/// storage calls); TRACE ones never (per-chunk work).
pub fn layer<S>(provider: &SdkTracerProvider, crate_target: &'static str) -> impl Layer<S> + use<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    EXPORTING.store(true, Ordering::Relaxed);
    let filter = Targets::new().with_default(Level::INFO).with_target(crate_target, Level::DEBUG);
    tracing_opentelemetry::layer().with_tracer(provider.tracer(crate_target)).with_filter(filter)
}

/// Makes a request's span continue the trace that its W3C `traceparent`
/// header names (a tracing proxy's or client's), as distribution v3 does.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    if EXPORTING.load(Ordering::Relaxed) && headers.contains_key("traceparent") {
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        let _ = span.set_parent(parent);
    }
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Flushes what is still queued; called once serving has stopped.
pub fn shutdown(provider: Option<SdkTracerProvider>) {
    if let Some(p) = provider
        && let Err(e) = p.shutdown()
    {
        tracing::warn!(error = %e, "flushing the OTLP trace exporter");
    }
}

#[cfg(test)]
mod tests {
    use super::requested;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn on_only_with_an_endpoint() {
        assert!(!requested(env(&[])));
        assert!(!requested(env(&[("OTEL_SERVICE_NAME", "x"), ("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])));
        assert!(requested(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")])));
        assert!(requested(env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces")])));
        let on = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        assert!(!requested(env(&[on, ("OTEL_SDK_DISABLED", "true")])));
        assert!(!requested(env(&[on, ("OTEL_TRACES_EXPORTER", "none")])));
        assert!(requested(env(&[on, ("OTEL_TRACES_EXPORTER", "otlp")])));
    }
}
