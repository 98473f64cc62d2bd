//! The spec fields a Registry and a RegistryMirror share, borrowed from
//! either, so dereference and validate are written once.

use super::{
    GarbageCollectionSpec, IssuerRef, NodeAccessSpec, NotificationsSpec, QuotaSpec, Registry, RegistryMirror,
    RegistryMirrorSpec, RetentionSpec, ServerSpec, TlsSpec,
};

/// Where a registry's serving certificate comes from (`tls`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TlsSource<'a> {
    /// `tls.enabled: false`: plain HTTP, as asked.
    Off,
    /// The operator's CA issues it into `<name>-tls` (the default).
    OperatorCa,
    /// A Secret the user keeps.
    UserSecret(&'a str),
    /// cert-manager issues it into `<name>-tls` from this issuer.
    CertManager(&'a IssuerRef),
}

/// The shared part of a spec.
#[derive(Clone, Copy, Debug)]
pub struct CommonSpec<'a> {
    /// The fields both kinds declare (flattened into either spec).
    pub server: &'a ServerSpec,
    /// `deleteEnabled` (a mirror never deletes through the API).
    pub delete_enabled: bool,
    /// `garbageCollection` (Registry only).
    pub garbage_collection: Option<&'a GarbageCollectionSpec>,
    /// `retention` (Registry only).
    pub retention: Option<&'a RetentionSpec>,
    /// `quotas` (Registry only).
    pub quotas: &'a [QuotaSpec],
    /// `nodeAccess`.
    pub node_access: Option<&'a NodeAccessSpec>,
    /// `notifications` (Registry only).
    pub notifications: Option<&'a NotificationsSpec>,
}

impl<'a> CommonSpec<'a> {
    /// The shared part of a Registry's spec.
    pub fn of_registry(r: &'a Registry) -> Self {
        let s = &r.spec;
        CommonSpec {
            server: &s.server,
            delete_enabled: s.delete_enabled,
            garbage_collection: s.garbage_collection.as_ref(),
            retention: s.retention.as_ref(),
            quotas: &s.quotas,
            node_access: s.node_access.as_ref(),
            notifications: s.notifications.as_ref(),
        }
    }

    /// The shared part of a RegistryMirror's spec.
    pub fn of_mirror(m: &'a RegistryMirror) -> Self {
        Self::of_mirror_spec(&m.spec)
    }

    /// The shared part of a RegistryMirror's spec.
    pub fn of_mirror_spec(s: &'a RegistryMirrorSpec) -> Self {
        CommonSpec {
            server: &s.server,
            delete_enabled: false,
            garbage_collection: None,
            retention: None,
            quotas: &[],
            node_access: s.node_access.as_ref(),
            notifications: None,
        }
    }

    /// Whether the built-in token service (and so a signing key) is configured.
    pub fn uses_token_service(&self) -> bool {
        self.server.auth.as_ref().is_some_and(|a| a.token.is_some())
    }

    /// Where the registry's serving certificate comes from.
    pub fn tls_source(&self) -> TlsSource<'a> {
        match &self.server.tls {
            None => TlsSource::OperatorCa,
            Some(t) if !t.enabled => TlsSource::Off,
            Some(TlsSpec { secret_name: Some(s), .. }) => TlsSource::UserSecret(s),
            Some(TlsSpec { issuer_ref: Some(i), .. }) => TlsSource::CertManager(i),
            Some(_) => TlsSource::OperatorCa,
        }
    }

    /// Whether `nodeAccess.enabled` is set.
    pub fn node_access_enabled(&self) -> bool {
        self.node_access.is_some_and(|n| n.enabled)
    }

    /// Names of the user Secrets the operator must read to validate the spec.
    /// TLS Secrets of the Ingress are the ingress controller's business and are not read.
    pub fn referenced_secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(auth) = &self.server.auth {
            if let Some(h) = &auth.htpasswd {
                out.push(h.secret.secret_name.clone());
            }
            if let Some(t) = &auth.token {
                out.push(t.users.secret_name.clone());
            }
            if let Some(e) = &auth.external_token {
                out.push(e.root_cert_bundle.secret_name.clone());
            }
        }
        if let Some(secret) = self.server.tls.as_ref().and_then(|t| t.secret_name.as_ref()) {
            out.push(secret.clone());
        }
        if let Some(c) = self.server.storage.s3.as_ref().and_then(|s| s.credentials.as_ref()) {
            out.push(c.secret_name.clone());
        }
        for e in self.notifications.iter().flat_map(|n| &n.endpoints) {
            out.extend(e.secret_headers.iter().map(|h| h.secret_name.clone()));
        }
        out
    }
}
