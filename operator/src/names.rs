//! Every name the operator makes up: child object names, label keys, the
//! in-cluster host name and the token realm.
//!
//! The host that goes into image references is always a fully qualified,
//! dotted name with a port (`<service>.<namespace>.svc.<clusterDomain>:<port>`),
//! or the ingress host. Docker reads a first path component without a dot or
//! a port as a Docker Hub namespace, and a realm on localhost only works on
//! the machine that wrote it (the seeds): neither can come out of here.

use std::collections::BTreeMap;
use std::fmt;

/// Which kind owns a set of children; part of their labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OwnerKind {
    /// A `Registry`.
    Registry,
    /// A `RegistryMirror`.
    RegistryMirror,
}

impl OwnerKind {
    /// The Kubernetes kind.
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::Registry => "Registry",
            OwnerKind::RegistryMirror => "RegistryMirror",
        }
    }

    /// The `app.kubernetes.io/component` label value.
    pub fn component(self) -> &'static str {
        match self {
            OwnerKind::Registry => "registry",
            OwnerKind::RegistryMirror => "mirror",
        }
    }
}

impl fmt::Display for OwnerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "wharf-operator";
/// Recommended label: the application.
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
/// Recommended label: the owning resource's name.
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
/// Recommended label: the role inside the application.
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// Recommended label: who manages the object.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The kind of the owning resource, so a Registry and a RegistryMirror of
/// the same name never prune each other's children.
pub const LABEL_OWNER_KIND: &str = "wharf.dev/owner-kind";
/// Value of [`LABEL_NAME`].
pub const APP_NAME: &str = "wharf-registry";
/// [`LABEL_NAME`] of the operator's own pods (the chart's selector label).
pub const OPERATOR_APP_NAME: &str = "wharf-operator";
/// A namespace label: `"true"` asks for the CA bundle ConfigMap there, for
/// Pods that reach Wharf registries from a namespace holding none.
pub const LABEL_CA_BUNDLE: &str = "wharf.dev/ca-bundle";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGER: &str = "wharf-operator";
/// [`LABEL_NAME`] of the `nodeAccess` agent pods. It differs from [`APP_NAME`]
/// so that the registry's Service, PodDisruptionBudget and NetworkPolicy
/// never select them.
pub const NODE_AGENT_APP_NAME: &str = "wharf-node-access";
/// [`LABEL_COMPONENT`] of the `nodeAccess` DaemonSet and its pods.
pub const NODE_AGENT_COMPONENT: &str = "node-access";
/// The ConfigMap, in the operator's namespace, where the operator publishes the node plan.
pub const NODE_ACCESS_PLAN: &str = "wharf-node-access";

/// Pod annotation: digest of everything the pods read at start, so a change rolls them.
pub const ANNOTATION_CONFIG_HASH: &str = "wharf.dev/config-hash";
/// Annotation on a Registry or RegistryMirror: change its value to have the
/// token signing key generated anew (and the pods rolled).
pub const ANNOTATION_ROTATE_SIGNING_KEY: &str = "wharf.dev/rotate-signing-key";
/// Annotation on the signing-key Secret: the rotation request it answers.
pub const ANNOTATION_SIGNING_KEY_ROTATION: &str = "wharf.dev/signing-key-rotation";
/// The ingress-nginx annotation that bounds request bodies.
pub const ANNOTATION_NGINX_BODY_SIZE: &str = "nginx.ingress.kubernetes.io/proxy-body-size";
/// The ingress-nginx annotation for an HTTPS backend.
pub const ANNOTATION_NGINX_BACKEND_PROTOCOL: &str = "nginx.ingress.kubernetes.io/backend-protocol";

/// Port the registry listens on inside the pod, named [`PORT_NAME_REGISTRY`].
pub const REGISTRY_CONTAINER_PORT: i32 = 5000;
/// Debug port: health, readiness and Prometheus metrics.
pub const DEBUG_CONTAINER_PORT: i32 = 5001;
/// Name of the registry port on the container and the Service.
pub const PORT_NAME_REGISTRY: &str = "registry";
/// Name of the debug port.
pub const PORT_NAME_DEBUG: &str = "debug";
/// Path of the built-in token service.
pub const TOKEN_PATH: &str = "/auth/token";

