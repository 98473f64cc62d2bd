//! The Deployment running wharf-registry, and the pod pieces the
//! garbage-collection CronJob shares with it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, KeyToPath, Lifecycle, LifecycleHandler, PersistentVolumeClaimVolumeSource, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext,
    SleepAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use sha2::{Digest, Sha256};

use crate::names::{self, paths};

use super::super::validated::{Auth, Storage, ValidatedRegistry};
use super::meta::child_meta;
use super::notifications_config::{header_mounts, value_file};
use super::registry_config::upstream_dir;

/// The user and group the registry runs as (distroless `nonroot`).
pub const RUN_AS: i64 = 65532;

/// Seconds a deleted pod keeps serving before SIGTERM starts its drain.
const PRE_STOP_SLEEP: i64 = 5;

/// Digest of everything the pods read only at start: config.yml, the
/// generated secrets, the signing key and the S3 key pair (environment
/// variables). A change rolls the pods. Users, access rules and TLS files
/// are reloaded by the registry and left out.
pub fn config_hash(v: &ValidatedRegistry, config_yaml: &str) -> String {
    let mut h = Sha256::new();
    for part in [config_yaml, &v.http_secret] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    if let Auth::Token(t) = &v.auth {
        h.update(t.signing_key_pem.as_bytes());
    }
    if let Storage::S3(s3) = &v.storage
        && let Some(d) = &s3.credentials_digest
    {
        h.update(d.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

/// The Deployment. `config_yaml` is the rendered config.yml, for the hash.
pub fn build_deployment(v: &ValidatedRegistry, config_yaml: &str) -> Deployment {
    let selector = names::selector_labels(v.kind, v.names.instance());
    let mut pod_annotations = v.pods.annotations.clone();
    pod_annotations.insert(names::ANNOTATION_CONFIG_HASH.into(), config_hash(v, config_yaml));
    let strategy = if v.storage.allows_rolling_update() {
        DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(1)),
                max_unavailable: Some(IntOrString::Int(0)),
            }),
        }
    } else {
        // A ReadWriteOnce claim cannot be mounted by the new pod while the old one holds it.
        DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None }
    };
    let mut container = registry_container(v);
    container.args = Some(vec!["serve".into(), paths::CONFIG.into()]);
    container.ports = Some(vec![
        ContainerPort {
            name: Some(names::PORT_NAME_REGISTRY.into()),
            container_port: names::REGISTRY_CONTAINER_PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        },
        ContainerPort {
            name: Some(names::PORT_NAME_DEBUG.into()),
            container_port: names::DEBUG_CONTAINER_PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        },
    ]);
    container.readiness_probe = Some(http_probe("/debug/ready", 5, 3));
    // A container that exits (e.g. refusing its configuration) leaves the end
    // of its log as termination message, which the Degraded condition quotes.
    container.termination_message_policy = Some("FallbackToLogsOnError".into());
    // Deleted pods keep serving while the Service's endpoints drop them
    // (kube-proxy and every node take a moment): without it a pull routed
    // to a pod that already closed its listener fails.
    container.lifecycle = Some(Lifecycle {
        pre_stop: Some(LifecycleHandler {
            sleep: Some(SleepAction { seconds: PRE_STOP_SLEEP }),
            ..LifecycleHandler::default()
        }),
        ..Lifecycle::default()
    });
    container.liveness_probe = Some(http_probe("/debug/health", 20, 6));
    container.resources = v.pods.resources.clone();
    let mut labels = names::labels(v.kind, v.names.instance());
    labels.extend(selector.clone());
    Deployment {
        metadata: child_meta(v, v.names.deployment()),
        spec: Some(DeploymentSpec {
            replicas: Some(v.pods.replicas),
            selector: LabelSelector { match_labels: Some(selector), ..LabelSelector::default() },
            strategy: Some(strategy),
            revision_history_limit: Some(5),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    // preStop (5s), drain (http.draintimeout 30s), margin.
                    termination_grace_period_seconds: Some(45),
                    affinity: v.pods.affinity.clone(),
                    ..pod_spec(v, container)
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(names::PORT_NAME_DEBUG.into()),
            scheme: Some("HTTP".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// A pod spec with the registry container, its volumes and the restricted
/// security context. Shared by the Deployment and the GC CronJob.
pub fn pod_spec(v: &ValidatedRegistry, container: Container) -> PodSpec {
    PodSpec {
        containers: vec![container],
        volumes: Some(volumes(v)),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            fs_group: Some(RUN_AS),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
            ..PodSecurityContext::default()
        }),
        node_selector: (!v.pods.node_selector.is_empty()).then(|| v.pods.node_selector.clone()),
        tolerations: (!v.pods.tolerations.is_empty()).then(|| v.pods.tolerations.clone()),
        ..PodSpec::default()
    }
}

/// The registry container: image, environment, mounts, security context. No args, ports or probes.
pub fn registry_container(v: &ValidatedRegistry) -> Container {
    Container {
        name: "registry".into(),
        image: Some(v.pods.image.clone()),
        env: Some(env(v)),
        volume_mounts: Some(mounts(v)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret.into(), key: key.into(), optional: Some(false) }),
            ..EnvVarSource::default()
        }),
    }
}

