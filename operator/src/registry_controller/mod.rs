//! The `Registry` controller: one `reconcile` and one `error_policy`.
//!
//! Reconcile runs five steps in a row, each in its own module with its own error:
//!
//! 1. [`dereference`]: read the Secrets the spec names; create the generated ones once;
//! 2. [`validate`]: spec + those objects + settings → [`validate::ValidatedRegistry`]
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
//! The mirror controller reuses steps 3–5 and the shared parts of 1–2.

pub mod apply;
pub mod build;
pub mod common;
pub mod dereference;
pub mod pod_probe;
pub mod s3;
pub mod update_status;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use crate::context::Context;
use crate::crd::Registry;
use crate::crd::conditions::reasons;
use crate::names::{self, OwnerKind};

use common::CommonSpec;
use dereference::{Dereferenced, Target};
use update_status::HasRegistryStatus;
use validate::{Identity, ValidatedRegistry};

/// How often a healthy resource is looked at again without any event.
pub const RESYNC: Duration = Duration::from_secs(3600);
/// How often a resource with missing replicas is looked at again: a pod that
/// runs but never becomes ready changes no Deployment status, so no event
/// would tell the operator to ask it why.
pub const NOT_READY_RECHECK: Duration = Duration::from_secs(10);
/// How often a resource whose pods have no running registry container yet
/// (waiting for a node, an image) is looked at: nothing to ask them, and a
/// hundred of them must not keep the operator busy.
pub const WAITING_RECHECK: Duration = Duration::from_secs(300);

