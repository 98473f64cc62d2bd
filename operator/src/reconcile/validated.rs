//! What validate hands the builders: [`ValidatedRegistry`] and its parts,
//! each checked, with defaults filled in. Types only; the checks are in
//! [`super::validate`]. Also [`Identity`], the resource's name, namespace
//! and owner reference.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::crd::mirror::UpstreamCredentials;
use crate::crd::{LogLevel, QuotaSpec, RepositoryAction, RetentionSpec, ServiceType};
use crate::names::{ChildNames, Endpoint, OwnerKind};

use super::s3::S3Settings;

/// Everything the builders need, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedRegistry {
    /// Registry or RegistryMirror.
    pub kind: OwnerKind,
    /// Child names.
    pub names: ChildNames,
    /// Namespace of the resource and its children.
    pub namespace: String,
    /// Owner reference every child carries.
    pub owner: OwnerReference,
    /// Advertised host, URL and realm.
    pub endpoint: Endpoint,
    /// Pod settings.
    pub pods: Pods,
    /// Registry log level.
    pub log_level: LogLevel,
    /// The web UI's path, when it is on.
    pub ui_path: Option<String>,
    /// Storage.
    pub storage: Storage,
    /// Client auth.
    pub auth: Auth,
    /// The Service.
    pub service: Service,
    /// The Ingress.
    pub ingress: Option<Ingress>,
    /// The registry's own TLS Secret.
    pub tls_secret: Option<String>,
    /// Peers admitted by the NetworkPolicy, when there is one.
    pub network_policy: Option<Vec<NetworkPolicyPeer>>,
    /// The operator's namespace: its pods read the registry pods' `/debug/ready`.
    pub operator_namespace: String,
    /// `storage.delete.enabled`.
    pub delete_enabled: bool,
    /// Garbage collection, when configured.
    pub gc: Option<GarbageCollection>,
    /// Retention policies (only with online collection).
    pub retention: Option<RetentionSpec>,
    /// Storage quotas.
    pub quotas: Vec<QuotaSpec>,
    /// The generated `http.secret`.
    pub http_secret: String,
    /// Proxy (mirror) settings.
    pub proxy: Option<Proxy>,
}

/// Garbage collection, checked, with defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct GarbageCollection {
    /// CronJob or online.
    pub mode: GcMode,
    /// Grace of unreferenced blobs, a Go duration (`--min-age`, `storage.gc.delay`).
    pub min_age: String,
    /// Also delete untagged manifests (`-m`, `storage.gc.deleteuntagged`).
    pub delete_untagged: bool,
}

/// Where the collection runs.
#[derive(Clone, Debug, PartialEq)]
pub enum GcMode {
    /// A CronJob on this cron schedule.
    Scheduled(String),
    /// Inside the registry, every `interval` (a Go duration).
    Online {
        /// Time between collections.
        interval: String,
    },
}

impl ValidatedRegistry {
    /// When to read the last collection and quota use again: after the
    /// online collection's interval (so the status follows each pass), at
    /// most every `UPKEEP_RECHECK_MIN`, at least every `UPKEEP_RECHECK`.
    pub fn upkeep_recheck(&self) -> std::time::Duration {
        use super::{UPKEEP_RECHECK, UPKEEP_RECHECK_MIN};
        let online = match self.gc.as_ref().map(|g| &g.mode) {
            Some(GcMode::Online { interval }) => crate::syntax::go_duration_secs(interval),
            _ => None,
        };
        match online {
            Some(secs) if secs.is_finite() && secs >= 0.0 => {
                std::time::Duration::from_secs_f64(secs.min(UPKEEP_RECHECK.as_secs_f64())).max(UPKEEP_RECHECK_MIN)
            }
            _ => UPKEEP_RECHECK,
        }
    }

    /// The cron schedule, when garbage collection runs as a CronJob.
    pub fn gc_schedule(&self) -> Option<&str> {
        match &self.gc.as_ref()?.mode {
            GcMode::Scheduled(s) => Some(s),
            GcMode::Online { .. } => None,
        }
    }
}

/// Pod settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Pods {
    /// Replicas.
    pub replicas: i32,
    /// Image.
    pub image: String,
    /// Resources.
    pub resources: Option<ResourceRequirements>,
    /// Node selector.
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations.
    pub tolerations: Vec<Toleration>,
    /// Affinity.
    pub affinity: Option<Affinity>,
    /// Extra pod annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Storage, checked.
