//! `Registry`: a private registry run by the operator.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::*;
use super::conditions::RegistryStatus;

/// A container registry (wharf-registry) with its storage, auth and network
/// exposure. The operator creates the Deployment, Service, configuration and
/// generated secrets, and reports the host to use in image references in
/// `status.host`.
// Several `printcolumn(...)` entries look like duplicated attributes to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "wharf.dev",
    version = "v1alpha1",
    kind = "Registry",
    namespaced,
    shortname = "reg",
    status = "RegistryStatus",
    doc = "A container registry run by wharf-operator.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.storage.emptyDir) || self.replicas <= 1"
).message("storage.emptyDir is local to each pod: with more than one replica every pod would hold different images. Use s3, or a ReadWriteMany filesystem claim"))]
#[x_kube(validation = Rule::new(
    "!has(self.storage.filesystem) || self.replicas <= 1 || has(self.storage.filesystem.existingClaim) || (has(self.storage.filesystem.accessModes) && 'ReadWriteMany' in self.storage.filesystem.accessModes)"
).message("storage.filesystem with more than one replica needs accessModes [ReadWriteMany]: a ReadWriteOnce claim mounts on one node only"))]
pub struct RegistrySpec {
    /// Number of registry pods.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// Registry image; the wharf-registry image of the operator's own version when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Compute resources of the registry container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node labels the registry pods must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the registry pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity of the registry pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Annotations added to the registry pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    /// Registry log level.
    #[serde(default)]
    pub log_level: LogLevel,
    /// Where images are stored. Exactly one kind.
    pub storage: StorageSpec,
    /// Client authentication; an open registry when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// The Service in front of the registry.
    #[serde(default)]
    pub service: ServiceSpec,
    /// An Ingress; its host becomes the advertised host and realm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
    /// TLS served by the registry itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// A NetworkPolicy limiting who reaches the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,
    /// Allow deleting manifests and blobs through the API.
    #[serde(default)]
    pub delete_enabled: bool,
    /// Scheduled garbage collection of unreferenced blobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garbage_collection: Option<GarbageCollectionSpec>,
    /// Let every node's containerd pull from this registry by its in-cluster
    /// name: a DaemonSet `<name>-node-access` adds `<ClusterIP> <name>.<namespace>.svc.<domain>`
    /// to each node's hosts file and writes `<certs.d>/<host:port>/hosts.toml`,
    /// all marked `wharf-node-access <namespace>/<name>`, and removes exactly
    /// that when it stops (nodeAccess off, or the resource deleted). Needs
    /// containerd's `config_path` set to the certs dir and hostPath volumes
    /// allowed in the namespace. See docs/node-access.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_access: Option<NodeAccessSpec>,
}
