//! Step 3: build. `build(&ValidatedRegistry)` returns every child object,
//! ready to apply. Pure: no client, no clock, no randomness, so `render`
//! and the snapshot tests see exactly what a reconcile applies.
//!
//! One file per child kind; `registry_config` is the config.yml fragment and
//! `meta` the one metadata helper. [`Resources::in_apply_order`] is the one
//! place the children's order is written: apply and [`Resources::to_yaml`]
//! both walk it.

pub mod config_map;
pub mod deployment;
pub mod gc_cronjob;
pub mod ingress;
pub mod meta;
pub mod network_policy;
pub mod notifications_config;
pub mod pdb;
pub mod pvc;
pub mod registry_config;
pub mod secret;
pub mod service;
pub mod upkeep_config;

use std::fmt::Debug;
use std::future::Future;
use std::marker::PhantomData;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::validated::ValidatedRegistry;

/// Marker: built, not yet applied.
#[derive(Clone, Debug)]
pub struct Prepared;
/// Marker: applied; the objects are the API server's answers (with status).
#[derive(Clone, Debug)]
pub struct Applied;

/// Every child of one resource. Optional children that are `None` are
/// pruned by apply if they exist.
#[derive(Clone, Debug)]
pub struct Resources<State> {
    /// Generated `http.secret`.
    pub http_secret: Secret,
    /// Generated token signing key.
    pub signing_key: Option<Secret>,
    /// config.yml.
    pub config_map: ConfigMap,
    /// access.yml.
    pub access_config_map: Option<ConfigMap>,
    /// The claim the operator creates.
    pub pvc: Option<PersistentVolumeClaim>,
    /// The Service.
    pub service: Service,
    /// The Deployment.
    pub deployment: Deployment,
    /// The PodDisruptionBudget.
    pub pdb: Option<PodDisruptionBudget>,
    /// The Ingress.
    pub ingress: Option<Ingress>,
    /// The NetworkPolicy.
    pub network_policy: Option<NetworkPolicy>,
    /// The GC CronJob.
    pub gc_cronjob: Option<CronJob>,
    /// Typestate marker.
    pub state: PhantomData<State>,
}

/// Builds every child.
pub fn build(v: &ValidatedRegistry) -> Result<Resources<Prepared>, serde_yaml::Error> {
    let config_yaml = config_map::render_config_yaml(v)?;
    Ok(Resources {
        http_secret: secret::build_http_secret(v),
        signing_key: secret::build_signing_key_secret(v),
        config_map: config_map::build_config_map(v)?,
        access_config_map: config_map::build_access_config_map(v)?,
        pvc: pvc::build_pvc(v),
        service: service::build_service(v),
        deployment: deployment::build_deployment(v, &config_yaml),
        pdb: pdb::build_pdb(v),
        ingress: ingress::build_ingress(v),
        network_policy: network_policy::build_network_policy(v),
        gc_cronjob: gc_cronjob::build_gc_cronjob(v),
        state: PhantomData,
    })
}

/// A kind of child object: a namespaced Kubernetes object that serialises both ways.
pub trait Child:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl Child for Secret {}
impl Child for ConfigMap {}
impl Child for PersistentVolumeClaim {}
impl Child for Service {}
impl Child for Deployment {}
impl Child for PodDisruptionBudget {}
impl Child for Ingress {}
impl Child for NetworkPolicy {}
impl Child for CronJob {}

/// Something done to each child in turn: apply sends it to the API server,
/// [`Resources::to_yaml`] writes it out. Returns the object to keep (the
/// server's answer, or the object itself).
pub trait EachChild {
    /// Why a child could not be handled.
    type Error;
    /// Handles one child.
    fn child<K: Child>(&mut self, obj: K) -> impl Future<Output = Result<K, Self::Error>> + Send;
}

impl<S> Resources<S> {
    /// Hands every child to `each` in apply order and collects what it
    /// returns. The one place the order is written; `apply` says why it is
    /// this one (Secrets and ConfigMaps before the Deployment that mounts
    /// them). The struct literal is evaluated top to bottom, and it names
    /// every field, so a new child kind cannot be left out.
    pub async fn in_apply_order<T, E: EachChild>(self, each: &mut E) -> Result<Resources<T>, E::Error> {
        let Resources {
            http_secret,
            signing_key,
            config_map,
            access_config_map,
            pvc,
            service,
            deployment,
            pdb,
            ingress,
            network_policy,
            gc_cronjob,
            state: _,
        } = self;
        Ok(Resources {
            http_secret: each.child(http_secret).await?,
            signing_key: optional(each, signing_key).await?,
            config_map: each.child(config_map).await?,
            access_config_map: optional(each, access_config_map).await?,
            pvc: optional(each, pvc).await?,
            service: each.child(service).await?,
            deployment: each.child(deployment).await?,
            pdb: optional(each, pdb).await?,
            ingress: optional(each, ingress).await?,
            network_policy: optional(each, network_policy).await?,
            gc_cronjob: optional(each, gc_cronjob).await?,
            state: PhantomData,
        })
    }
}

impl<S: Clone> Resources<S> {
    /// The objects as one multi-document YAML stream, in apply order.
    pub fn to_yaml(&self) -> Result<String, serde_yaml::Error> {
        let mut yaml = Yaml(String::new());
        // Writing YAML awaits nothing, so this completes on its first poll.
        futures::executor::block_on(self.clone().in_apply_order::<S, _>(&mut yaml))?;
        Ok(yaml.0)
    }
}

async fn optional<E: EachChild, K: Child>(each: &mut E, obj: Option<K>) -> Result<Option<K>, E::Error> {
    match obj {
        Some(o) => Ok(Some(each.child(o).await?)),
        None => Ok(None),
    }
}

/// Appends each child as one YAML document.
struct Yaml(String);

impl EachChild for Yaml {
    type Error = serde_yaml::Error;

    async fn child<K: Child>(&mut self, obj: K) -> Result<K, Self::Error> {
        self.0.push_str("---\n");
        self.0.push_str(&serde_yaml::to_string(&obj)?);
        Ok(obj)
    }
}
