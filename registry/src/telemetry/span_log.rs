//! Span timings in the log, for `RUST_LOG` (or `log.level: debug`): when the
//! log filter lets DEBUG through, each span that closes adds a line with its
//! name, its parent, its fields and its busy and idle time. At `info` nothing
//! changes: no line, no kept fields.

use serde_json::Value;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::{FmtContext, FormatFields};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::Collect;

/// Keeps each span's fields (as the log prints them) until it closes.
pub(super) struct KeepFields;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for KeepFields {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Collect::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Collect>()
        {
            values.record(fields);
        }
    }
}

/// The fields of the line for a span's close event (`time.busy`, `time.idle`
/// in `timing`): `span`, `parent`, then the span's own.
pub(super) fn closed<S, N>(ctx: &FmtContext<'_, S, N>, event: &Event<'_>, timing: Collect) -> Collect
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let mut line = Collect::default();
    let span = event.parent().and_then(|id| ctx.span(id));
    if let Some(span) = &span {
        line.0.insert("span".into(), Value::String(span.name().into()));
        if let Some(parent) = span.parent() {
            line.0.insert("parent".into(), Value::String(parent.name().into()));
        }
        if let Some(fields) = span.extensions().get::<Collect>() {
            // `otel.*` names the span for an OTLP collector; the log has `span`.
            let own = fields.0.iter().filter(|(k, _)| !k.starts_with("otel."));
            line.0.extend(own.map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    line.0.extend(timing.0);
    line
}
