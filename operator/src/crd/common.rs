//! Spec parts shared by `Registry` and `RegistryMirror`: storage, client
//! auth, network exposure, pods, maintenance and node access.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The spec fields a `Registry` and a `RegistryMirror` share: the pods, the
/// storage, client auth and the network in front. Declared once and
/// flattened into both specs, so each field appears at the top of `spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.storage.emptyDir) || self.replicas <= 1"
).message("storage.emptyDir is local to each pod: with more than one replica every pod would hold different images. Use s3, or a ReadWriteMany filesystem claim"))]
#[x_kube(validation = Rule::new(
    "!has(self.storage.filesystem) || self.replicas <= 1 || has(self.storage.filesystem.existingClaim) || (has(self.storage.filesystem.accessModes) && 'ReadWriteMany' in self.storage.filesystem.accessModes)"
).message("storage.filesystem with more than one replica needs accessModes [ReadWriteMany]: a ReadWriteOnce claim mounts on one node only"))]
pub struct ServerSpec {
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
    /// Where images are stored (a mirror's cache). Exactly one kind.
    pub storage: StorageSpec,
    /// Client authentication; open to everyone when unset. A RegistryMirror
    /// whose upstreams carry credentials requires it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// The Service in front of the registry pods.
    #[serde(default)]
    pub service: ServiceSpec,
    /// An Ingress; its host becomes the advertised host and realm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
    /// TLS served by the registry pods themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// A NetworkPolicy limiting who reaches the registry pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,
    /// The web UI, served by the registry pods under `path` (behind the same
    /// Service and Ingress, with the same auth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<UiSpec>,
}

/// The registry's web UI: repositories, tags, manifests, search and deletes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct UiSpec {
    /// Serve the UI.
    #[serde(default)]
    pub enabled: bool,
    /// Where, e.g. `/ui/` (the default): lowercase letters, digits, `-`, `_`
    /// and `/`, starting and ending with `/`, not under `/v2/`, `/v1/` or `/auth/`.
    #[x_kube(validation = Rule::new(
        "self.matches('^/([a-z0-9_-]+/)+$') && !self.startsWith('/v2/') && !self.startsWith('/v1/') && !self.startsWith('/auth/')"
    ).message("ui.path must look like /ui/ (lowercase letters, digits, - and _, between slashes) and not be under /v2/, /v1/ or /auth/"))]
    #[schemars(length(max = 100))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Where the registry keeps its blobs and manifests. Set exactly one of
/// `filesystem`, `emptyDir` and `s3`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "[has(self.filesystem), has(self.emptyDir), has(self.s3)].filter(x, x).size() == 1"
).message("storage: set exactly one of filesystem, emptyDir and s3"))]
pub struct StorageSpec {
    /// A PersistentVolumeClaim mounted at the storage root: either one the
    /// operator creates (`size`, `storageClassName`, `accessModes`) or an
    /// existing claim (`existingClaim`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FilesystemStorage>,
    /// A pod-local emptyDir volume. Everything is lost when the pod goes:
    /// for throwaway registries and tests only. Needs `replicas: 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirStorage>,
    /// An S3 (or S3-compatible) bucket. Replicas share it, so the Deployment
    /// rolls pods one at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Storage>,
}

/// A PersistentVolumeClaim for the storage root.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "has(self.existingClaim) != has(self.size)"
).message("storage.filesystem: set size (for a claim the operator creates) or existingClaim (for your own claim), not both"))]
#[x_kube(validation = Rule::new(
    "!has(self.existingClaim) || (!has(self.storageClassName) && !has(self.accessModes))"
).message("storage.filesystem: storageClassName and accessModes describe a claim the operator creates; they cannot be set with existingClaim"))]
pub struct FilesystemStorage {
    /// Requested size of the claim the operator creates, e.g. `20Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,
    /// StorageClass of the claim the operator creates; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Access modes of the claim the operator creates; `[ReadWriteOnce]` when
    /// unset. With ReadWriteOnce the Deployment uses the Recreate strategy and
    /// runs one replica; ReadWriteMany allows several replicas and rolling updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_modes: Option<Vec<AccessMode>>,
    /// Name of an existing claim in the same namespace to use instead of creating one.
    /// The operator never modifies or deletes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_claim: Option<String>,
    /// Keep the claim the operator created when the resource is deleted.
    /// When false (the default) the claim, and every image in it, is deleted
    /// with the resource.
    #[serde(default)]
    pub retain_on_delete: bool,
}

