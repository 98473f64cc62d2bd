//! A tracing layer that records which spans opened under which, for tests
//! that check the reconcile span tree. Install it as the global default: a
//! thread-local default (`set_default`) is not enough while other tests run
//! in the same process, because tracing caches whether a call site is
//! wanted globally, from whichever thread reaches it first.

use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// One span as it opened.
#[derive(Clone, Debug)]
pub struct Opened {
    /// The span's name.
    pub name: String,
    /// The names of its ancestors, nearest first.
    pub ancestors: Vec<String>,
    /// The `namespace` field of the nearest ancestor (or itself) that has one.
    pub namespace: Option<String>,
}

/// Records every span that opens; clones share the record.
#[derive(Clone, Default)]
pub struct SpanRecorder(Arc<Mutex<Vec<Opened>>>);

impl SpanRecorder {
    /// What has opened so far.
    pub fn opened(&self) -> Vec<Opened> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// The `namespace` field of a span, kept in its extensions.
#[derive(Clone)]
struct Namespace(String);

struct NamespaceField(Option<String>);

impl Visit for NamespaceField {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "namespace" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SpanRecorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut field = NamespaceField(None);
        attrs.record(&mut field);
        if let Some(ns) = field.0 {
            span.extensions_mut().insert(Namespace(ns));
        }
        let namespace = span.scope().find_map(|s| s.extensions().get::<Namespace>().map(|n| n.0.clone()));
        let ancestors = span.scope().skip(1).map(|s| s.name().to_string()).collect();
        if let Ok(mut v) = self.0.lock() {
            v.push(Opened { name: span.name().to_string(), ancestors, namespace });
        }
    }
}
