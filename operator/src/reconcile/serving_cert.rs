//! The registry's serving certificate, before dereference: the operator's
//! CA (kept in a Secret in the operator's namespace, made once), the
//! certificate it issues into `<name>-tls` and renews, or the cert-manager
//! `Certificate` that issues it instead; and the CA bundle ConfigMap Pods
//! mount to trust the CA.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client};

use crate::context::Context;
use crate::crd::{IssuerRef, TlsSource};
use crate::names::{self, ChildNames, OwnerKind};
use crate::pki::{self, Ca, Pem};
use crate::settings::TlsSettings;

use super::dereference::secret_data;

/// The serving certificate as this step found or made it.
#[derive(Clone, Debug, PartialEq)]
pub enum ServingTls {
    /// `tls.enabled: false`: plain HTTP.
    Off,
    /// Serve the Secret `secret` (`tls.crt`, `tls.key`).
    Secret {
        /// Its name.
        secret: String,
        /// The user's field that names where it comes from, when validate
        /// must check it (a user's Secret, or cert-manager's); `None` for
        /// the operator's own, made right here.
        field: Option<&'static str>,
        /// When the operator must issue it again.
        renew_in: Option<Duration>,
    },
    /// `tls.issuerRef`, and cert-manager's Certificate API is not installed.
    NoCertManager,
}

impl ServingTls {
    /// What `render` assumes, without a cluster.
    pub fn assumed(source: TlsSource<'_>, names: &ChildNames) -> ServingTls {
        match source {
            TlsSource::Off => ServingTls::Off,
            TlsSource::UserSecret(s) => ServingTls::Secret { secret: s.into(), field: None, renew_in: None },
            TlsSource::OperatorCa | TlsSource::CertManager(_) => {
                ServingTls::Secret { secret: names.tls_secret(), field: None, renew_in: None }
            }
        }
    }

    /// A Secret dereference must read for validate (user's or cert-manager's).
    pub fn secret_to_read(&self) -> Option<&str> {
        match self {
            ServingTls::Secret { secret, field: Some(_), .. } => Some(secret),
            _ => None,
        }
    }
}

/// Errors of this step; all transient (the API server).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a Secret, the Certificate or the bundle failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// Making or reading a certificate failed.
    #[error(transparent)]
    Pki(#[from] pki::Error),
    /// The CA Secret exists but lacks `tls.crt` or `tls.key`.
    #[error("Secret {namespace}/{name} has no tls.crt and tls.key; delete it to have a new CA made")]
    CaSecretEmpty {
        /// The operator's namespace.
        namespace: String,
        /// The Secret.
        name: String,
    },
}

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Api { what, source }
}

/// The resource the certificate is for.
pub struct For<'a> {
    /// Its kind.
    pub kind: OwnerKind,
    /// Its name.
    pub name: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// Owner reference for what is made for it.
    pub owner: &'a OwnerReference,
    /// The names its certificate carries.
    pub dns_names: Vec<String>,
}

/// Issues, renews or asks for the serving certificate of `target`.
pub async fn prepare(
    client: &Client,
    ca: &Ca,
    source: TlsSource<'_>,
    target: &For<'_>,
    tls: &TlsSettings,
) -> Result<ServingTls, Error> {
    let names = ChildNames::new(target.name);
    match source {
        TlsSource::Off => Ok(ServingTls::Off),
        TlsSource::UserSecret(s) => {
            Ok(ServingTls::Secret { secret: s.into(), field: Some("tls.secretName"), renew_in: None })
        }
        TlsSource::OperatorCa => {
            let renew_in = ensure_issued(client, ca, target, &names.tls_secret(), tls).await?;
            Ok(ServingTls::Secret { secret: names.tls_secret(), field: None, renew_in: Some(renew_in) })
        }
        TlsSource::CertManager(issuer) => {
            if !apply_certificate(client, target, issuer, tls).await? {
                return Ok(ServingTls::NoCertManager);
            }
            Ok(ServingTls::Secret { secret: names.tls_secret(), field: Some("tls.issuerRef"), renew_in: None })
        }
    }
}