/// A PersistentVolumeClaim access mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AccessMode {
    /// Mounted read-write by one node.
    ReadWriteOnce,
    /// Mounted read-write by one pod.
    ReadWriteOncePod,
    /// Mounted read-write by many nodes.
    ReadWriteMany,
}

/// A pod-local emptyDir volume.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmptyDirStorage {
    /// Upper bound of the volume, e.g. `5Gi`; the pod is evicted beyond it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<Quantity>,
}

/// An S3 bucket, or a bucket of an S3-compatible service (Ceph RGW,
/// versitygw, Aliyun OSS, Cloudflare R2, ...). Rendered as the registry's
/// `storage.s3` with registry:2's keys. Credentials come from a Secret and
/// reach the registry as environment variables, never through the ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.keyId) || (has(self.encrypt) && self.encrypt)"
).message("storage.s3.keyId applies only with encrypt: true"))]
pub struct S3Storage {
    /// Bucket name. The bucket must exist: the registry does not create it.
    pub bucket: String,
    /// Region of the bucket, e.g. `us-east-1` (any value for most
    /// S3-compatible services; `oss-cn-hangzhou` style for Aliyun OSS).
    pub region: String,
    /// Endpoint URL of an S3-compatible service, e.g.
    /// `http://versitygw.s3.svc.cluster.local:7070` or
    /// `https://oss-cn-hangzhou.aliyuncs.com`; AWS when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/]+')").message(
        "storage.s3.endpoint must be an http:// or https:// URL"
    ))]
    #[schemars(length(max = 2048))]
    pub endpoint: Option<String>,
    /// Address the bucket as `<endpoint>/<bucket>` instead of `<bucket>.<endpoint>`
    /// (MinIO, Ceph RGW and versitygw need this; AWS and Aliyun OSS use
    /// virtual-hosted style, `false`).
    #[serde(default)]
    pub force_path_style: bool,
    /// Prefix inside the bucket under which the registry keeps everything
    /// (`<rootDirectory>/docker/registry/v2/...`, as registry:2 does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_directory: Option<String>,
    /// Secret holding the access key pair. When unset the registry uses its
    /// ambient credentials (e.g. an IAM role for the pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<S3Credentials>,
    /// Size of each part of a multipart upload, e.g. `10Mi` (the default),
    /// between `5Mi` and `5Gi`. Every part but the last has this size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<Quantity>,
    /// Storage class of the objects written, e.g. `STANDARD` or
    /// `STANDARD_IA`; the bucket's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Z_]+$')").message(
        "storage.s3.storageClass is an S3 storage class name such as STANDARD or STANDARD_IA"
    ))]
    #[schemars(length(max = 64))]
    pub storage_class: Option<String>,
    /// Server-side encryption of the objects written (SSE-S3, or SSE-KMS with `keyId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt: Option<bool>,
    /// KMS key id for server-side encryption; needs `encrypt: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Do not verify the endpoint's TLS certificate. For test setups only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_verify: Option<bool>,
    /// Answer blob downloads with a 307 redirect to a presigned URL on the
    /// endpoint, as registry:2 does by default, so the bytes do not pass
    /// through the registry. Off by default: every client, including each
    /// node's container runtime, must then resolve and reach the endpoint,
    /// which an in-cluster S3 service name does not allow.
    #[serde(default)]
    pub redirect: bool,
}

/// A Secret holding an S3 access key pair.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Credentials {
    /// Name of the Secret in the resource's namespace.
    pub secret_name: String,
    /// Key of the access key id in the Secret.
    #[serde(default = "default_access_key_id_key")]
    pub access_key_id_key: String,
    /// Key of the secret access key in the Secret.
    #[serde(default = "default_secret_access_key_key")]
    pub secret_access_key_key: String,
}

fn default_access_key_id_key() -> String {
    "accessKeyId".into()
}
fn default_secret_access_key_key() -> String {
    "secretAccessKey".into()
}