/// A reconcile failure: one variant per step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object has no name, namespace or uid.
    #[error("object has no name, namespace or uid")]
    MissingObjectKey,
    /// Step 1.
    #[error(transparent)]
    Dereference(#[from] dereference::Error),
    /// Step 2.
    #[error(transparent)]
    Validate(#[from] validate::Error),
    /// Step 3.
    #[error("rendering the configuration: {0}")]
    Build(#[source] serde_yaml::Error),
    /// Step 4.
    #[error(transparent)]
    Apply(#[from] apply::Error),
    /// Step 5.
    #[error(transparent)]
    UpdateStatus(#[from] update_status::Error),
}

impl Error {
    /// The failure metric label, also the event reason: the failing action.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::MissingObjectKey => "MissingObjectKey",
            Error::Dereference(dereference::Error::FetchSecret { .. }) => "FetchSecret",
            Error::Dereference(dereference::Error::GeneratedSecret { .. }) => "KeepGeneratedSecret",
            Error::Dereference(dereference::Error::GeneratedSecretEmpty { .. }) => "GeneratedSecretEmpty",
            Error::Dereference(dereference::Error::GenerateKey(_)) => "GenerateKey",
            Error::Validate(e) => e.reason(),
            Error::Build(_) => "RenderConfig",
            Error::Apply(apply::Error::Apply { .. }) => "Apply",
            Error::Apply(apply::Error::Prune { .. }) => "Prune",
            Error::UpdateStatus(_) => "PatchStatus",
        }
    }

    /// Whether only a change to the resource can fix it.
    pub fn needs_spec_change(&self) -> bool {
        matches!(self, Error::Validate(e) if !e.depends_on_other_objects())
    }
}

/// Reconciles one Registry.
#[tracing::instrument(skip_all, fields(kind = "Registry", namespace = %obj.namespace().unwrap_or_default(), name = %obj.name_any()))]
pub async fn reconcile(obj: Arc<Registry>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started(OwnerKind::Registry.as_str());
    let spec = CommonSpec::of_registry(&obj);
    let result = run(&*obj, OwnerKind::Registry, &spec, &[], &ctx, |id, deref, settings| {
        validate::validate(id, &spec, deref, settings)
    })
    .await;
    finish(&*obj, OwnerKind::Registry, result, &ctx)
}

/// Decides what happens after a failed reconcile.
pub fn error_policy(obj: Arc<Registry>, error: &Error, ctx: Arc<Context>) -> Action {
    policy(&*obj, OwnerKind::Registry, error, &ctx)
}

pub(crate) fn object_key<K: Resource>(obj: &K, kind: OwnerKind) -> String {
    format!(
        "{kind}/{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

pub(crate) fn finish<K: Resource>(
    obj: &K,
    kind: OwnerKind,
    result: Result<Action, Error>,
    ctx: &Context,
) -> Result<Action, Error> {
    match &result {
        Ok(_) => ctx.reset_backoff(&object_key(obj, kind)),
        Err(e) => {
            ctx.metrics.reconcile_failed(kind.as_str(), e.metric_label());
            tracing::warn!(error = %e, reason = e.metric_label(), "reconcile failed");
        }
    }
    result
}

pub(crate) fn policy<K: Resource>(obj: &K, kind: OwnerKind, error: &Error, ctx: &Context) -> Action {
    if error.needs_spec_change() {
        Action::await_change()
    } else {
        Action::requeue(ctx.next_backoff(&object_key(obj, kind)))
    }
}

/// Identity of a resource for validate and the builders.
pub(crate) fn identity<K: Resource<DynamicType = ()>>(obj: &K, kind: OwnerKind) -> Result<Identity, Error> {
    let owner = obj.controller_owner_ref(&()).ok_or(Error::MissingObjectKey)?;
    Ok(Identity {
        kind,
        name: obj.meta().name.clone().ok_or(Error::MissingObjectKey)?,
        namespace: obj.meta().namespace.clone().ok_or(Error::MissingObjectKey)?,
        owner,
    })
}

/// The five steps, for either kind. `validate` turns the dereferenced objects into the builders' input.
pub(crate) async fn run<K, F>(
    obj: &K,
    kind: OwnerKind,
    spec: &CommonSpec<'_>,
    extra_secrets: &[String],
    ctx: &Context,
    validate: F,
) -> Result<Action, Error>
where
    K: HasRegistryStatus,
    F: FnOnce(&Identity, &Dereferenced, &crate::settings::Settings) -> Result<ValidatedRegistry, validate::Error>,
{
    let id = identity(obj, kind)?;
    let target = Target {
        kind,
        name: &id.name,
        namespace: &id.namespace,
        rotation_request: obj
            .meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(names::ANNOTATION_ROTATE_SIGNING_KEY))
            .map(String::as_str),
        owner: id.owner.clone(),
    };
    let generation = obj.meta().generation;
    let deref = dereference::dereference(&ctx.client, &target, spec, extra_secrets).await?;
    let validated = match validate(&id, &deref, &ctx.settings) {
        Ok(v) => v,
        Err(e) => {
            let status = update_status::failure_status(obj.registry_status(), e.reason(), &e.to_string(), generation);
            update_status::write_status(&ctx.client, &ctx.recorder, obj, status).await?;
            return Err(e.into());
        }
    };
    let resources = build::build(&validated).map_err(Error::Build)?;
    let applied = match apply::apply(&ctx.client, &id.namespace, kind, &id.name, resources).await {
        Ok(a) => a,
        Err(e) => {
            let status =
                update_status::failure_status(obj.registry_status(), reasons::APPLY_FAILED, &e.to_string(), generation);
            if let Err(status_error) = update_status::write_status(&ctx.client, &ctx.recorder, obj, status).await {
                tracing::warn!(error = %status_error, "could not report the apply failure in status");
            }
            return Err(e.into());
        }
    };
    let key = crate::node_access::plan::Key { kind, namespace: id.namespace.clone(), name: id.name.clone() };
    let node_access = spec.node_access_enabled().then(|| ctx.node_access.verdict(&key));
    let mut observed = update_status::observe(&applied, node_access);
    let mut recheck = RESYNC;
    if observed.missing_replicas() {
        let report = pod_probe::pod_report(&ctx.client, &id.namespace, kind, &id.name).await;
        observed.pod_problem = report.problem;
        recheck = if report.unready_running { NOT_READY_RECHECK } else { WAITING_RECHECK };
    }
    let status = update_status::compute_status(&validated, &observed, generation);
    update_status::write_status(&ctx.client, &ctx.recorder, obj, status).await?;
    Ok(Action::requeue(recheck))
}