/// Files inside the registry container.
pub mod paths {
    /// The registry's config.yml (ConfigMap key [`super::CONFIG_KEY`]).
    pub const CONFIG: &str = "/etc/wharf/config.yml";
    /// Storage root for filesystem and emptyDir storage.
    pub const STORAGE_ROOT: &str = "/var/lib/registry";
    /// Directory of the registry's own TLS pair.
    pub const TLS_DIR: &str = "/etc/wharf/tls";
    /// Directory of the htpasswd file for `auth.htpasswd`.
    pub const HTPASSWD_DIR: &str = "/etc/wharf/htpasswd";
    /// Directory of the token signing key.
    pub const TOKEN_KEY_DIR: &str = "/etc/wharf/token";
    /// Directory of the token service's users file.
    pub const USERS_DIR: &str = "/etc/wharf/users";
    /// Directory of the access rules.
    pub const ACCESS_DIR: &str = "/etc/wharf/access";
    /// Directory of an external token issuer's certificate bundle.
    pub const TOKEN_BUNDLE_DIR: &str = "/etc/wharf/token-bundle";
    /// Directory of the operator's CA bundle (ConfigMap `wharf-ca-bundle`), in a mirror.
    pub const CA_BUNDLE_DIR: &str = "/etc/wharf/ca-bundle";
    /// Directory holding one subdirectory per upstream with a `caBundle`.
    pub const UPSTREAM_CA_DIR: &str = "/etc/wharf/upstream-ca";
    /// Directory holding one subdirectory of credential files per upstream.
    pub const UPSTREAMS_DIR: &str = "/etc/wharf/upstreams";
    /// Directory holding, per notification endpoint, the header values mounted from Secrets.
    pub const NOTIFICATIONS_DIR: &str = "/etc/wharf/notifications";
    /// Scratch space (the root filesystem is read-only).
    pub const TMP: &str = "/tmp";
}

/// ConfigMap key of config.yml.
pub const CONFIG_KEY: &str = "config.yml";
/// ConfigMap key of the access rules.
pub const ACCESS_KEY: &str = "access.yml";
/// Key of the generated `http.secret` in its Secret.
pub const HTTP_SECRET_KEY: &str = "http-secret";
/// Key of the token signing key (PEM) in the generated signing-key Secret.
/// The same value as [`TLS_KEY_KEY`], but a different concept: this key signs
/// tokens, that one serves HTTPS.
pub const TOKEN_SIGNING_KEY_KEY: &str = "tls.key";
/// Key of a certificate in a kubernetes.io/tls Secret.
pub const TLS_CERT_KEY: &str = "tls.crt";
/// Key of the private key in a kubernetes.io/tls Secret (the registry's serving key).
pub const TLS_KEY_KEY: &str = "tls.key";
/// Key of the issuing CA's certificate in a kubernetes.io/tls Secret, as
/// cert-manager writes it; also the key of the CA bundle ConfigMap.
pub const CA_CERT_KEY: &str = "ca.crt";
/// Where the registry serves its web UI unless `ui.path` says otherwise.
pub const DEFAULT_UI_PATH: &str = "/ui/";
/// The Secret, in the operator's namespace, holding the operator's CA
/// (`tls.crt`, `tls.key`). Created once; deleting it makes a new CA, and
/// every serving certificate is issued again.
pub const CA_SECRET: &str = "wharf-ca";
/// The ConfigMap holding the operator's CA certificate (key [`CA_CERT_KEY`])
/// in every namespace with a Wharf resource, for Pods to mount.
pub const CA_BUNDLE_CONFIG_MAP: &str = "wharf-ca-bundle";
/// Default key of htpasswd content in a user's Secret.
pub const DEFAULT_HTPASSWD_KEY: &str = "htpasswd";
/// Default key of a certificate bundle in a user's Secret.
pub const DEFAULT_BUNDLE_KEY: &str = "ca.crt";