/// The operator's CA, read or made on first need and then kept for the process.
pub async fn operator_ca(ctx: &Context) -> Result<&Arc<Ca>, Error> {
    let (namespace, lifetime) = (&ctx.settings.node.namespace, ctx.settings.tls.ca_lifetime);
    ctx.ca.get_or_try_init(|| ensure_ca(&ctx.client, namespace, lifetime)).await
}

/// Reads the operator's CA from its Secret, or makes it the first time. When
/// two replicas race, the loser reads the winner's.
async fn ensure_ca(client: &Client, namespace: &str, lifetime: Duration) -> Result<Arc<Ca>, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let name = names::CA_SECRET;
    let what = format!("keeping the CA Secret {namespace}/{name}");
    if let Some(found) = api.get_opt(name).await.map_err(api_err(&what))? {
        return ca_of(&found, namespace);
    }
    let ca = Ca::generate("wharf-operator CA", time::OffsetDateTime::now_utc(), lifetime)?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([(names::LABEL_MANAGED_BY.to_string(), names::MANAGER.to_string())])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(tls_data(ca.pem(), None)),
        ..Secret::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(namespace, name, "made the operator's CA");
            Ok(Arc::new(ca))
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let found = api.get(name).await.map_err(api_err(&what))?;
            ca_of(&found, namespace)
        }
        Err(e) => Err(api_err(what)(e)),
    }
}

fn ca_of(secret: &Secret, namespace: &str) -> Result<Arc<Ca>, Error> {
    let data = secret_data(secret);
    let text = |k: &str| data.get(k).and_then(|v| String::from_utf8(v.clone()).ok());
    let (Some(cert), Some(key)) = (text(names::TLS_CERT_KEY), text(names::TLS_KEY_KEY)) else {
        return Err(Error::CaSecretEmpty { namespace: namespace.into(), name: names::CA_SECRET.into() });
    };
    Ok(Arc::new(Ca::from_pem(Pem { cert, key })?))
}

fn tls_data(pem: &Pem, ca_pem: Option<&str>) -> BTreeMap<String, ByteString> {
    let mut data = BTreeMap::from([
        (names::TLS_CERT_KEY.to_string(), ByteString(pem.cert.clone().into_bytes())),
        (names::TLS_KEY_KEY.to_string(), ByteString(pem.key.clone().into_bytes())),
    ]);
    if let Some(ca) = ca_pem {
        data.insert(names::CA_CERT_KEY.into(), ByteString(ca.as_bytes().to_vec()));
    }
    data
}

/// Keeps `<name>-tls` holding a certificate from `ca` for the wanted names;
/// returns how long until it must be issued again.
async fn ensure_issued(
    client: &Client,
    ca: &Ca,
    target: &For<'_>,
    secret_name: &str,
    tls: &TlsSettings,
) -> Result<Duration, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), target.namespace);
    let what = format!("keeping the serving certificate Secret {secret_name}");
    let found = api.get_opt(secret_name).await.map_err(api_err(&what))?;
    let data = found.as_ref().map(secret_data).unwrap_or_default();
    let text = |k: &str| data.get(k).and_then(|v| std::str::from_utf8(v).ok());
    let stored = match (text(names::TLS_CERT_KEY), text(names::CA_CERT_KEY)) {
        (Some(cert_pem), Some(ca_pem)) => Some(pki::Stored { cert_pem, ca_pem }),
        _ => None,
    };
    let now = time::OffsetDateTime::now_utc();
    let reason = match pki::check(stored, &target.dns_names, ca.cert_pem(), now.unix_timestamp(), tls.renew_before) {
        Ok(secs) => return Ok(Duration::from_secs(u64::try_from(secs).unwrap_or(0))),
        Err(reason) => reason,
    };
    let issued = ca.issue(&target.dns_names, now, tls.cert_lifetime)?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.into()),
            namespace: Some(target.namespace.into()),
            labels: Some(names::labels(target.kind, target.name)),
            owner_references: Some(vec![target.owner.clone()]),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(tls_data(&issued, Some(ca.cert_pem()))),
        ..Secret::default()
    };
    api.patch(secret_name, &PatchParams::apply(names::MANAGER).force(), &Patch::Apply(&secret))
        .await
        .map_err(api_err(what))?;
    tracing::info!(secret = secret_name, reason = reason.as_str(), names = ?target.dns_names, "issued a serving certificate");
    Ok(tls.cert_lifetime.saturating_sub(tls.renew_before))
}

