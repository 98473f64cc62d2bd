//! Logging as registry:2 does it: `log.level`, `log.formatter` (text in
//! logrus style, or JSON) and `log.fields` added to every line. Spans go to
//! an OTLP collector when one is configured ([`otlp`]).

pub mod otlp;
mod span_log;

use std::fmt;

use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{FilterExt as _, LevelFilter, filter_fn};
use tracing_subscriber::fmt::format::{FmtSpan, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{Log, LogFormatter, LogLevel};

struct Format {
    json: bool,
    fields: Map<String, Value>,
}

/// An event's fields, or a span's kept until it closes (`span_log`).
#[derive(Default)]
struct Collect(Map<String, Value>);

impl Visit for Collect {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_string(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), value.into());
    }
}

impl<S, N> FormatEvent<S, N> for Format
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut c = Collect::default();
        event.record(&mut c);
        let mut msg = c.0.remove("message").unwrap_or(Value::String(String::new()));
        // Span events come only at debug (see `init`): a span closed.
        if event.metadata().is_span() {
            c = span_log::closed(ctx, event, c);
            msg = Value::String("span closed".into());
        }
        let time =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let level = event.metadata().level().as_str().to_lowercase();
        if self.json {
            let mut line = Map::new();
            line.insert("time".into(), time.into());
            line.insert("level".into(), level.into());
            line.insert("msg".into(), msg);
            for (k, v) in self.fields.iter().chain(c.0.iter()) {
                line.insert(k.clone(), v.clone());
            }
            writeln!(w, "{}", Value::Object(line))
        } else {
            let text = |v: &Value| match v {
                Value::String(s) if s.is_empty() || s.contains([' ', '"', '=']) => format!("{s:?}"),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            write!(
                w,
                "time=\"{time}\" level={level} msg={}",
                text(&Value::String(msg.as_str().unwrap_or_default().to_string()))
            )?;
            for (k, v) in self.fields.iter().chain(c.0.iter()) {
                write!(w, " {k}={}", text(v))?;
            }
            writeln!(w)
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` overrides `log.level` when set.
/// Returns the OTLP exporter when `OTEL_EXPORTER_OTLP_*ENDPOINT` turned it on
/// (hand it to [`otlp::shutdown`] when serving stops).
pub fn init(log: &Log) -> anyhow::Result<Option<SdkTracerProvider>> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter(log));
    let provider = otlp::from_env("wharf-registry")?;
    let _ = dispatch(log, filter, provider.as_ref()).try_init();
    Ok(provider)
}

/// `log.level` for wharf, and only warnings from the HTTP and TLS stacks.
fn default_filter(log: &Log) -> EnvFilter {
    let level = match log.level.unwrap_or(LogLevel::Info) {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
    };
    EnvFilter::new(format!("{level},h2=warn,hyper=warn,rustls=warn"))
}

/// The subscriber: the log lines, and the OTLP layer when there is one.
fn dispatch(log: &Log, filter: EnvFilter, provider: Option<&SdkTracerProvider>) -> Dispatch {
    let fields = log.fields.iter().map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null))).collect();
    let format = Format { json: log.formatter == Some(LogFormatter::Json), fields };
    // Where DEBUG is logged, so is every span's time when it closes.
    let span_times = filter.max_level_hint().is_some_and(|l| l >= LevelFilter::DEBUG);
    // Otherwise the log takes no spans: without OTLP they are then never built
    // (the log line carries the request's fields itself).
    let filter = filter.and(filter_fn(move |m| span_times || m.is_event()));
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_span_events(if span_times { FmtSpan::CLOSE } else { FmtSpan::NONE })
        .event_format(format)
        .and_then(span_times.then_some(span_log::KeepFields))
        .with_filter(filter);
    let base = tracing_subscriber::registry().with(lines);
    // Not `.with(Option<Layer>)`: a `None` layer calls every callsite always
    // interesting, so each TRACE span of h2, hyper and rustls would be built
    // and dropped again, several per HTTP/2 frame (a fifth of a TLS pull's CPU).
    match provider {
        Some(p) => base.with(otlp::layer(p, "wharf_registry")).into(),
        None => base.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dispatch_at(level: LogLevel) -> Dispatch {
        let log = Log { level: Some(level), ..Log::default() };
        dispatch(&log, default_filter(&log), None)
    }

    // Callsites of their own: interest is cached per callsite, across tests.
    #[test]
    fn spans_below_the_log_level_are_never_built() {
        let d = dispatch_at(LogLevel::Info);
        tracing::dispatcher::with_default(&d, || {
            assert!(tracing::trace_span!(target: "h2::codec::framed_write", "flush").is_disabled());
            assert!(tracing::debug_span!(target: "wharf_registry::storage", "get").is_disabled());
        });
    }

    #[test]
    fn debug_keeps_spans_for_their_times() {
        let d = dispatch_at(LogLevel::Debug);
        tracing::dispatcher::with_default(&d, || {
            assert!(!tracing::debug_span!(target: "wharf_registry::storage", "put").is_disabled());
            assert!(tracing::trace_span!(target: "h2::codec::framed_read", "decode").is_disabled());
        });
    }
}