fn env(v: &ValidatedRegistry) -> Vec<EnvVar> {
    let mut env = vec![secret_env("REGISTRY_HTTP_SECRET", &v.names.http_secret(), names::HTTP_SECRET_KEY)];
    if let Storage::S3(s3) = &v.storage
        && let Some(c) = &s3.credentials
    {
        env.push(secret_env("REGISTRY_STORAGE_S3_ACCESSKEY", &c.secret_name, &c.access_key_id_key));
        env.push(secret_env("REGISTRY_STORAGE_S3_SECRETKEY", &c.secret_name, &c.secret_access_key_key));
    }
    env
}

const VOL_CONFIG: &str = "config";
const VOL_STORAGE: &str = "storage";
const VOL_TMP: &str = "tmp";
const VOL_TLS: &str = "tls";
const VOL_HTPASSWD: &str = "htpasswd";
const VOL_TOKEN_KEY: &str = "token-key";
const VOL_USERS: &str = "users";
const VOL_ACCESS: &str = "access";
const VOL_BUNDLE: &str = "token-bundle";
const VOL_CA_BUNDLE: &str = "ca-bundle";

fn upstream_volume(name: &str) -> String {
    // Volume names are DNS labels; upstream names may hold dots and ports.
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    format!("upstream-{}", &hex::encode(h.finalize())[..10])
}

fn upstream_ca_volume(name: &str) -> String {
    format!("{}-ca", upstream_volume(name))
}

/// Whether a mirror trusts the operator's CA for some upstream.
fn mounts_ca_bundle(v: &ValidatedRegistry) -> bool {
    v.proxy.iter().flat_map(|p| &p.upstreams).any(|u| u.ca_bundle.is_none() && u.url.starts_with("https://"))
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount { name: name.into(), mount_path: path.into(), read_only: Some(true), ..VolumeMount::default() }
}

fn mounts(v: &ValidatedRegistry) -> Vec<VolumeMount> {
    let mut m = vec![
        VolumeMount { sub_path: Some(names::CONFIG_KEY.into()), ..mount(VOL_CONFIG, paths::CONFIG) },
        VolumeMount { read_only: Some(false), ..mount(VOL_TMP, paths::TMP) },
    ];
    if matches!(v.storage, Storage::Claim { .. } | Storage::EmptyDir { .. }) {
        m.push(VolumeMount { read_only: Some(false), ..mount(VOL_STORAGE, paths::STORAGE_ROOT) });
    }
    if v.tls_secret.is_some() {
        m.push(mount(VOL_TLS, paths::TLS_DIR));
    }
    match &v.auth {
        Auth::None => {}
        Auth::Htpasswd { .. } => m.push(mount(VOL_HTPASSWD, paths::HTPASSWD_DIR)),
        Auth::Token(_) => {
            m.push(mount(VOL_TOKEN_KEY, paths::TOKEN_KEY_DIR));
            m.push(mount(VOL_USERS, paths::USERS_DIR));
            m.push(mount(VOL_ACCESS, paths::ACCESS_DIR));
        }
        Auth::External { .. } => m.push(mount(VOL_BUNDLE, paths::TOKEN_BUNDLE_DIR)),
    }
    for u in v.proxy.iter().flat_map(|p| &p.upstreams).filter(|u| u.credentials.is_some()) {
        m.push(mount(&upstream_volume(&u.name), &upstream_dir(&u.name)));
    }
    for u in v.proxy.iter().flat_map(|p| &p.upstreams).filter(|u| u.ca_bundle.is_some()) {
        m.push(mount(&upstream_ca_volume(&u.name), &format!("{}/{}", paths::UPSTREAM_CA_DIR, u.name)));
    }
    if mounts_ca_bundle(v) {
        m.push(mount(VOL_CA_BUNDLE, paths::CA_BUNDLE_DIR));
    }
    for h in v.notifications.iter().flat_map(header_mounts) {
        m.push(mount(&h.volume, &h.dir));
    }
    m
}

