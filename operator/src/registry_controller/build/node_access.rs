//! The `nodeAccess` DaemonSet: `wharf-operator node-agent` on every node,
//! mapping the in-cluster host to the Service's ClusterIP in the node's hosts
//! file and writing containerd's `hosts.toml` files (see `node_agent`).
//!
//! The agent runs as root, because the node files are root's, but with no
//! capabilities, no privilege escalation, a read-only root filesystem and
//! seccomp `RuntimeDefault`. Its pods carry their own `app.kubernetes.io/name`
//! so that the registry's Service, PodDisruptionBudget and NetworkPolicy
//! never select them.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, HostPathVolumeSource, KeyToPath, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;

use crate::names;

use super::super::validate::{NodeAccess, ValidatedRegistry};
use super::meta::child_meta;

/// Where the node's hosts file is mounted in the agent container. Not
/// `/etc/hosts`: the kubelet manages the container's own.
pub const HOSTS_FILE_MOUNT: &str = "/host/hosts";
/// Where the registry's certificate is mounted, for `--ca-file`.
pub const CA_DIR: &str = "/etc/wharf/node-access";

const VOL_HOSTS: &str = "node-hosts";
const VOL_CERTS: &str = "node-certs";
const VOL_CA: &str = "registry-ca";

/// What happens to the `nodeAccess` DaemonSet in this reconcile.
#[derive(Debug)]
pub enum NodeAccessChild<T> {
    /// `nodeAccess` is off: any DaemonSet is pruned (its pods undo their changes).
    Off,
    /// On, but the Service has no ClusterIP yet: an existing DaemonSet is left as it is.
    WaitingForClusterIp,
    /// On: this DaemonSet.
    On(T),
}

impl<T> NodeAccessChild<T> {
    /// The object, when there is one.
    pub fn as_option(&self) -> Option<&T> {
        match self {
            NodeAccessChild::On(t) => Some(t),
            NodeAccessChild::Off | NodeAccessChild::WaitingForClusterIp => None,
        }
    }
}

/// Pod labels of the agent (and the DaemonSet's selector, minus component and managed-by).
fn agent_selector(v: &ValidatedRegistry) -> BTreeMap<String, String> {
    BTreeMap::from([
        (names::LABEL_NAME.to_string(), names::NODE_AGENT_APP_NAME.to_string()),
        (names::LABEL_INSTANCE.to_string(), v.names.instance().to_string()),
        (names::LABEL_OWNER_KIND.to_string(), v.kind.as_str().to_string()),
    ])
}

/// The agent's arguments (after the image's entrypoint).
pub fn agent_args(v: &ValidatedRegistry, n: &NodeAccess, cluster_ip: &str) -> Vec<String> {
    let mut args = vec![
        "node-agent".to_string(),
        format!("--owner={}/{}", v.namespace, v.names.instance()),
        format!("--hosts-file={HOSTS_FILE_MOUNT}"),
        format!("--certs-dir={}", n.certs_dir),
        format!("--host-entry={cluster_ip}={}", n.host_name),
        format!("--registry={}={}", n.host, n.url),
    ];
    if let Some(proxy) = &v.proxy {
        args.push("--pull-only".into());
        for u in &proxy.upstreams {
            args.push(format!("--mirror={}={}", u.name, n.url));
        }
    }
    if n.tls_secret.is_some() {
        args.push(format!("--ca-file={CA_DIR}/{}", names::TLS_CERT_KEY));
    }
    args
}

/// The DaemonSet, when `nodeAccess` is on and the Service's ClusterIP is known.
pub fn build_node_access(v: &ValidatedRegistry) -> NodeAccessChild<DaemonSet> {
    let Some(n) = &v.node_access else {
        return NodeAccessChild::Off;
    };
    let Some(cluster_ip) = &n.cluster_ip else {
        return NodeAccessChild::WaitingForClusterIp;
    };
    let selector = agent_selector(v);
    let mut labels = names::labels(v.kind, v.names.instance());
    labels.insert(names::LABEL_COMPONENT.into(), names::NODE_AGENT_COMPONENT.into());
    let mut pod_labels = selector.clone();
    pod_labels.insert(names::LABEL_COMPONENT.into(), names::NODE_AGENT_COMPONENT.into());
    pod_labels.insert(names::LABEL_MANAGED_BY.into(), names::MANAGER.into());

    let mut volumes = vec![
        Volume {
            name: VOL_HOSTS.into(),
            host_path: Some(HostPathVolumeSource { path: n.hosts_file.clone(), type_: Some("File".into()) }),
            ..Volume::default()
        },
        Volume {
            name: VOL_CERTS.into(),
            host_path: Some(HostPathVolumeSource {
                path: n.certs_dir.clone(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            ..Volume::default()
        },
    ];
    let mut mounts = vec![
        VolumeMount { name: VOL_HOSTS.into(), mount_path: HOSTS_FILE_MOUNT.into(), ..VolumeMount::default() },
        // The same path as on the node: hosts.toml names the CA file by its node path.
        VolumeMount { name: VOL_CERTS.into(), mount_path: n.certs_dir.clone(), ..VolumeMount::default() },
    ];
    if let Some(secret) = &n.tls_secret {
        // The certificate only, never the key.
        volumes.push(Volume {
            name: VOL_CA.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                items: Some(vec![KeyToPath {
                    key: names::TLS_CERT_KEY.into(),
                    path: names::TLS_CERT_KEY.into(),
                    mode: None,
                }]),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: VOL_CA.into(),
            mount_path: CA_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }

    let container = Container {
        name: "node-agent".into(),
        image: Some(n.agent_image.clone()),
        args: Some(agent_args(v, n, cluster_ip)),
        volume_mounts: Some(mounts),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("5m".into())),
                ("memory".to_string(), Quantity("16Mi".into())),
            ])),
            limits: Some(BTreeMap::from([("memory".to_string(), Quantity("32Mi".into()))])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    NodeAccessChild::On(DaemonSet {
        metadata: ObjectMeta { labels: Some(labels), ..child_meta(v, v.names.node_access_daemonset()) },
        spec: Some(DaemonSetSpec {
            selector: LabelSelector { match_labels: Some(selector), ..LabelSelector::default() },
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                // The old pod undoes its changes before the new one writes; never two at once on a node.
                rolling_update: Some(RollingUpdateDaemonSet {
                    max_unavailable: Some(IntOrString::Int(1)),
                    max_surge: Some(IntOrString::Int(0)),
                }),
            }),
            revision_history_limit: Some(5),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(pod_labels), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(volumes),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    // Undoing is a few file edits.
                    termination_grace_period_seconds: Some(10),
                    node_selector: Some(BTreeMap::from([("kubernetes.io/os".to_string(), "linux".to_string())])),
                    tolerations: Some(vec![Toleration { operator: Some("Exists".into()), ..Toleration::default() }]),
                    security_context: Some(PodSecurityContext {
                        run_as_user: Some(0),
                        run_as_group: Some(0),
                        run_as_non_root: Some(false),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            localhost_profile: None,
                        }),
                        ..PodSecurityContext::default()
                    }),
                    ..PodSpec::default()
                }),
            },
            ..DaemonSetSpec::default()
        }),
        ..DaemonSet::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::validated;

    const REGISTRY: &str = r#"