/// How clients authenticate. Leave it out (or empty) for an open registry;
/// otherwise set exactly one of `htpasswd`, `token` and `externalToken`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "[has(self.htpasswd), has(self.token), has(self.externalToken)].filter(x, x).size() <= 1"
).message("auth: set at most one of htpasswd, token and externalToken"))]
pub struct AuthSpec {
    /// HTTP Basic auth against an htpasswd file (bcrypt entries, as
    /// `htpasswd -B` writes them) kept in a Secret. Every user may push and pull everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub htpasswd: Option<HtpasswdAuth>,
    /// The built-in token service: users from an htpasswd Secret, groups and
    /// per-repository access rules. The operator generates and keeps the signing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenAuth>,
    /// Bearer tokens minted by an external token service (e.g. Harbor core,
    /// docker_auth), verified against its certificate bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_token: Option<ExternalTokenAuth>,
}

impl AuthSpec {
    /// True when some client auth is configured.
    pub fn is_configured(&self) -> bool {
        self.htpasswd.is_some() || self.token.is_some() || self.external_token.is_some()
    }
}

/// A key of a Secret in the resource's namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub secret_name: String,
    /// Key inside the Secret; see the field's description for the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Basic auth against an htpasswd Secret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HtpasswdAuth {
    /// The Secret with the htpasswd content (key `htpasswd` unless `key` is set).
    /// It is mounted as is and reloaded by the registry when it changes.
    pub secret: SecretKeyRef,
    /// Realm shown in the Basic challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
}

/// The built-in token service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.rules) || self.rules.all(r, !has(r.groups) || r.groups.all(g, has(self.groups) && g in self.groups))"
).message("auth.token.rules: every group a rule names must be defined under auth.token.groups"))]
pub struct TokenAuth {
    /// The Secret with the users' htpasswd content (bcrypt, key `htpasswd`
    /// unless `key` is set). Passwords stay in this Secret: it is mounted, never copied.
    pub users: SecretKeyRef,
    /// Groups of users, by group name, for use in `rules`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 256))]
    pub groups: Option<BTreeMap<String, Vec<String>>>,
    /// Access rules. A subject's actions on a repository are the union over
    /// every rule that matches it. With no rules nobody may do anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub rules: Option<Vec<AccessRule>>,
    /// Lifetime of issued tokens, as a Go duration (`5m`, `1h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"))]
    pub expiration: Option<String>,
    /// Issuer named in tokens; `wharf.dev/<namespace>/<name>` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// One access rule of the built-in token service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "(has(self.users) && size(self.users) > 0) || (has(self.groups) && size(self.groups) > 0) || (has(self.anonymous) && self.anonymous)"
).message("an access rule must name users, groups, or set anonymous: true"))]
pub struct AccessRule {
    /// Repository glob: `*` matches within one path component, `**` across
    /// components, `{user}` is the authenticated user's name (e.g. `team-a/**`, `{user}/**`).
    pub repository: String,
    /// User names, or `*` for every authenticated user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub users: Option<Vec<String>>,
    /// Group names, defined under `groups`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub groups: Option<Vec<String>>,
    /// Allow these actions to clients without credentials too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous: Option<bool>,
    /// Actions granted.
    pub actions: Vec<RepositoryAction>,
}

/// An action on a repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RepositoryAction {
    /// Read manifests and blobs.
    #[serde(rename = "pull")]
    Pull,
    /// Upload blobs and manifests.
    #[serde(rename = "push")]
    Push,
    /// Delete manifests and blobs.
    #[serde(rename = "delete")]
    Delete,
    /// Every action.
    #[serde(rename = "*")]
    All,
}

/// Tokens from an external token service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalTokenAuth {
    /// URL of the token service that clients are sent to. It must be an
    /// address every client can reach: never localhost, never a bare host name.
    #[x_kube(validation = Rule::new(
        "self.matches('^https?://[^/]+') && !self.matches('^https?://(localhost|127\\\\.|\\\\[::1\\\\])') && self.matches('^https?://[^/:]*\\\\.')"
    ).message("auth.externalToken.realm must be an http(s) URL on a host every client can reach: not localhost or 127.0.0.0/8, and a host name with a dot (a bare name like `auth` resolves only in some places)"))]
    #[schemars(length(max = 2048))]
    pub realm: String,
    /// Service (audience) the tokens name; usually the registry host.
    pub service: String,
    /// Issuer the tokens name.
    pub issuer: String,
    /// The Secret holding the PEM certificate bundle that token signatures
    /// chain to (key `ca.crt` unless `key` is set).
    pub root_cert_bundle: SecretKeyRef,
}