/// Names of every child of one Registry or RegistryMirror.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildNames {
    instance: String,
}

impl ChildNames {
    /// Children of the resource called `instance`.
    pub fn new(instance: &str) -> Self {
        ChildNames { instance: instance.to_string() }
    }

    /// The resource's own name.
    pub fn instance(&self) -> &str {
        &self.instance
    }
    /// Deployment, Service, PodDisruptionBudget, Ingress and NetworkPolicy
    /// share the resource's name, so the in-cluster host is `<name>.<namespace>.svc...`.
    pub fn deployment(&self) -> String {
        self.instance.clone()
    }
    /// The Service; its name is the first label of the in-cluster host.
    pub fn service(&self) -> String {
        self.instance.clone()
    }
    /// The PodDisruptionBudget.
    pub fn pdb(&self) -> String {
        self.instance.clone()
    }
    /// The Ingress.
    pub fn ingress(&self) -> String {
        self.instance.clone()
    }
    /// The NetworkPolicy.
    pub fn network_policy(&self) -> String {
        self.instance.clone()
    }
    /// The ConfigMap holding config.yml.
    pub fn config_map(&self) -> String {
        format!("{}-config", self.instance)
    }
    /// The ConfigMap holding the token service's access rules.
    pub fn access_config_map(&self) -> String {
        format!("{}-access", self.instance)
    }
    /// The generated Secret holding `http.secret`.
    pub fn http_secret(&self) -> String {
        format!("{}-http-secret", self.instance)
    }
    /// The generated Secret holding the token signing key.
    pub fn signing_key_secret(&self) -> String {
        format!("{}-token-key", self.instance)
    }
    /// The Secret holding the serving certificate the operator (or
    /// cert-manager) issues.
    pub fn tls_secret(&self) -> String {
        format!("{}-tls", self.instance)
    }
    /// The cert-manager Certificate, with `tls.issuerRef`.
    pub fn certificate(&self) -> String {
        self.instance.clone()
    }
    /// The PersistentVolumeClaim the operator creates.
    pub fn pvc(&self) -> String {
        format!("{}-data", self.instance)
    }
    /// The garbage-collection CronJob.
    pub fn gc_cronjob(&self) -> String {
        format!("{}-gc", self.instance)
    }
}

/// Labels every child carries; [`selector_labels`] is the subset that selects pods.
pub fn labels(kind: OwnerKind, instance: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(kind, instance);
    l.insert(LABEL_MANAGED_BY.into(), MANAGER.into());
    l.insert(LABEL_COMPONENT.into(), kind.component().into());
    l
}

/// Labels that select the registry pods of one resource (immutable in a Deployment).
pub fn selector_labels(kind: OwnerKind, instance: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), APP_NAME.to_string()),
        (LABEL_INSTANCE.to_string(), instance.to_string()),
        (LABEL_OWNER_KIND.to_string(), kind.as_str().to_string()),
    ])
}

/// The label selector (as a string) that finds every child of one resource, for pruning.
pub fn children_selector(kind: OwnerKind, instance: &str) -> String {
    format!("{LABEL_MANAGED_BY}={MANAGER},{LABEL_INSTANCE}={instance},{LABEL_OWNER_KIND}={}", kind.as_str())
}

/// URL scheme clients use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// TLS.
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Where clients find a registry: the values that go into `http.host`, the
/// token `service` and `realm`, and the resource's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `<service>.<namespace>.svc.<clusterDomain>:<port>`: always reachable in-cluster.
    pub cluster_host: String,
    /// The host to use in image references: the ingress host when there is
    /// one, otherwise [`Endpoint::cluster_host`].
    pub host: String,
    /// `<scheme>://<host>`: the registry's base URL (`http.host`).
    pub url: String,
    /// `<url>/auth/token`: the built-in token service's realm.
    pub realm: String,
}

