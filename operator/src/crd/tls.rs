//! `tls`: where a registry's serving certificate comes from (docs/tls.md).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// TLS served by the registry itself, on its one port. Unset, or set with
/// neither `secretName` nor `issuerRef`: the operator's own CA issues the
/// certificate (Secret `<name>-tls`) and renews it before it expires; nodes
/// (through nodeAccess) and Pods (through the ConfigMap `wharf-ca-bundle`)
/// trust that CA.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.secretName) && has(self.issuerRef))")
    .message("tls: set at most one of secretName and issuerRef"))]
#[x_kube(validation = Rule::new("self.enabled || (!has(self.secretName) && !has(self.issuerRef))")
    .message("tls: secretName and issuerRef need enabled: true"))]
pub struct TlsSpec {
    /// Serve TLS. `false` serves plain HTTP: credentials and pull secrets then
    /// cross the Pod network in the clear, and nodes need nodeAccess to pull.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// A Secret of type kubernetes.io/tls (keys `tls.crt` and `tls.key`, and
    /// `ca.crt` for the nodes when the certificate is not self-signed) that
    /// the user keeps. Its certificate must name the in-cluster host
    /// `<name>.<namespace>.svc.<domain>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
    /// A cert-manager Issuer or ClusterIssuer: the operator creates a
    /// cert-manager `Certificate` for the registry's names and serves its Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,
}

impl Default for TlsSpec {
    fn default() -> Self {
        TlsSpec { enabled: true, secret_name: None, issuer_ref: None }
    }
}

fn enabled_by_default() -> bool {
    true
}

/// A cert-manager issuer, as in cert-manager's own `issuerRef`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    /// The issuer's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// `Issuer` (in the resource's namespace) or `ClusterIssuer`.
    #[serde(default)]
    pub kind: IssuerKind,
    /// The issuer's API group.
    #[serde(default = "cert_manager_group")]
    pub group: String,
}

fn cert_manager_group() -> String {
    "cert-manager.io".into()
}

/// Kind of a cert-manager issuer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum IssuerKind {
    /// A namespaced Issuer.
    #[default]
    Issuer,
    /// A ClusterIssuer.
    ClusterIssuer,
}

impl IssuerKind {
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            IssuerKind::Issuer => "Issuer",
            IssuerKind::ClusterIssuer => "ClusterIssuer",
        }
    }
}