/// The Service in front of the registry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service type.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Service port, named `registry`. Part of the in-cluster host name that
    /// goes into image references (`<name>.<namespace>.svc.<domain>:<port>`).
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Node port, for type NodePort or LoadBalancer; allocated when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub node_port: Option<i32>,
    /// Annotations on the Service (e.g. for a cloud load balancer).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        ServiceSpec {
            type_: ServiceType::default(),
            port: default_port(),
            node_port: None,
            annotations: BTreeMap::new(),
        }
    }
}

fn default_port() -> i32 {
    5000
}

/// A Service type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    #[default]
    ClusterIP,
    /// Also on a port of every node.
    NodePort,
    /// Also through a cloud load balancer.
    LoadBalancer,
}

/// An Ingress in front of the registry. Its host becomes the advertised host
/// and the token realm.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Fully qualified host name, e.g. `registry.example.com`.
    #[x_kube(validation = Rule::new(
        "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$') && self != 'localhost'"
    ).message("ingress.host must be a fully qualified DNS name with at least one dot: docker reads a bare name as a Docker Hub namespace"))]
    #[schemars(length(max = 253))]
    pub host: String,
    /// IngressClass name; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Secret with the certificate for `host` (type kubernetes.io/tls). With
    /// it the advertised URL and realm use https.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    /// Largest request body the ingress controller accepts, as the
    /// `nginx.ingress.kubernetes.io/proxy-body-size` annotation. `0` (the
    /// default) means unlimited, so large layers never get 413.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_size: Option<String>,
    /// More annotations on the Ingress; they win over the ones the operator sets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Addresses or CIDR ranges of the ingress controller's pods (e.g. the
    /// cluster's pod CIDR), rendered as the registry's `http.trustedproxies`:
    /// only from these is `X-Forwarded-For` believed, so the login back-off
    /// counts per real client instead of per ingress pod. Empty (the default):
    /// no forwarded header is believed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub trusted_proxies: Vec<String>,
}

/// TLS served by the registry itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Secret of type kubernetes.io/tls (keys `tls.crt` and `tls.key`). Its
    /// certificate must name the in-cluster host `<name>.<namespace>.svc.<domain>`.
    pub secret_name: String,
}

/// A NetworkPolicy that admits traffic to the registry's ports from the
/// listed peers only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Create the NetworkPolicy.
    #[serde(default)]
    pub enabled: bool,
    /// Peers allowed to reach the registry (and its metrics port). When
    /// empty, every pod in every namespace may; nothing outside the cluster may.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<NetworkPolicyPeer>,
}

/// Lets the container runtime on every node pull from the registry by its
/// in-cluster name. A node resolves names with its own resolver, which does
/// not know `<name>.<namespace>.svc.<clusterDomain>`, and containerd sends a
/// pod's pull secret only to a host named like the image's registry.
///
/// When enabled, and when the cluster admin's node-access policy (the wharf
/// chart's `nodeAccess.policy`) allows it, the one node agent the chart runs
/// on every node:
/// - adds a line `<Service ClusterIP> <name>.<namespace>.svc.<domain>` to the
///   hosts file, marked `# wharf-node-access <namespace>/<name>`;
/// - writes containerd's `<certs.d>/<host:port>/hosts.toml` for the registry
///   (plain http, or https trusting `tls.secretName`'s certificate), and for
///   a RegistryMirror `<certs.d>/<upstream name>/hosts.toml` for each
///   upstream, sending pulls of that upstream's images to the mirror first.
///
/// The own in-cluster name is allowed by default. Upstream hosts outside the
/// namespace's own cluster DNS (docker.io, ghcr.io, …) need a grant in the
/// policy. A refused request sets Degraded (`NodeAccessNotAllowed`, or
/// `HostClaimed` when an older resource maps the host) and leaves the nodes
/// untouched. Turning it off (or deleting the resource) removes exactly what
/// was written for it. See docs/node-access.md.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeAccessSpec {
    /// Ask the node agent to map this registry on every node. Off by default: it changes node files.
    #[serde(default)]
    pub enabled: bool,
}

/// Log level of the registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// The default.
    #[default]
    Info,
    /// Verbose.
    Debug,
}

fn default_replicas() -> i32 {
    1
}
