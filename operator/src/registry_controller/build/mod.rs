//! Step 3: build. `build(&ValidatedRegistry)` returns every child object,
//! ready to apply. Pure: no client, no clock, no randomness, so `render`
//! and the snapshot tests see exactly what a reconcile applies.
//!
//! One file per child kind; `registry_config` is the config.yml fragment and
//! `meta` the one metadata helper.

pub mod config_map;
pub mod deployment;
pub mod gc_cronjob;
pub mod ingress;
pub mod meta;
pub mod network_policy;
pub mod pdb;
pub mod pvc;
pub mod registry_config;
pub mod secret;
pub mod service;

use std::marker::PhantomData;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::Serialize;

use super::validated::ValidatedRegistry;

/// Marker: built, not yet applied.
#[derive(Debug)]
pub struct Prepared;
/// Marker: applied; the objects are the API server's answers (with status).
#[derive(Debug)]
pub struct Applied;

/// Every child of one resource. Optional children that are `None` are
/// pruned by apply if they exist.
#[derive(Debug)]
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

impl<S> Resources<S> {
    /// The objects as one multi-document YAML stream, in apply order.
    pub fn to_yaml(&self) -> Result<String, serde_yaml::Error> {
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
        let mut out = String::new();
        fn doc<T: Serialize>(out: &mut String, obj: &T) -> Result<(), serde_yaml::Error> {
            out.push_str("---\n");
            out.push_str(&serde_yaml::to_string(obj)?);
            Ok(())
        }
        doc(&mut out, http_secret)?;
        if let Some(s) = signing_key {
            doc(&mut out, s)?;
        }
        doc(&mut out, config_map)?;
        if let Some(c) = access_config_map {
            doc(&mut out, c)?;
        }
        if let Some(p) = pvc {
            doc(&mut out, p)?;
        }
        doc(&mut out, service)?;
        doc(&mut out, deployment)?;
        if let Some(p) = pdb {
            doc(&mut out, p)?;
        }
        if let Some(i) = ingress {
            doc(&mut out, i)?;
        }
        if let Some(n) = network_policy {
            doc(&mut out, n)?;
        }
        if let Some(c) = gc_cronjob {
            doc(&mut out, c)?;
        }
        Ok(out)
    }
}
