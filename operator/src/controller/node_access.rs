//! The operator's node-access task: watches every Registry and
//! RegistryMirror and their Services, decides ([`crate::node_access::plan::decide`]),
//! publishes the plan in the ConfigMap the node agent follows, keeps the
//! decision for the reconcilers' status, and wakes each resource whose answer
//! changed (a host freed by a deleted owner goes to the next claimant here).
//!
//! It runs only on the leader, like the controllers.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::Notify;

use crate::context::Context;
use crate::crd::{CommonSpec, Registry, RegistryMirror};
use crate::names::{self, ChildNames};
use crate::node_access::claims::{self, Found, cluster_ip};
use crate::node_access::plan::{Claim, decide};
use crate::node_agent::PLAN_KEY;
use crate::reconcile::dereference::secret_data;
use crate::reconcile::serving_cert::{self, operator_ca};

use super::Scope;

/// How often the decision is made again without any change (a TLS Secret's new certificate).
const RESYNC: std::time::Duration = std::time::Duration::from_secs(300);
/// How soon a failed round (the API server refused a read or the plan write) is tried again.
const RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// Why one round failed; the task logs it and tries again at the next change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a TLS Secret failed.
    #[error("reading Secret {namespace}/{name}: {source}")]
    Secret {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// The operator's CA could not be read or made.
    #[error(transparent)]
    Ca(serving_cert::Error),
    /// The plan could not be encoded; nothing is published (an empty plan would clear every node).
    #[error("encoding the node plan: {0}")]
    Encode(#[source] serde_json::Error),
    /// Writing the plan ConfigMap failed.
    #[error("publishing the node plan in ConfigMap {namespace}/{name}: {source}")]
    Publish {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
}

fn scoped<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match scope {
        Scope::All => Api::all(client.clone()),
        Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
    }
}

/// Reflects `api` into a store, waking `changed` on every event.
fn reflect<K>(api: Api<K>, config: watcher::Config, changed: Arc<Notify>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config).default_backoff().reflect(writer);
    tokio::spawn(stream.for_each(move |_| {
        changed.notify_one();
        futures::future::ready(())
    }));
    reader
}

/// Runs until `stop`: decides on every change of a resource or Service, and every few minutes.
pub async fn run(ctx: Arc<Context>, scopes: Vec<Scope>, stop: impl std::future::Future<Output = ()>) {
    let client = ctx.client.clone();
    let changed = Arc::new(Notify::new());
    let services_config = watcher::Config::default().labels(&format!("{}={}", names::LABEL_MANAGED_BY, names::MANAGER));
    let mut registries = Vec::new();
    let mut mirrors = Vec::new();
    let mut services = Vec::new();
    for scope in &scopes {
        registries.push(reflect(scoped::<Registry>(&client, scope), watcher::Config::default(), changed.clone()));
        mirrors.push(reflect(scoped::<RegistryMirror>(&client, scope), watcher::Config::default(), changed.clone()));
        services.push(reflect(scoped::<Service>(&client, scope), services_config.clone(), changed.clone()));
    }
    let rounds = async {
        for store in &registries {
            let _ = store.wait_until_ready().await;
        }
        for store in &mirrors {
            let _ = store.wait_until_ready().await;
        }
        for store in &services {
            let _ = store.wait_until_ready().await;
        }
        let mut published: Option<String> = None;
        loop {
            let wait = match round(&ctx, &registries, &mirrors, &services, &mut published).await {
                Ok(()) => RESYNC,
                Err(e) => {
                    tracing::warn!(error = %e, "node-access round failed; retrying");
                    RETRY
                }
            };
            tokio::select! {
                () = changed.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    };
    tokio::select! {
        () = rounds => {}
        () = stop => {}
    }
}

async fn round(
    ctx: &Context,
    registries: &[Store<Registry>],
    mirrors: &[Store<RegistryMirror>],
    services: &[Store<Service>],
    published: &mut Option<String>,
) -> Result<(), Error> {
    let ips: BTreeMap<(String, String), String> = services
        .iter()
        .flat_map(Store::state)
        .filter_map(|s| Some(((s.namespace()?, s.name_any()), cluster_ip(&s)?)))
        .collect();
    let domain = &ctx.settings.cluster_domain;
    let mut claims: Vec<Claim> = Vec::new();
    for r in registries.iter().flat_map(Store::state) {
        let found = found(ctx, &*r, &CommonSpec::of_registry(&r), &ips).await?;
        claims.extend(claims::of_registry(&r, domain, &found));
    }
    for m in mirrors.iter().flat_map(Store::state) {
        let found = found(ctx, &*m, &CommonSpec::of_mirror(&m), &ips).await?;
        claims.extend(claims::of_mirror(&m, domain, &found));
    }
    let decision = decide(&ctx.settings.node.policy, domain, &claims);
    let plan = serde_json::to_string_pretty(&decision.plan).map_err(Error::Encode)?;
    if published.as_deref() != Some(plan.as_str()) {
        write_plan(&ctx.client, &ctx.settings.node.namespace, &plan).await?;
        tracing::info!(hosts = decision.plan.hosts.len(), entries = decision.plan.entries.len(), "node plan published");
        *published = Some(plan);
    }
    ctx.node_access.publish(decision);
    Ok(())
}

/// The ClusterIP and CA of a resource with `nodeAccess` on (nothing is read for the others).
async fn found<K: kube::Resource>(
    ctx: &Context,
    obj: &K,
    spec: &CommonSpec<'_>,
    ips: &BTreeMap<(String, String), String>,
) -> Result<Found, Error> {
    let (Some(ns), Some(name)) = (obj.meta().namespace.clone(), obj.meta().name.clone()) else {
        return Ok(Found::default());
    };
    if !spec.node_access_enabled() {
        return Ok(Found::default());
    }
    let cluster_ip = ips.get(&(ns.clone(), ChildNames::new(&name).service())).cloned();
    let ca_pem = match claims::ca_source(spec, &name) {
        claims::CaSource::None => None,
        claims::CaSource::Operator => Some(operator_ca(ctx).await.map_err(Error::Ca)?.cert_pem().to_string()),
        claims::CaSource::Secret(secret) => {
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
            let found = api.get_opt(&secret).await.map_err(|source| Error::Secret {
                namespace: ns.clone(),
                name: secret.clone(),
                source,
            })?;
            found.as_ref().map(secret_data).and_then(|d| {
                let pem = d.get(names::CA_CERT_KEY).filter(|b| !b.is_empty()).or_else(|| d.get(names::TLS_CERT_KEY));
                pem.and_then(|b| String::from_utf8(b.clone()).ok())
            })
        }
    };
    Ok(Found { cluster_ip, ca_pem })
}

async fn write_plan(client: &Client, namespace: &str, plan: &str) -> Result<(), Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(names::NODE_ACCESS_PLAN.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([
                (names::LABEL_NAME.to_string(), names::NODE_AGENT_APP_NAME.to_string()),
                (names::LABEL_COMPONENT.to_string(), names::NODE_AGENT_COMPONENT.to_string()),
            ])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(PLAN_KEY.to_string(), plan.to_string())])),
        ..ConfigMap::default()
    };
    api.patch(names::NODE_ACCESS_PLAN, &PatchParams::apply(names::FIELD_MANAGER).force(), &Patch::Apply(&cm))
        .await
        .map(|_| ())
        .map_err(|source| Error::Publish { namespace: namespace.into(), name: names::NODE_ACCESS_PLAN.into(), source })
}
