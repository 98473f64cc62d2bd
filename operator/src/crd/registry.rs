//! `Registry`: a private registry run by the operator.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::*;
use super::conditions::RegistryStatus;
use super::maintenance::{GarbageCollectionSpec, QuotaSpec, RetentionSpec};
use super::notifications::NotificationsSpec;

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
    "!has(self.retention) || (has(self.garbageCollection) && has(self.garbageCollection.online) && self.garbageCollection.online)"
).message("retention runs in the online collection: it needs garbageCollection.online: true"))]
pub struct RegistrySpec {
    /// The fields a RegistryMirror has too.
    #[serde(flatten)]
    pub server: ServerSpec,
    /// Allow deleting manifests and blobs through the API.
    #[serde(default)]
    pub delete_enabled: bool,
    /// Garbage collection of unreferenced blobs: a CronJob on a `schedule`,
    /// or `online` inside the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garbage_collection: Option<GarbageCollectionSpec>,
    /// Retention policies (the registry's `storage.retention`): which tags
    /// to keep; the rest are deleted before each online collection. Needs
    /// `garbageCollection.online: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,
    /// Storage limits per repository glob (the registry's `storage.quotas`);
    /// a push past one is refused. `status.quotas` shows the use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub quotas: Vec<QuotaSpec>,
    /// Let every node's containerd pull from this registry by its in-cluster
    /// name: a DaemonSet `<name>-node-access` adds `<ClusterIP> <name>.<namespace>.svc.<domain>`
    /// to each node's hosts file and writes `<certs.d>/<host:port>/hosts.toml`,
    /// all marked `wharf-node-access <namespace>/<name>`, and removes exactly
    /// that when it stops (nodeAccess off, or the resource deleted). Needs
    /// containerd's `config_path` set to the certs dir and hostPath volumes
    /// allowed in the namespace. See docs/node-access.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_access: Option<NodeAccessSpec>,
    /// Webhook notifications of pushes, pulls, mounts and deletes (the
    /// registry's `notifications`): endpoints, headers from Secrets, filters.
    /// See docs/notifications.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<NotificationsSpec>,
}