fn certificate_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("cert-manager.io", "v1", "Certificate"), "certificates")
}

/// Applies the cert-manager Certificate for `target`; `false` when cert-manager's API is not installed.
async fn apply_certificate(
    client: &Client,
    target: &For<'_>,
    issuer: &IssuerRef,
    tls: &TlsSettings,
) -> Result<bool, Error> {
    let names = ChildNames::new(target.name);
    let resource = certificate_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), target.namespace, &resource);
    let mut cert = DynamicObject::new(&names.certificate(), &resource).within(target.namespace);
    cert.metadata.labels = Some(names::labels(target.kind, target.name));
    cert.metadata.owner_references = Some(vec![target.owner.clone()]);
    cert.data = serde_json::json!({
        "spec": {
            "secretName": names.tls_secret(),
            "commonName": target.dns_names.first(),
            "dnsNames": target.dns_names,
            "duration": format!("{}s", tls.cert_lifetime.as_secs()),
            "renewBefore": format!("{}s", tls.renew_before.as_secs()),
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "usages": ["server auth", "digital signature", "key encipherment"],
            "issuerRef": {"name": issuer.name, "kind": issuer.kind.as_str(), "group": issuer.group},
        }
    });
    let params = PatchParams::apply(names::MANAGER).force();
    match api.patch(&names.certificate(), &params, &Patch::Apply(&cert)).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(api_err(format!("applying the cert-manager Certificate {}", names.certificate()))(e)),
    }
}

/// Who publishes the CA bundle in a namespace: a resource there (which owns
/// it, with the others), or the namespace's own request.
pub enum BundleFor<'a> {
    /// A Wharf resource in the namespace.
    Resource(&'a For<'a>),
    /// A namespace labelled [`names::LABEL_CA_BUNDLE`] (or a watched one).
    Namespace(&'a str),
}

/// Publishes the CA certificate as `wharf-ca-bundle`. Each publisher applies
/// it under its own field manager (and a resource with its owner reference),
/// so the ConfigMap lives as long as one Wharf resource there does.
pub async fn publish_ca_bundle(client: &Client, by: BundleFor<'_>, ca_pem: &str) -> Result<(), Error> {
    let (namespace, owner, manager) = match by {
        BundleFor::Resource(t) => (
            t.namespace,
            Some(OwnerReference { controller: None, block_owner_deletion: None, ..t.owner.clone() }),
            format!("{}/ca-bundle/{}/{}", names::MANAGER, t.kind.as_str(), t.name),
        ),
        BundleFor::Namespace(ns) => (ns, None, format!("{}/ca-bundle/namespace", names::MANAGER)),
    };
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let name = names::CA_BUNDLE_CONFIG_MAP;
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([(names::LABEL_MANAGED_BY.to_string(), names::MANAGER.to_string())])),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(names::CA_CERT_KEY.to_string(), ca_pem.to_string())])),
        ..ConfigMap::default()
    };
    api.patch(name, &PatchParams::apply(&manager).force(), &Patch::Apply(&cm))
        .await
        .map_err(api_err(format!("publishing the CA bundle ConfigMap {namespace}/{name}")))?;
    Ok(())
}
