//! The `RegistryMirror` controller: one `reconcile` and one `error_policy`,
//! on the shared pipeline in [`crate::reconcile`]. Dereference also reads the
//! upstream credential Secrets, and validation adds the `proxy` section
//! ([`crate::reconcile::validate_mirror`]).

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::controller::Action;

use crate::context::Context;
use crate::crd::{CommonSpec, RegistryMirror};
use crate::names::OwnerKind;
use crate::reconcile::validate_mirror as validate;
use crate::reconcile::{Error, finish, policy, run};

/// Reconciles one RegistryMirror.
#[tracing::instrument(skip_all, fields(kind = "RegistryMirror", namespace = %obj.namespace().unwrap_or_default(), name = %obj.name_any()))]
pub async fn reconcile(obj: Arc<RegistryMirror>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started(OwnerKind::RegistryMirror.as_str());
    let spec = CommonSpec::of_mirror(&obj);
    let extra = validate::upstream_secrets(&obj.spec);
    // Boxed: the pipeline's future is large, and the controller moves this one around.
    let result = Box::pin(run(&*obj, OwnerKind::RegistryMirror, &spec, &extra, &ctx, |id, deref, settings| {
        validate::validate_mirror(id, &obj.spec, deref, settings)
    }))
    .await;
    finish(&*obj, OwnerKind::RegistryMirror, result, &ctx)
}

/// Decides what happens after a failed reconcile.
pub fn error_policy(obj: Arc<RegistryMirror>, error: &Error, ctx: Arc<Context>) -> Action {
    policy(&*obj, OwnerKind::RegistryMirror, error, &ctx)
}