#[derive(Clone, Debug, PartialEq)]
pub enum Storage {
    /// A claim mounted at the storage root.
    Claim {
        /// Name of the claim.
        claim_name: String,
        /// The claim to create, unless it is the user's own.
        create: Option<NewClaim>,
        /// Whether several pods may mount it at once (ReadWriteMany).
        shared: bool,
    },
    /// An emptyDir.
    EmptyDir {
        /// Size limit.
        size_limit: Option<Quantity>,
    },
    /// An S3 bucket.
    S3(Box<S3Settings>),
}

impl Storage {
    /// Whether pods can be replaced one at a time (several mount the storage at once).
    pub fn allows_rolling_update(&self) -> bool {
        match self {
            Storage::Claim { shared, .. } => *shared,
            Storage::EmptyDir { .. } | Storage::S3(_) => true,
        }
    }
}

/// A claim the operator creates.
#[derive(Clone, Debug, PartialEq)]
pub struct NewClaim {
    /// Requested size.
    pub size: Quantity,
    /// StorageClass.
    pub storage_class_name: Option<String>,
    /// Access modes.
    pub access_modes: Vec<String>,
    /// Keep it when the resource is deleted (no owner reference).
    pub retain: bool,
}

/// Client auth, checked.
#[derive(Clone, Debug, PartialEq)]
pub enum Auth {
    /// Anyone may pull and push.
    None,
    /// Basic auth against a mounted htpasswd Secret.
    Htpasswd {
        /// Secret name.
        secret: String,
        /// Key in the Secret.
        key: String,
        /// Basic realm.
        realm: String,
    },
    /// The built-in token service.
    Token(Box<TokenService>),
    /// Tokens from an external service.
    External {
        /// Realm URL.
        realm: String,
        /// Service (audience).
        service: String,
        /// Issuer.
        issuer: String,
        /// Secret with the bundle.
        bundle_secret: String,
        /// Key in the Secret.
        bundle_key: String,
    },
}

impl Auth {
    /// Whether clients must authenticate.
    pub fn is_configured(&self) -> bool {
        !matches!(self, Auth::None)
    }
}

/// The built-in token service, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenService {
    /// Secret with the users' htpasswd.
    pub users_secret: String,
    /// Key in that Secret.
    pub users_key: String,
    /// Groups, by name.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Access rules.
    pub rules: Vec<AccessRule>,
    /// Token issuer.
    pub issuer: String,
    /// Token lifetime.
    pub expiration: String,
    /// The signing key, PEM.
    pub signing_key_pem: String,
}

/// One access rule, as access.yml writes it.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessRule {
    /// Repository glob.
    pub repository: String,
    /// Users.
    pub users: Vec<String>,
    /// Groups.
    pub groups: Vec<String>,
    /// Anonymous access.
    pub anonymous: bool,
    /// Actions.
    pub actions: Vec<RepositoryAction>,
}

/// The Service, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    /// Type.
    pub type_: ServiceType,
    /// Port.
    pub port: i32,
    /// Node port.
    pub node_port: Option<i32>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
}

/// The Ingress, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Ingress {
    /// Host.
    pub host: String,
    /// IngressClass.
    pub class_name: Option<String>,
    /// TLS Secret.
    pub tls_secret_name: Option<String>,
    /// Annotations, the operator's merged with the user's.
    pub annotations: BTreeMap<String, String>,
    /// `trustedProxies`: the registry's `http.trustedproxies`.
    pub trusted_proxies: Vec<String>,
}

/// Mirror settings, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Proxy {
    /// Tag revalidation interval.
    pub ttl: Option<String>,
    /// Cache bound in bytes.
    pub max_size_bytes: Option<u64>,
    /// Upstreams.
    pub upstreams: Vec<Upstream>,
}

/// One upstream, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Upstream {
    /// Host as clients write it.
    pub name: String,
    /// API URL.
    pub url: String,
    /// Credentials Secret.
    pub credentials: Option<UpstreamCredentials>,
}

/// Identity of the resource being validated.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Kind.
    pub kind: OwnerKind,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Owner reference for children.
    pub owner: OwnerReference,
}