fn secret_volume(name: &str, secret: &str, items: &[(&str, &str)]) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            items: Some(
                items.iter().map(|(k, p)| KeyToPath { key: (*k).into(), path: (*p).into(), mode: None }).collect(),
            ),
            default_mode: Some(0o440),
            optional: Some(false),
        }),
        ..Volume::default()
    }
}

fn config_map_volume(name: &str, config_map: &str) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.into(),
            default_mode: Some(0o444),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn volumes(v: &ValidatedRegistry) -> Vec<Volume> {
    let mut vols = vec![
        config_map_volume(VOL_CONFIG, &v.names.config_map()),
        Volume { name: VOL_TMP.into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Volume::default() },
    ];
    match &v.storage {
        Storage::Claim { claim_name, .. } => vols.push(Volume {
            name: VOL_STORAGE.into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name.clone(),
                read_only: None,
            }),
            ..Volume::default()
        }),
        Storage::EmptyDir { size_limit } => vols.push(Volume {
            name: VOL_STORAGE.into(),
            empty_dir: Some(EmptyDirVolumeSource { size_limit: size_limit.clone(), medium: None }),
            ..Volume::default()
        }),
        Storage::S3(_) => {}
    }
    if let Some(tls) = &v.tls_secret {
        vols.push(secret_volume(
            VOL_TLS,
            tls,
            &[(names::TLS_CERT_KEY, names::TLS_CERT_KEY), (names::TLS_KEY_KEY, names::TLS_KEY_KEY)],
        ));
    }
    match &v.auth {
        Auth::None => {}
        Auth::Htpasswd { secret, key, .. } => {
            vols.push(secret_volume(VOL_HTPASSWD, secret, &[(key, names::DEFAULT_HTPASSWD_KEY)]));
        }
        Auth::Token(t) => {
            vols.push(secret_volume(
                VOL_TOKEN_KEY,
                &v.names.signing_key_secret(),
                &[(names::TOKEN_SIGNING_KEY_KEY, names::TOKEN_SIGNING_KEY_KEY)],
            ));
            vols.push(secret_volume(VOL_USERS, &t.users_secret, &[(&t.users_key, names::DEFAULT_HTPASSWD_KEY)]));
            vols.push(config_map_volume(VOL_ACCESS, &v.names.access_config_map()));
        }
        Auth::External { bundle_secret, bundle_key, .. } => {
            vols.push(secret_volume(VOL_BUNDLE, bundle_secret, &[(bundle_key, names::DEFAULT_BUNDLE_KEY)]));
        }
    }
    for u in v.proxy.iter().flat_map(|p| &p.upstreams) {
        if let Some(c) = &u.credentials {
            vols.push(secret_volume(
                &upstream_volume(&u.name),
                &c.secret_name,
                &[(&c.username_key, "username"), (&c.password_key, "password")],
            ));
        }
        if let Some((config_map, key)) = &u.ca_bundle {
            vols.push(config_map_items_volume(&upstream_ca_volume(&u.name), config_map, key, names::CA_CERT_KEY));
        }
    }
    if mounts_ca_bundle(v) {
        vols.push(config_map_items_volume(
            VOL_CA_BUNDLE,
            names::CA_BUNDLE_CONFIG_MAP,
            names::CA_CERT_KEY,
            names::CA_CERT_KEY,
        ));
    }
    // Notification headers from Secrets: a directory each (no subPath, so
    // a rotated Secret reaches the file the registry reads at each delivery).
    for h in v.notifications.iter().flat_map(header_mounts) {
        vols.push(secret_volume(&h.volume, &h.secret, &[(&h.key, value_file())]));
    }
    vols
}

fn config_map_items_volume(name: &str, config_map: &str, key: &str, path: &str) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.into(),
            items: Some(vec![KeyToPath { key: key.into(), path: path.into(), mode: None }]),
            default_mode: Some(0o444),
            optional: Some(false),
        }),
        ..Volume::default()
    }
}

/// Labels of the registry pods, for affinity terms.
pub fn pod_labels(v: &ValidatedRegistry) -> BTreeMap<String, String> {
    names::selector_labels(v.kind, v.names.instance())
}