/// What the endpoint is computed from.
#[derive(Clone, Debug)]
pub struct EndpointInput<'a> {
    /// The Service name.
    pub service: &'a str,
    /// The resource's namespace.
    pub namespace: &'a str,
    /// The cluster DNS domain, e.g. `cluster.local`.
    pub cluster_domain: &'a str,
    /// The Service port.
    pub port: i32,
    /// Whether the registry itself serves TLS.
    pub registry_tls: bool,
    /// The ingress host and whether the ingress terminates TLS.
    pub ingress: Option<(&'a str, bool)>,
}

/// Computes the advertised host, URL and realm.
///
/// The in-cluster host always carries its port, even 80 or 443: with a port
/// the first component of an image reference is a registry host whatever it
/// looks like. An ingress host is used as it is, on the default port of its scheme.
pub fn endpoint(input: &EndpointInput<'_>) -> Endpoint {
    let domain = input.cluster_domain.trim_matches('.');
    let cluster_host = format!("{}.{}.svc.{}:{}", input.service, input.namespace, domain, input.port);
    let (host, scheme) = match input.ingress {
        Some((host, tls)) => (host.to_string(), if tls { Scheme::Https } else { Scheme::Http }),
        None => (cluster_host.clone(), if input.registry_tls { Scheme::Https } else { Scheme::Http }),
    };
    let url = format!("{}://{}", scheme.as_str(), host);
    let realm = format!("{url}{TOKEN_PATH}");
    Endpoint { cluster_host, host, url, realm }
}

/// The DNS name (without port) the registry's own certificate must carry.
pub fn cluster_dns_name(service: &str, namespace: &str, cluster_domain: &str) -> String {
    format!("{service}.{namespace}.svc.{}", cluster_domain.trim_matches('.'))
}

