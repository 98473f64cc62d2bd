//! Logging: JSON lines on stderr, filtered by `RUST_LOG` (default `info`).
//! Spans also go to an OTLP collector when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, as the registry does it (see
//! wharf-registry's telemetry/otlp.rs); off otherwise.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Installs the global subscriber. `json: false` gives human-readable lines.
/// Returns the OTLP exporter when one is configured: hand it to [`shutdown`].
pub fn init(json: bool) -> anyhow::Result<Option<SdkTracerProvider>> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube=warn"));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = if json { lines.json().flatten_event(true).boxed() } else { lines.boxed() };
    let provider = otlp_provider()?;
    // Reconcile spans (INFO, kube's and ours) and the operator's DEBUG ones.
    let spans = provider.as_ref().map(|p| {
        let targets =
            Targets::new().with_default(tracing::Level::INFO).with_target("wharf_operator", tracing::Level::DEBUG);
        tracing_opentelemetry::layer().with_tracer(p.tracer("wharf_operator")).with_filter(targets)
    });
    let base = tracing_subscriber::registry().with(lines.with_filter(filter));
    // Not `.with(Option<Layer>)`: a `None` layer calls every callsite always
    // interesting, so the filtered-out TRACE spans of kube, hyper and rustls
    // would all be built.
    let installed = match spans {
        Some(spans) => base.with(spans).try_init(),
        None => base.try_init(),
    };
    if let Err(e) = installed {
        eprintln!("wharf-operator: logging already initialised: {e}");
    }
    Ok(provider)
}

fn otlp_provider() -> anyhow::Result<Option<SdkTracerProvider>> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let off = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
    if off || (var("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() && var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()) {
        return Ok(None);
    }
    // reqwest (the exporter's client) takes rustls's process-wide provider: ring, as kube's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let name = var("OTEL_SERVICE_NAME").unwrap_or_else(|| "wharf-operator".into());
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(name).build();
    Ok(Some(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build()))
}

/// Flushes the spans still queued (a blocking call; the process is ending).
pub fn shutdown(provider: Option<SdkTracerProvider>) {
    if let Some(Err(e)) = provider.map(|p| p.shutdown()) {
        eprintln!("wharf-operator: flushing the OTLP trace exporter: {e}");
    }
}
