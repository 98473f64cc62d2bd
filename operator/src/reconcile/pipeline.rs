//! The five steps in a row, for either kind, and what follows a reconcile:
//! metrics and back-off after it ([`finish`]), the requeue decision after a
//! failure ([`policy`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use kube::Resource;
use kube::runtime::controller::Action;
use tracing::Instrument;

use crate::context::Context;
use crate::crd::CommonSpec;
use crate::crd::conditions::reasons;
use crate::names::{self, OwnerKind};
use crate::settings::Settings;

use super::dereference::{self, Dereferenced, Target};
use super::update_status::{self, HasRegistryStatus};
use super::validated::{Identity, ValidatedRegistry};
use super::{
    Error, NOT_READY_RECHECK, RESYNC, WAITING_RECHECK, apply, build, pod_probe, serving_cert, upkeep_probe, validate,
};

fn object_key<K: Resource>(obj: &K, kind: OwnerKind) -> String {
    format!(
        "{kind}/{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// Counts a failure (or resets the back-off after a success) and logs it.
pub fn finish<K: Resource>(
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

/// After a failure: wait for a change when only the resource can fix it, else back off.
pub fn policy<K: Resource>(obj: &K, kind: OwnerKind, error: &Error, ctx: &Context) -> Action {
    if error.needs_spec_change() {
        Action::await_change()
    } else {
        Action::requeue(ctx.next_backoff(&object_key(obj, kind)))
    }
}

/// Identity of a resource for validate and the builders.
pub fn identity<K: Resource<DynamicType = ()>>(obj: &K, kind: OwnerKind) -> Result<Identity, Error> {
    let owner = obj.controller_owner_ref(&()).ok_or(Error::MissingObjectKey)?;
    Ok(Identity {
        kind,
        name: obj.meta().name.clone().ok_or(Error::MissingObjectKey)?,
        namespace: obj.meta().namespace.clone().ok_or(Error::MissingObjectKey)?,
        owner,
    })
}

/// Runs one step in `span` (a child of the reconcile's span) and says, at
/// debug level, how long it took. Callers box the step's future where they
/// create it: held by value, the steps' futures (apply's holds every child
/// object and an API call per child) nest into a reconcile future too large
/// for a worker thread's stack in a debug build.
async fn step<T>(span: tracing::Span, work: Pin<Box<impl Future<Output = T>>>) -> T {
    let started = Instant::now();
    let out = work.instrument(span.clone()).await;
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    span.in_scope(|| tracing::debug!(elapsed_ms, "step done"));
    out
}

/// The operator's CA (made on first need), its bundle in the resource's
/// namespace, and the serving certificate.
async fn serving_tls(
    ctx: &Context,
    id: &Identity,
    spec: &CommonSpec<'_>,
) -> Result<serving_cert::ServingTls, serving_cert::Error> {
    let settings = &ctx.settings;
    let ca = serving_cert::operator_ca(ctx).await?;
    let names = names::ChildNames::new(&id.name);
    let target = serving_cert::For {
        kind: id.kind,
        name: &id.name,
        namespace: &id.namespace,
        owner: &id.owner,
        dns_names: names::serving_dns_names(
            &names.service(),
            &id.namespace,
            &settings.cluster_domain,
            spec.server.ingress.as_ref().map(|i| i.host.trim()),
            &settings.tls.ingress_domains,
        ),
    };
    serving_cert::publish_ca_bundle(&ctx.client, serving_cert::BundleFor::Resource(&target), ca.cert_pem()).await?;
    serving_cert::prepare(&ctx.client, ca, spec.tls_source(), &target, &settings.tls).await
}

/// The five steps, for either kind. `validate` turns the dereferenced objects into the builders' input.
pub async fn run<K, F>(
    obj: &K,
    kind: OwnerKind,
    spec: &CommonSpec<'_>,
    extra_secrets: &[String],
    ctx: &Context,
    validate: F,
) -> Result<Action, Error>
where
    K: HasRegistryStatus,
    F: FnOnce(&Identity, &Dereferenced, &Settings) -> Result<ValidatedRegistry, validate::Error>,
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
    let tls = step(tracing::info_span!("serving_cert"), Box::pin(serving_tls(ctx, &id, spec))).await?;
    let renew_in = match &tls {
        serving_cert::ServingTls::Secret { renew_in, .. } => *renew_in,
        _ => None,
    };
    let deref = step(
        tracing::info_span!("dereference"),
        Box::pin(dereference::dereference(&ctx.client, &target, spec, extra_secrets, tls)),
    )
    .await?;
    let validated =
        match step(tracing::info_span!("validate"), Box::pin(async { validate(&id, &deref, &ctx.settings) })).await {
            Ok(v) => v,
            Err(e) => {
                let status =
                    update_status::failure_status(obj.registry_status(), e.reason(), &e.to_string(), generation);
                step(
                    tracing::info_span!("update_status"),
                    Box::pin(update_status::write_status(&ctx.client, &ctx.recorder, obj, status)),
                )
                .await?;
                return Err(e.into());
            }
        };
    let resources =
        step(tracing::info_span!("build"), Box::pin(async { build::build(&validated) })).await.map_err(Error::Build)?;
    let applied = match step(
        tracing::info_span!("apply"),
        Box::pin(apply::apply(&ctx.client, &id.namespace, kind, &id.name, resources, validated.tls_secret.as_deref())),
    )
    .await
    {
        Ok(a) => a,
        Err(e) => {
            let status =
                update_status::failure_status(obj.registry_status(), reasons::APPLY_FAILED, &e.to_string(), generation);
            let write = update_status::write_status(&ctx.client, &ctx.recorder, obj, status);
            if let Err(status_error) = step(tracing::info_span!("update_status"), Box::pin(write)).await {
                tracing::warn!(error = %status_error, "could not report the apply failure in status");
            }
            return Err(e.into());
        }
    };
    step(
        tracing::info_span!("update_status"),
        Box::pin(async {
            let key = crate::node_access::plan::Key { kind, namespace: id.namespace.clone(), name: id.name.clone() };
            let node_access = spec.node_access_enabled().then(|| ctx.node_access.verdict(&key));
            let mut observed = update_status::observe(&applied, node_access);
            let mut recheck = RESYNC;
            if observed.missing_replicas() {
                let report = pod_probe::pod_report(&ctx.client, &id.namespace, kind, &id.name).await;
                observed.pod_problem = report.problem;
                recheck = if report.unready_running { NOT_READY_RECHECK } else { WAITING_RECHECK };
            }
            let wanted = upkeep_probe::Wanted { gc: validated.gc.is_some(), quotas: !validated.quotas.is_empty() };
            if wanted.gc || wanted.quotas {
                let report = upkeep_probe::upkeep_report(&ctx.client, &id.namespace, kind, &id.name, wanted).await;
                (observed.garbage_collection, observed.quotas) =
                    upkeep_probe::resolve(wanted, report, obj.registry_status());
                recheck = recheck.min(validated.upkeep_recheck());
            }
            if let Some(renew_in) = renew_in {
                // Look again when the certificate is due, plus a second so it is.
                recheck = recheck.min(renew_in + std::time::Duration::from_secs(1));
            }
            let status = update_status::compute_status(&validated, &observed, generation);
            update_status::write_status(&ctx.client, &ctx.recorder, obj, status).await?;
            Ok::<_, Error>(Action::requeue(recheck))
        }),
    )
    .await
}
