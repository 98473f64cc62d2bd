//! The `Registry` controller: one `reconcile` and one `error_policy`.
//!
//! Reconcile runs five steps in a row, each in its own module with its own error:
//!
//! 1. [`dereference`]: read the Secrets the spec names; create the generated ones once;
//! 2. [`validate`]: spec + those objects + settings → [`validated::ValidatedRegistry`]
//!    (user errors are found here and nowhere else);
//! 3. [`build`]: every child object, purely;
//! 4. [`apply`]: server-side apply in a documented order, then prune;
//! 5. [`update_status`]: conditions, host, URL and realm; Events on transitions.
//!
//! A user error (the spec, or a Secret it names) sets Degraded and an Event.
//! A spec that contradicts itself waits for a change; a missing or malformed
//! Secret, and any API error, is retried with back-off (and a Secret watch
//! wakes the resource as soon as the Secret appears). No finalizer: every
//! child carries an owner reference, so Kubernetes' garbage collector
//! removes them with the resource.
//!
//! The mirror controller reuses steps 3–5 and the shared parts of 1–2; the
//! pipeline that runs them in a row, for either kind, is [`crate::reconcile`].

pub mod apply;
pub mod build;
pub mod dereference;
pub mod pod_probe;
pub mod s3;
pub mod update_status;
pub mod validate;
pub mod validated;

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::controller::Action;

use crate::context::Context;
use crate::crd::Registry;
use crate::names::OwnerKind;
use crate::reconcile::{self, Error};

use crate::crd::CommonSpec;

/// Reconciles one Registry.
#[tracing::instrument(skip_all, fields(kind = "Registry", namespace = %obj.namespace().unwrap_or_default(), name = %obj.name_any()))]
pub async fn reconcile(obj: Arc<Registry>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started(OwnerKind::Registry.as_str());
    let spec = CommonSpec::of_registry(&obj);
    // Boxed: the pipeline's future is large, and the controller moves this one around.
    let result = Box::pin(reconcile::run(&*obj, OwnerKind::Registry, &spec, &[], &ctx, |id, deref, settings| {
        validate::validate(id, &spec, deref, settings)
    }))
    .await;
    reconcile::finish(&*obj, OwnerKind::Registry, result, &ctx)
}

/// Decides what happens after a failed reconcile.
pub fn error_policy(obj: Arc<Registry>, error: &Error, ctx: Arc<Context>) -> Action {
    reconcile::policy(&*obj, OwnerKind::Registry, error, &ctx)
}