/// The names a serving certificate from the operator's CA carries: the
/// in-cluster FQDN first, then the shorter names a Pod's resolver completes,
/// then the Ingress host if it lies in a domain the cluster admin allowed.
///
/// Every Pod that mounts the CA bundle trusts these names, and tenants choose
/// them, so none may be a public name: `<service>.<namespace>` is left out
/// (a Registry `google` in a namespace `dev` would be google.dev), and so is
/// an Ingress host outside `allowed_ingress_domains`.
pub fn serving_dns_names(
    service: &str,
    namespace: &str,
    cluster_domain: &str,
    ingress_host: Option<&str>,
    allowed_ingress_domains: &[String],
) -> Vec<String> {
    let mut names = vec![
        cluster_dns_name(service, namespace, cluster_domain),
        format!("{service}.{namespace}.svc"),
        service.to_string(),
    ];
    let allowed = |host: &str| {
        allowed_ingress_domains
            .iter()
            .map(|d| d.trim_matches('.'))
            .filter(|d| !d.is_empty())
            .any(|d| host.strip_suffix(d).is_some_and(|rest| rest.ends_with('.')))
    };
    names.extend(ingress_host.map(|h| h.trim().to_ascii_lowercase()).filter(|h| allowed(h)));
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(domain: &'a str, port: i32, ingress: Option<(&'a str, bool)>) -> EndpointInput<'a> {
        EndpointInput {
            service: "reg",
            namespace: "team-a",
            cluster_domain: domain,
            port,
            registry_tls: false,
            ingress,
        }
    }

    #[test]
    fn in_cluster_host_is_fully_qualified_with_port() {
        let e = endpoint(&input("cluster.local", 5000, None));
        assert_eq!(e.cluster_host, "reg.team-a.svc.cluster.local:5000");
        assert_eq!(e.host, "reg.team-a.svc.cluster.local:5000");
        assert_eq!(e.url, "http://reg.team-a.svc.cluster.local:5000");
        assert_eq!(e.realm, "http://reg.team-a.svc.cluster.local:5000/auth/token");
    }

    #[test]
    fn other_cluster_domains_and_ports() {
        let cases = [
            ("k8s.example.org", 443, "reg.team-a.svc.k8s.example.org:443"),
            ("corp.internal.", 80, "reg.team-a.svc.corp.internal:80"),
            ("cluster.local", 31000, "reg.team-a.svc.cluster.local:31000"),
        ];
        for (domain, port, want) in cases {
            let e = endpoint(&input(domain, port, None));
            assert_eq!(e.host, want, "{domain} {port}");
            assert_eq!(e.realm, format!("http://{want}/auth/token"));
        }
    }

    #[test]
    fn serving_names_are_never_public_names_a_tenant_picked() {
        let allowed = vec!["registry.example.com".to_string()];
        let names = |host| serving_dns_names("google", "dev", "cluster.local", host, &allowed);
        assert_eq!(names(None), ["google.dev.svc.cluster.local", "google.dev.svc", "google"]);
        assert_eq!(names(Some("ghcr.io")).len(), 3, "an Ingress host outside the admin's domains");
        assert_eq!(names(Some("registry.example.com")).len(), 3, "the domain itself is not under it");
        assert_eq!(names(Some("evilregistry.example.com")).len(), 3);
        assert_eq!(
            names(Some("Team-A.registry.example.com")).last().map(String::as_str),
            Some("team-a.registry.example.com")
        );
    }

    #[test]
    fn registry_tls_makes_https() {
        let mut i = input("cluster.local", 5000, None);
        i.registry_tls = true;
        let e = endpoint(&i);
        assert_eq!(e.url, "https://reg.team-a.svc.cluster.local:5000");
        assert_eq!(e.realm, "https://reg.team-a.svc.cluster.local:5000/auth/token");
    }

    #[test]
    fn ingress_host_overrides_host_and_realm() {
        let e = endpoint(&input("cluster.local", 5000, Some(("registry.example.com", true))));
        assert_eq!(e.cluster_host, "reg.team-a.svc.cluster.local:5000");
        assert_eq!(e.host, "registry.example.com");
        assert_eq!(e.url, "https://registry.example.com");
        assert_eq!(e.realm, "https://registry.example.com/auth/token");
        let plain = endpoint(&input("cluster.local", 5000, Some(("registry.example.com", false))));
        assert_eq!(plain.realm, "http://registry.example.com/auth/token");
    }

    #[test]
    fn never_localhost_never_a_bare_name() {
        for domain in ["cluster.local", "x.y", "a.b.c.d"] {
            for ingress in [None, Some(("r.example.com", false))] {
                let e = endpoint(&input(domain, 5000, ingress));
                let host = e.host.split(':').next().unwrap_or_default();
                assert!(host.contains('.'), "{host}");
                assert!(!e.realm.contains("localhost") && !e.realm.contains("127.0.0.1"));
                // The realm's host, too, is dotted: a client resolves it from anywhere.
                let realm_host = e.realm.split_once("://").map(|(_, rest)| rest).unwrap_or_default();
                let realm_host = realm_host.split(['/', ':']).next().unwrap_or_default();
                assert!(realm_host.contains('.'), "realm {} has the bare host {realm_host:?}", e.realm);
                assert!(e.realm.ends_with(TOKEN_PATH), "{}", e.realm);
            }
        }
    }

    #[test]
    fn child_names() {
        let n = ChildNames::new("reg");
        assert_eq!(n.service(), "reg");
        assert_eq!(n.config_map(), "reg-config");
        assert_eq!(n.http_secret(), "reg-http-secret");
        assert_eq!(n.signing_key_secret(), "reg-token-key");
        assert_eq!(n.pvc(), "reg-data");
        assert_eq!(n.gc_cronjob(), "reg-gc");
        assert_eq!(
            children_selector(OwnerKind::RegistryMirror, "reg"),
            "app.kubernetes.io/managed-by=wharf-operator,app.kubernetes.io/instance=reg,wharf.dev/owner-kind=RegistryMirror"
        );
    }
}
