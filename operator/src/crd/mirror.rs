//! `RegistryMirror`: a pull-through cache in front of one or more upstream registries.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::*;
use super::conditions::RegistryStatus;

/// A pull-through cache (wharf-registry in proxy mode). Clients name the
/// upstream by path prefix (`<mirror host>/docker.io/library/nginx`) or, from
/// containerd's hosts.toml, by the `ns` query parameter.
// Several `printcolumn(...)` entries look like duplicated attributes to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "wharf.dev",
    version = "v1alpha1",
    kind = "RegistryMirror",
    namespaced,
    shortname = "regmirror",
    status = "RegistryStatus",
    doc = "A pull-through registry cache run by wharf-operator.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!self.upstreams.exists(u, has(u.credentials)) || (has(self.auth) && (has(self.auth.htpasswd) || has(self.auth.token) || has(self.auth.externalToken)))"
).message("upstream credentials need client auth: without it every client that reaches the mirror could pull the upstream account's private images. Set auth (htpasswd, token or externalToken)"))]
#[x_kube(validation = Rule::new(
    "self.upstreams.all(u, self.upstreams.filter(v, v.name == u.name).size() == 1)"
).message("upstreams: each name may appear once"))]
pub struct RegistryMirrorSpec {
    /// The registries this mirror caches.
    #[schemars(length(min = 1, max = 32))]
    pub upstreams: Vec<Upstream>,
    /// How long a cached tag is served before it is revalidated upstream, as a Go duration (`24h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"))]
    pub ttl: Option<String>,
    /// Upper bound of the cache; least recently used blobs are evicted beyond it (e.g. `50Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<Quantity>,
    /// The fields a Registry has too.
    #[serde(flatten)]
    pub server: ServerSpec,
    /// Let every node's containerd pull through this mirror: a DaemonSet
    /// `<name>-node-access` adds `<ClusterIP> <name>.<namespace>.svc.<domain>`
    /// to each node's hosts file and, for each upstream name (e.g. docker.io),
    /// writes `<certs.d>/<upstream name>/hosts.toml` that tries the mirror
    /// first (containerd falls back to the upstream itself). Everything is
    /// marked `wharf-node-access <namespace>/<name>` and removed exactly when
    /// the agent stops (nodeAccess off, or the resource deleted). containerd
    /// sends no pull secret to a mirror host, so node pulls through the mirror
    /// are anonymous. See docs/node-access.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_access: Option<NodeAccessSpec>,
}

/// An upstream registry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Upstream {
    /// The upstream's host as clients write it in image references
    /// (`docker.io`, `ghcr.io`); the first path component under the mirror.
    #[x_kube(validation = Rule::new(
        "self.matches('^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?$')"
    ).message("upstreams[].name must be a lowercase host name as clients write it, e.g. docker.io"))]
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// URL of the upstream's registry API, e.g. `https://registry-1.docker.io`.
    #[x_kube(validation = Rule::new(
        "self.matches('^https?://[^/@]+(/.*)?$')"
    ).message("upstreams[].url must be an http(s) URL without user info"))]
    #[schemars(length(max = 2048))]
    pub url: String,
    /// Upstream account credentials from a Secret. With credentials the mirror requires client auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<UpstreamCredentials>,
    /// CA certificates (PEM) to trust for this upstream besides the system's,
    /// for a private upstream. Unset: the system's and the operator's CA, so
    /// an in-cluster Wharf registry verifies with no setup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<CaBundleRef>,
}

/// A key of a ConfigMap holding PEM certificates (certificates are public).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaBundleRef {
    /// Name of the ConfigMap in the mirror's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub config_map_name: String,
    /// Key of the PEM bundle in it.
    #[serde(default = "default_bundle_key")]
    pub key: String,
}

fn default_bundle_key() -> String {
    "ca.crt".into()
}

/// A Secret holding upstream account credentials. It is mounted as files, never copied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamCredentials {
    /// Name of the Secret in the mirror's namespace.
    pub secret_name: String,
    /// Key of the user name in the Secret.
    #[serde(default = "default_username_key")]
    pub username_key: String,
    /// Key of the password (or access token) in the Secret.
    #[serde(default = "default_password_key")]
    pub password_key: String,
}

fn default_username_key() -> String {
    "username".into()
}
fn default_password_key() -> String {
    "password".into()
}
