//! The `Registry` controller: one `reconcile` and one `error_policy`. Both
//! hand the resource to the shared pipeline in [`crate::reconcile`], which
//! runs its five steps for either kind.
//!
//! A user error (the spec, or a Secret it names) sets Degraded and an Event.
//! A spec that contradicts itself waits for a change; a missing or malformed
//! Secret, and any API error, is retried with back-off (and a Secret watch
//! wakes the resource as soon as the Secret appears). No finalizer: every
//! child carries an owner reference, so Kubernetes' garbage collector
//! removes them with the resource.

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::controller::Action;

use crate::context::Context;
use crate::crd::{CommonSpec, Registry};
use crate::names::OwnerKind;
use crate::reconcile::{self, Error, validate};

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
