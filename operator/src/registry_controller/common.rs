//! The spec fields a Registry and a RegistryMirror share, borrowed from
//! either, so dereference and validate are written once.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};

use crate::crd::{
    AuthSpec, GarbageCollectionSpec, IngressSpec, LogLevel, NetworkPolicySpec, NodeAccessSpec, Registry,
    RegistryMirror, RegistryMirrorSpec, ServiceSpec, StorageSpec, TlsSpec,
};

/// The shared part of a spec.
#[derive(Clone, Copy, Debug)]
pub struct CommonSpec<'a> {
    /// `replicas`.
    pub replicas: i32,
    /// `image`.
    pub image: Option<&'a str>,
    /// `resources`.
    pub resources: Option<&'a ResourceRequirements>,
    /// `nodeSelector`.
    pub node_selector: &'a BTreeMap<String, String>,
    /// `tolerations`.
    pub tolerations: &'a [Toleration],
    /// `affinity`.
    pub affinity: Option<&'a Affinity>,
    /// `podAnnotations`.
    pub pod_annotations: &'a BTreeMap<String, String>,
    /// `logLevel`.
    pub log_level: LogLevel,
    /// `storage`.
    pub storage: &'a StorageSpec,
    /// `auth`.
    pub auth: Option<&'a AuthSpec>,
    /// `service`.
    pub service: &'a ServiceSpec,
    /// `ingress`.
    pub ingress: Option<&'a IngressSpec>,
    /// `tls`.
    pub tls: Option<&'a TlsSpec>,
    /// `networkPolicy`.
    pub network_policy: Option<&'a NetworkPolicySpec>,
    /// `deleteEnabled` (a mirror never deletes through the API).
    pub delete_enabled: bool,
    /// `garbageCollection` (Registry only).
    pub garbage_collection: Option<&'a GarbageCollectionSpec>,
    /// `nodeAccess`.
    pub node_access: Option<&'a NodeAccessSpec>,
}

impl<'a> CommonSpec<'a> {
    /// The shared part of a Registry's spec.
    pub fn of_registry(r: &'a Registry) -> Self {
        let s = &r.spec;
        CommonSpec {
            replicas: s.replicas,
            image: s.image.as_deref(),
            resources: s.resources.as_ref(),
            node_selector: &s.node_selector,
            tolerations: &s.tolerations,
            affinity: s.affinity.as_ref(),
            pod_annotations: &s.pod_annotations,
            log_level: s.log_level,
            storage: &s.storage,
            auth: s.auth.as_ref(),
            service: &s.service,
            ingress: s.ingress.as_ref(),
            tls: s.tls.as_ref(),
            network_policy: s.network_policy.as_ref(),
            delete_enabled: s.delete_enabled,
            garbage_collection: s.garbage_collection.as_ref(),
            node_access: s.node_access.as_ref(),
        }
    }

    /// The shared part of a RegistryMirror's spec.
    pub fn of_mirror(m: &'a RegistryMirror) -> Self {
        Self::of_mirror_spec(&m.spec)
    }

    /// The shared part of a RegistryMirror's spec.
    pub fn of_mirror_spec(s: &'a RegistryMirrorSpec) -> Self {
        CommonSpec {
            replicas: s.replicas,
            image: s.image.as_deref(),
            resources: s.resources.as_ref(),
            node_selector: &s.node_selector,
            tolerations: &s.tolerations,
            affinity: s.affinity.as_ref(),
            pod_annotations: &s.pod_annotations,
            log_level: s.log_level,
            storage: &s.storage,
            auth: s.auth.as_ref(),
            service: &s.service,
            ingress: s.ingress.as_ref(),
            tls: s.tls.as_ref(),
            network_policy: s.network_policy.as_ref(),
            delete_enabled: false,
            garbage_collection: None,
            node_access: s.node_access.as_ref(),
        }
    }

    /// Whether the built-in token service (and so a signing key) is configured.
    pub fn uses_token_service(&self) -> bool {
        self.auth.is_some_and(|a| a.token.is_some())
    }

    /// Whether `nodeAccess.enabled` is set.
    pub fn node_access_enabled(&self) -> bool {
        self.node_access.is_some_and(|n| n.enabled)
    }

    /// Names of the user Secrets the operator must read to validate the spec.
    /// TLS Secrets of the Ingress are the ingress controller's business and are not read.
    pub fn referenced_secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(auth) = self.auth {
            if let Some(h) = &auth.htpasswd {
                out.push(h.secret.secret_name.clone());
            }
            if let Some(t) = &auth.token {
                out.push(t.users.secret_name.clone());
            }
            if let Some(e) = &auth.external_token {
                out.push(e.root_cert_bundle.secret_name.clone());
            }
        }
        if let Some(tls) = self.tls {
            out.push(tls.secret_name.clone());
        }
        if let Some(c) = self.storage.s3.as_ref().and_then(|s| s.credentials.as_ref()) {
            out.push(c.secret_name.clone());
        }
        out
    }
}
