//! A resource's claim, read from its spec: its own in-cluster host (the same
//! name `status.host` reports) and, for a mirror, its upstream hosts.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;

use crate::crd::{CommonSpec, Registry, RegistryMirror, TlsSource};
use crate::names::{self, ChildNames, EndpointInput, OwnerKind};

use super::plan::{Claim, Key};

/// What a claim needs besides the spec: found in other objects.
#[derive(Clone, Debug, Default)]
pub struct Found {
    /// The Service's ClusterIP.
    pub cluster_ip: Option<String>,
    /// The certificate (PEM) nodes trust for the registry: see [`ca_source`].
    pub ca_pem: Option<String>,
}

/// A Registry's claim, when its `nodeAccess` is on.
pub fn of_registry(r: &Registry, cluster_domain: &str, found: &Found) -> Option<Claim> {
    claim(r, OwnerKind::Registry, &CommonSpec::of_registry(r), Vec::new(), cluster_domain, found)
}

/// A RegistryMirror's claim, when its `nodeAccess` is on.
pub fn of_mirror(m: &RegistryMirror, cluster_domain: &str, found: &Found) -> Option<Claim> {
    let upstreams = m.spec.upstreams.iter().map(|u| u.name.clone()).collect();
    claim(m, OwnerKind::RegistryMirror, &CommonSpec::of_mirror(m), upstreams, cluster_domain, found)
}

/// A Service's allocated ClusterIP; `None` before allocation and for a headless Service.
pub fn cluster_ip(service: &Service) -> Option<String> {
    service.spec.as_ref().and_then(|s| s.cluster_ip.clone()).filter(|ip| !ip.is_empty() && ip != "None")
}

/// Where the certificate the nodes must trust for a registry comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaSource {
    /// Plain HTTP: nothing to trust.
    None,
    /// The operator's CA.
    Operator,
    /// A TLS Secret: its `ca.crt`, else its `tls.crt` (self-signed).
    Secret(String),
}

/// Where the nodes' trust for the resource `name` comes from.
pub fn ca_source(spec: &CommonSpec<'_>, name: &str) -> CaSource {
    match spec.tls_source() {
        TlsSource::Off => CaSource::None,
        TlsSource::OperatorCa => CaSource::Operator,
        TlsSource::UserSecret(s) => CaSource::Secret(s.to_string()),
        TlsSource::CertManager(_) => CaSource::Secret(ChildNames::new(name).tls_secret()),
    }
}

fn claim<K: Resource>(
    obj: &K,
    kind: OwnerKind,
    spec: &CommonSpec<'_>,
    upstreams: Vec<String>,
    cluster_domain: &str,
    found: &Found,
) -> Option<Claim> {
    if !spec.node_access_enabled() {
        return None;
    }
    let meta = obj.meta();
    let (name, namespace) = (meta.name.clone()?, meta.namespace.clone()?);
    let service = ChildNames::new(&name).service();
    let endpoint = names::endpoint(&EndpointInput {
        service: &service,
        namespace: &namespace,
        cluster_domain,
        port: spec.server.service.port,
        registry_tls: spec.tls_source() != TlsSource::Off,
        ingress: None,
    });
    Some(Claim {
        key: Key { kind, namespace: namespace.clone(), name },
        created: meta.creation_timestamp.as_ref().map(|t| t.0).or(Some(Timestamp::MAX)),
        host_name: names::cluster_dns_name(&service, &namespace, cluster_domain),
        host: endpoint.cluster_host,
        url: endpoint.url,
        cluster_ip: found.cluster_ip.clone(),
        upstreams,
        ca_pem: found.ca_pem.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_claims_its_own_fqdn_and_a_mirror_its_upstreams() {
        let r: Registry = serde_yaml::from_str(
            "apiVersion: wharf.dev/v1alpha1\nkind: Registry\nmetadata: {name: reg, namespace: team-a}\n\
             spec: {storage: {emptyDir: {}}, nodeAccess: {enabled: true}, tls: {secretName: reg-tls}}\n",
        )
        .expect("registry");
        let c = of_registry(&r, "cluster.local", &Found { cluster_ip: Some("198.19.0.9".into()), ca_pem: None })
            .expect("claim");
        assert_eq!(c.host, "reg.team-a.svc.cluster.local:5000");
        assert_eq!(c.host_name, "reg.team-a.svc.cluster.local");
        assert_eq!(c.url, "https://reg.team-a.svc.cluster.local:5000");
        assert_eq!(ca_source(&CommonSpec::of_registry(&r), "reg"), CaSource::Secret("reg-tls".into()));
        let by_default: Registry = serde_yaml::from_str(
            "apiVersion: wharf.dev/v1alpha1\nkind: Registry\nmetadata: {name: reg, namespace: team-a}\n\
             spec: {storage: {emptyDir: {}}}\n",
        )
        .expect("registry");
        assert_eq!(ca_source(&CommonSpec::of_registry(&by_default), "reg"), CaSource::Operator);
        let plain: Registry = serde_yaml::from_str(
            "apiVersion: wharf.dev/v1alpha1\nkind: Registry\nmetadata: {name: reg, namespace: team-a}\n\
             spec: {storage: {emptyDir: {}}, nodeAccess: {enabled: true}, tls: {enabled: false}}\n",
        )
        .expect("registry");
        assert_eq!(ca_source(&CommonSpec::of_registry(&plain), "reg"), CaSource::None);
        let c = of_registry(&plain, "cluster.local", &Found::default()).expect("claim");
        assert_eq!(c.url, "http://reg.team-a.svc.cluster.local:5000", "plain http only when asked");
        let m: RegistryMirror = serde_yaml::from_str(
            "apiVersion: wharf.dev/v1alpha1\nkind: RegistryMirror\nmetadata: {name: hub, namespace: team-a}\n\
             spec: {upstreams: [{name: docker.io, url: 'https://registry-1.docker.io'}], storage: {emptyDir: {}}, \
             nodeAccess: {enabled: true}}\n",
        )
        .expect("mirror");
        let c = of_mirror(&m, "cluster.local", &Found::default()).expect("claim");
        assert_eq!(c.upstreams, vec!["docker.io".to_string()]);
        assert_eq!(c.key.kind, OwnerKind::RegistryMirror);
        let off: Registry = serde_yaml::from_str(
            "apiVersion: wharf.dev/v1alpha1\nkind: Registry\nmetadata: {name: reg, namespace: team-a}\n\
             spec: {storage: {emptyDir: {}}}\n",
        )
        .expect("registry");
        assert!(of_registry(&off, "cluster.local", &Found::default()).is_none());
    }
}
