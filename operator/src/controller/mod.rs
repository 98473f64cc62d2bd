//! Controller wiring: one kube-runtime `Controller` per kind and watched
//! scope (all namespaces, or each configured namespace).
//!
//! Each controller watches its resource (filtered on generation and
//! annotations, so its own status writes do not wake it), `.owns()` every
//! child kind (through a label-selected watch, so only Wharf's children are
//! cached) to repair drift, and watches Secret metadata to wake a resource
//! whose missing Secret has just appeared. The node-access task
//! (`node_access::publish`) runs beside them and wakes a resource when its
//! node-access answer changes.

pub mod ca_bundle;
pub mod node_access;

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::PartialObjectMeta;
use kube::runtime::Predicate;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::context::Context;
use crate::crd::{CommonSpec, Registry, RegistryMirror};
use crate::names::{self, OwnerKind};
use crate::reconcile::Error;
use crate::registry_controller;

/// Which namespaces to watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace.
    All,
    /// One namespace.
    Namespace(String),
}

impl Scope {
    /// The scopes for a configured namespace list (empty: all).
    pub fn from_list(namespaces: &[String]) -> Vec<Scope> {
        if namespaces.is_empty() {
            vec![Scope::All]
        } else {
            namespaces.iter().map(|n| Scope::Namespace(n.clone())).collect()
        }
    }

    fn api<K>(&self, client: &Client) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
    {
        match self {
            Scope::All => Api::all(client.clone()),
            Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
        }
    }
}

/// Checks that both CRDs are installed, with a hint when they are not.
pub async fn check_crds(client: &Client, scope: &Scope) -> anyhow::Result<()> {
    let lp = kube::api::ListParams::default().limit(1);
    let hint = "is the CRD installed? Install the files in crds/ (`wharf-operator crds | kubectl apply -f -`)";
    scope
        .api::<Registry>(client)
        .list(&lp)
        .await
        .map_err(|e| anyhow::anyhow!("listing Registry failed ({e}): {hint}"))?;
    scope
        .api::<RegistryMirror>(client)
        .list(&lp)
        .await
        .map_err(|e| anyhow::anyhow!("listing RegistryMirror failed ({e}): {hint}"))?;
    Ok(())
}

/// Resolves once `stop` turns true (or its sender is gone).
pub fn stopped(stop: &tokio::sync::watch::Receiver<bool>) -> impl Future<Output = ()> + Send + Sync + 'static {
    let mut rx = stop.clone();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// The Secrets whose appearance wakes a resource: those it names, and the
/// one cert-manager issues for it.
fn watched_secrets<K: Resource>(obj: &K, spec: CommonSpec<'_>, extra: Vec<String>) -> Vec<String> {
    let mut out = spec.referenced_secrets();
    out.extend(extra);
    if let (crate::crd::TlsSource::CertManager(_), Some(name)) = (spec.tls_source(), obj.meta().name.as_deref()) {
        out.push(names::ChildNames::new(name).tls_secret());
    }
    out
}

/// Runs every controller until `stop` turns true; they finish in-flight reconciles first.
pub async fn run(ctx: Arc<Context>, scopes: Vec<Scope>, stop: tokio::sync::watch::Receiver<bool>) {
    let mut tasks = vec![
        tokio::spawn(node_access::run(ctx.clone(), scopes.clone(), stopped(&stop))),
        tokio::spawn(ca_bundle::run(ctx.clone(), scopes.clone(), stopped(&stop))),
    ];
    for scope in scopes {
        tasks.push(tokio::spawn(run_kind::<Registry, _, _, _, _>(
            ctx.clone(),
            scope.clone(),
            OwnerKind::Registry,
            |r: &Registry| watched_secrets(r, CommonSpec::of_registry(r), Vec::new()),
            registry_controller::reconcile,
            registry_controller::error_policy,
            stopped(&stop),
        )));
        tasks.push(tokio::spawn(run_kind::<RegistryMirror, _, _, _, _>(
            ctx.clone(),
            scope,
            OwnerKind::RegistryMirror,
            |m: &RegistryMirror| {
                watched_secrets(
                    m,
                    CommonSpec::of_mirror(m),
                    crate::reconcile::validate_mirror::upstream_secrets(&m.spec),
                )
            },
            crate::mirror_controller::reconcile,
            crate::mirror_controller::error_policy,
            stopped(&stop),
        )));
    }
    for t in tasks {
        if let Err(e) = t.await {
            tracing::error!(error = %e, "controller task failed");
        }
    }
}

async fn run_kind<K, R, RF, P, S>(
    ctx: Arc<Context>,
    scope: Scope,
    kind: OwnerKind,
    secrets_of: fn(&K) -> Vec<String>,
    reconcile: R,
    error_policy: P,
    shutdown: S,
) where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
    R: FnMut(Arc<K>, Arc<Context>) -> RF + Send + 'static,
    RF: Future<Output = Result<Action, Error>> + Send + 'static,
    P: Fn(Arc<K>, &Error, Arc<Context>) -> Action + Send + Sync + 'static,
    S: Future<Output = ()> + Send + Sync + 'static,
{
    let client = ctx.client.clone();
    let children = watcher::Config::default().labels(&format!(
        "{}={},{}={}",
        names::LABEL_MANAGED_BY,
        names::MANAGER,
        names::LABEL_OWNER_KIND,
        kind.as_str()
    ));
    let (reader, writer) = kube::runtime::reflector::store::<K>();
    let main = watcher(scope.api::<K>(&client), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation.combine(predicates::annotations), Default::default());
    let secret_meta = watcher(scope.api::<PartialObjectMeta<Secret>>(&client), watcher::Config::default())
        .default_backoff()
        .touched_objects();
    let store: Store<K> = reader.clone();
    Controller::for_stream(main, reader)
        .owns(scope.api::<Secret>(&client), children.clone())
        .owns(scope.api::<ConfigMap>(&client), children.clone())
        .owns(scope.api::<PersistentVolumeClaim>(&client), children.clone())
        .owns(scope.api::<Service>(&client), children.clone())
        .owns(scope.api::<Deployment>(&client), children.clone())
        .owns(scope.api::<PodDisruptionBudget>(&client), children.clone())
        .owns(scope.api::<Ingress>(&client), children.clone())
        .owns(scope.api::<NetworkPolicy>(&client), children.clone())
        .owns(scope.api::<CronJob>(&client), children)
        .watches_stream(secret_meta, move |secret| {
            let ns = secret.namespace();
            let name = secret.name_any();
            store
                .state()
                .into_iter()
                .filter(|o| o.namespace() == ns && secrets_of(o).contains(&name))
                .map(|o| ObjectRef::from_obj(&*o))
                .collect::<Vec<_>>()
        })
        .reconcile_on(ctx.node_access.wakeups().filter_map(move |key| {
            futures::future::ready((key.kind == kind).then(|| ObjectRef::<K>::new(&key.name).within(&key.namespace)))
        }))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile failed"),
            }
        })
        .await;
    tracing::info!(kind = kind.as_str(), scope = ?scope, "controller stopped");
}
