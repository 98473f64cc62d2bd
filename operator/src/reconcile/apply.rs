//! Step 4: apply. Server-side apply with one field manager, in this order:
//!
//! 1. Secrets (generated `http.secret`, signing key), then ConfigMaps
//!    (config.yml, access.yml): everything the pods mount exists before them;
//! 2. the PersistentVolumeClaim;
//! 3. the Service, then the Deployment (its config hash already matches the
//!    ConfigMap applied in 1), then the PodDisruptionBudget;
//! 4. Ingress, NetworkPolicy and the GC CronJob;
//! 5. prune: children of this resource (found by label) that the spec no
//!    longer asks for are deleted. Claims are never pruned: removing data is
//!    left to owner-reference garbage collection when the resource goes.
//!    DaemonSets are always pruned: earlier versions ran a node-access
//!    DaemonSet per resource in the tenant's namespace, which the chart's one
//!    node agent replaces (`crate::node_access`).
//!
//! The order itself is written once, in [`Resources::in_apply_order`], which
//! names every field, so a new child kind that is built but never applied
//! does not compile; `render` prints the objects in the same order.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::names::{self, OwnerKind};

use super::build::{Applied, Child, EachChild, Prepared, Resources};

/// Errors of this step; transient (the API server said no, or was not there).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A server-side apply failed.
    #[error("applying {kind} {name}: {source}")]
    Apply {
        /// Kind.
        kind: String,
        /// Name.
        name: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// Listing or deleting children that are no longer wanted failed.
    #[error("pruning {kind}: {source}")]
    Prune {
        /// Kind.
        kind: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
}

/// Applies every child in the documented order and prunes the rest.
pub async fn apply(
    client: &Client,
    namespace: &str,
    kind: OwnerKind,
    instance: &str,
    resources: Resources<Prepared>,
    serving_secret: Option<&str>,
) -> Result<Resources<Applied>, Error> {
    let mut a = Applier { client, namespace };
    let applied: Resources<Applied> = resources.in_apply_order(&mut a).await?;

    let selector = names::children_selector(kind, instance);
    let keep_secrets: Vec<String> = [Some(&applied.http_secret), applied.signing_key.as_ref()]
        .into_iter()
        .flatten()
        .map(|s| s.name_any())
        // The serving certificate the operator issued before this step.
        .chain(serving_secret.map(str::to_string))
        .collect();
    a.prune::<Secret>(&selector, &keep_secrets).await?;
    let keep_config: Vec<String> = [Some(&applied.config_map), applied.access_config_map.as_ref()]
        .into_iter()
        .flatten()
        .map(|c| c.name_any())
        .collect();
    a.prune::<ConfigMap>(&selector, &keep_config).await?;
    a.prune::<PodDisruptionBudget>(&selector, &names_of(applied.pdb.as_ref())).await?;
    a.prune::<Ingress>(&selector, &names_of(applied.ingress.as_ref())).await?;
    a.prune::<NetworkPolicy>(&selector, &names_of(applied.network_policy.as_ref())).await?;
    a.prune::<CronJob>(&selector, &names_of(applied.gc_cronjob.as_ref())).await?;
    a.prune::<DaemonSet>(&selector, &[]).await?;
    Ok(applied)
}

fn names_of<K: Resource>(obj: Option<&K>) -> Vec<String> {
    obj.map(|o| o.name_any()).into_iter().collect()
}

struct Applier<'a> {
    client: &'a Client,
    namespace: &'a str,
}

impl EachChild for Applier<'_> {
    type Error = Error;

    /// One server-side apply with the operator's field manager.
    async fn child<K: Child>(&mut self, obj: K) -> Result<K, Error> {
        let api: Api<K> = Api::namespaced(self.client.clone(), self.namespace);
        let name = obj.name_any();
        let params = PatchParams::apply(names::FIELD_MANAGER).force();
        api.patch(&name, &params, &Patch::Apply(&obj)).await.map_err(|source| Error::Apply {
            kind: K::kind(&()).into_owned(),
            name,
            source,
        })
    }
}

impl Applier<'_> {
    async fn prune<K>(&self, selector: &str, keep: &[String]) -> Result<(), Error>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + Debug + DeserializeOwned,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), self.namespace);
        let kind = || K::kind(&()).into_owned();
        let found = api
            .list_metadata(&ListParams::default().labels(selector))
            .await
            .map_err(|source| Error::Prune { kind: kind(), source })?;
        for obj in found.items {
            let name = obj.name_any();
            if keep.contains(&name) || obj.metadata.deletion_timestamp.is_some() {
                continue;
            }
            tracing::info!(kind = %kind(), name = %name, "pruning child no longer in the spec");
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(source) => return Err(Error::Prune { kind: kind(), source }),
            }
        }
        Ok(())
    }
}
