//! The status both kinds report, and the condition vocabulary.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a Registry or RegistryMirror.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` and `Degraded`, with reasons such as
    /// InvalidSpec, SecretMissing, PVCPending and RolloutInProgress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Base URL of the registry API, e.g. `http://reg.team-a.svc.cluster.local:5000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Host to use in image references, e.g. `reg.team-a.svc.cluster.local:5000/team-a/app:1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Token realm clients are sent to, when token auth is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// Registry pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// With `nodeAccess`: the hosts the node agent maps for this resource, or
    /// why it maps none (refused by the cluster's policy, or claimed by an older resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_access: Option<String>,
    /// With `garbageCollection.online` or a schedule: the last collection, as
    /// a ready registry pod reports it (`/debug/gc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garbage_collection: Option<LastCollection>,
    /// With `quotas`: each quota's use, as a ready registry pod reports it (`/debug/quotas`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quotas: Vec<QuotaUse>,
}

/// The last garbage collection, online or by the CronJob.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastCollection {
    /// When it finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Whether it was a dry run (nothing deleted).
    #[serde(default)]
    pub dry_run: bool,
    /// Blobs deleted.
    #[serde(default)]
    pub blobs_deleted: i64,
    /// Bytes reclaimed.
    #[serde(default)]
    pub bytes_reclaimed: i64,
    /// Manifests deleted (untagged ones, with `deleteUntagged`).
    #[serde(default)]
    pub manifests_deleted: i64,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One quota's use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaUse {
    /// The quota's repository glob.
    pub repositories: String,
    /// Bytes of the unique blobs the matching repositories reference.
    pub used_bytes: i64,
    /// The limit, in bytes.
    pub limit_bytes: i64,
}

/// Condition types.
pub mod types {
    /// The registry serves with its current spec.
    pub const READY: &str = "Ready";
    /// A change is being rolled out.
    pub const PROGRESSING: &str = "Progressing";
    /// Something prevents the spec from being realised; the message says what.
    pub const DEGRADED: &str = "Degraded";
}

/// Condition reasons.
pub mod reasons {
    /// Every replica runs the current configuration.
    pub const AVAILABLE: &str = "Available";
    /// The spec is self-contradictory or names something invalid.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// A Secret the spec refers to does not exist.
    pub const SECRET_MISSING: &str = "SecretMissing";
    /// A referenced Secret lacks a key or holds malformed content.
    pub const SECRET_INVALID: &str = "SecretInvalid";
    /// `tls.issuerRef` is set and cert-manager is not installed.
    pub const CERT_MANAGER_MISSING: &str = "CertManagerMissing";
    /// The storage claim is not bound yet.
    pub const PVC_PENDING: &str = "PVCPending";
    /// Pods with the current configuration are starting.
    pub const ROLLOUT_IN_PROGRESS: &str = "RolloutInProgress";
    /// Nothing is rolling out.
    pub const ROLLOUT_COMPLETE: &str = "RolloutComplete";
    /// `replicas: 0`.
    pub const SCALED_TO_ZERO: &str = "ScaledToZero";
    /// Nothing is wrong.
    pub const AS_EXPECTED: &str = "AsExpected";
    /// The operator could not apply the children; it retries.
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// The cluster's node-access policy does not allow what `nodeAccess` asks.
    pub const NODE_ACCESS_NOT_ALLOWED: &str = "NodeAccessNotAllowed";
    /// An older resource already maps one of the hosts on the nodes.
    pub const HOST_CLAIMED: &str = "HostClaimed";
    /// A registry pod runs but says it cannot serve (its `/debug/ready`
    /// body, e.g. the S3 bucket is missing or refuses the key pair).
    pub const REGISTRY_NOT_READY: &str = "RegistryNotReady";
    /// A registry container keeps exiting (e.g. it refuses its configuration).
    pub const REGISTRY_EXITING: &str = "RegistryExiting";
}