apiVersion: wharf.dev/v1alpha1
kind: Registry
metadata: { name: reg }
spec:
  storage: { emptyDir: {} }
  nodeAccess: { enabled: true }
"#;

    fn with_ip(mut v: ValidatedRegistry, ip: Option<&str>) -> ValidatedRegistry {
        if let Some(n) = &mut v.node_access {
            n.cluster_ip = ip.map(str::to_string);
        }
        v
    }

    fn daemonset(v: &ValidatedRegistry) -> DaemonSet {
        match build_node_access(v) {
            NodeAccessChild::On(d) => d,
            other => panic!("expected a DaemonSet, got {other:?}"),
        }
    }

    fn args(d: &DaemonSet) -> Vec<String> {
        d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).and_then(|p| p.containers[0].args.clone()).expect("args")
    }

    #[test]
    fn off_waiting_and_on() {
        assert!(matches!(build_node_access(&validated(&REGISTRY.replace("true", "false"))), NodeAccessChild::Off));
        let v = with_ip(validated(REGISTRY), None);
        assert!(matches!(build_node_access(&v), NodeAccessChild::WaitingForClusterIp));
        let d = daemonset(&with_ip(v, Some("10.96.0.12")));
        assert_eq!(d.metadata.name.as_deref(), Some("reg-node-access"));
        assert_eq!(
            args(&d),
            vec![
                "node-agent",
                "--owner=team-a/reg",
                "--hosts-file=/host/hosts",
                "--certs-dir=/etc/containerd/certs.d",
                "--host-entry=10.96.0.12=reg.team-a.svc.cluster.local",
                "--registry=reg.team-a.svc.cluster.local:5000=http://reg.team-a.svc.cluster.local:5000",
            ]
        );
    }

    #[test]
    fn agent_pods_are_never_selected_by_the_registry_service() {
        let v = with_ip(validated(REGISTRY), Some("10.96.0.12"));
        let d = daemonset(&v);
        let pod_labels = d.spec.as_ref().and_then(|s| s.template.metadata.as_ref()?.labels.clone()).expect("labels");
        let service_selector = names::selector_labels(v.kind, v.names.instance());
        assert!(!service_selector.iter().all(|(k, val)| pod_labels.get(k) == Some(val)));
        let object_labels = d.metadata.labels.clone().expect("labels");
        assert_eq!(object_labels.get(names::LABEL_MANAGED_BY).map(String::as_str), Some(names::MANAGER));
        assert_eq!(object_labels.get(names::LABEL_INSTANCE).map(String::as_str), Some("reg"));
        assert_eq!(d.metadata.owner_references.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn mirror_routes_each_upstream_and_tls_trusts_the_certificate() {
        let v = with_ip(
            validated(
                r#"
apiVersion: wharf.dev/v1alpha1
kind: RegistryMirror
metadata: { name: hub }
spec:
  upstreams:
    - { name: docker.io, url: "https://registry-1.docker.io" }
    - { name: "registry.internal:8443", url: "https://registry.internal:8443" }
  storage: { emptyDir: {} }
  tls: { secretName: hub-tls }
  nodeAccess: { enabled: true }
"#,
            ),
            Some("10.96.0.30"),
        );
        let a = args(&daemonset(&v));
        for want in [
            "--registry=hub.team-a.svc.cluster.local:5000=https://hub.team-a.svc.cluster.local:5000",
            "--pull-only",
            "--mirror=docker.io=https://hub.team-a.svc.cluster.local:5000",
            "--mirror=registry.internal:8443=https://hub.team-a.svc.cluster.local:5000",
            "--ca-file=/etc/wharf/node-access/tls.crt",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
        }
    }
}
