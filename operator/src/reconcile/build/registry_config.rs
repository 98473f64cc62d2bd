//! The registry's `config.yml` and the token service's `access.yml`, as
//! typed structs serialised with serde_yaml. No string templates.
//!
//! Secrets never appear here: `http.secret` and S3 keys reach the registry
//! as environment variables, passwords and keys as mounted files.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::crd::{LogLevel, RepositoryAction};
use crate::names::{self, paths};

use super::super::validated::{Auth, Storage, ValidatedRegistry};
use super::notifications_config::{NotificationsConfig, notifications_config};
use super::upkeep_config::{GcConfig, QuotaConfig, RetentionConfig, gc_config, quotas_config, retention_config};

/// config.yml.
#[derive(Debug, Serialize)]
pub struct RegistryConfig {
    /// Always `0.1`.
    pub version: String,
    /// Logging.
    pub log: Log,
    /// Storage.
    pub storage: StorageConfig,
    /// HTTP.
    pub http: Http,
    /// Auth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// Proxy (mirror).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyConfig>,
    /// Webhook notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notifications: Option<NotificationsConfig>,
    /// The web UI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ui: Option<UiConfig>,
}

/// `ui`.
#[derive(Debug, Serialize)]
pub struct UiConfig {
    /// Always true when rendered.
    pub enabled: bool,
    /// Where.
    pub path: String,
}

/// `log`.
#[derive(Debug, Serialize)]
pub struct Log {
    /// Level.
    pub level: LogLevel,
    /// Always `json`.
    pub formatter: &'static str,
}

/// `storage`.
#[derive(Debug, Default, Serialize)]
pub struct StorageConfig {
    /// `filesystem`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<Filesystem>,
    /// `s3`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3>,
    /// `delete`.
    pub delete: Enabled,
    /// `maintenance`.
    pub maintenance: Maintenance,
    /// `redirect` (s3 only: the filesystem driver never redirects).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
    /// `gc`: online garbage collection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc: Option<GcConfig>,
    /// `retention`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionConfig>,
    /// `quotas`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quotas: Vec<QuotaConfig>,
}

/// `storage.filesystem`.
#[derive(Debug, Serialize)]
pub struct Filesystem {
    /// Root.
    pub rootdirectory: String,
}

/// `storage.s3`, with registry:2's keys. Credentials come from
/// `REGISTRY_STORAGE_S3_ACCESSKEY` and `..._SECRETKEY`.
#[derive(Debug, Serialize)]
pub struct S3 {
    /// Bucket.
    pub bucket: String,
    /// Region.
    pub region: String,
    /// Endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regionendpoint: Option<String>,
    /// Path-style.
    pub forcepathstyle: bool,
    /// Prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootdirectory: Option<String>,
    /// Multipart part size, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunksize: Option<u64>,
    /// Storage class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storageclass: Option<String>,
    /// Server-side encryption.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypt: Option<bool>,
    /// KMS key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
    /// No TLS verification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipverify: Option<bool>,
}

/// `storage.redirect`.
#[derive(Debug, Serialize)]
pub struct Redirect {
    /// Stream blobs through the registry instead of a 307 to a presigned URL.
    pub disable: bool,
}

/// `{ enabled: bool }`.
#[derive(Debug, Default, Serialize)]
pub struct Enabled {
    /// Enabled.
    pub enabled: bool,
}

/// `storage.maintenance`.
#[derive(Debug, Default, Serialize)]
pub struct Maintenance {
    /// Upload purging.
    pub uploadpurging: UploadPurging,
}

/// `storage.maintenance.uploadpurging`.
#[derive(Debug, Serialize)]
pub struct UploadPurging {
    /// Enabled.
    pub enabled: bool,
    /// Age of stale uploads.
    pub age: &'static str,
    /// Interval.
    pub interval: &'static str,
    /// Dry run.
    pub dryrun: bool,
}

impl Default for UploadPurging {
    fn default() -> Self {
        UploadPurging { enabled: true, age: "168h", interval: "24h", dryrun: false }
    }
}

/// `http`.
#[derive(Debug, Serialize)]
pub struct Http {
    /// Listen address.
    pub addr: String,
    /// Advertised base URL.
    pub host: String,
    /// TLS pair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    /// Debug listener.
    pub debug: Debug,
    /// Drain timeout on shutdown.
    pub draintimeout: &'static str,
    /// Proxies whose `X-Forwarded-*` headers are believed (the Ingress controller's pods).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trustedproxies: Vec<String>,
}

/// `http.tls`.
#[derive(Debug, Serialize)]
pub struct Tls {
    /// Certificate file.
    pub certificate: String,
    /// Key file.
    pub key: String,
}

/// `http.debug`.
#[derive(Debug, Serialize)]
pub struct Debug {
    /// Address.
    pub addr: String,
    /// Prometheus.
    pub prometheus: Prometheus,
}

/// `http.debug.prometheus`.
#[derive(Debug, Serialize)]
pub struct Prometheus {
    /// Enabled.
    pub enabled: bool,
    /// Path.
    pub path: &'static str,
}

/// `auth`.
#[derive(Debug, Serialize)]
pub struct AuthConfig {
    /// htpasswd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub htpasswd: Option<Htpasswd>,
    /// token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Token>,
}

/// `auth.htpasswd`.
#[derive(Debug, Serialize)]
pub struct Htpasswd {
    /// Realm.
    pub realm: String,
    /// File.
    pub path: String,
}

/// `auth.token`.
#[derive(Debug, Serialize)]
pub struct Token {
    /// Realm URL.
    pub realm: String,
    /// Service (audience).
    pub service: String,
    /// Issuer.
    pub issuer: String,
    /// Bundle file (external tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootcertbundle: Option<String>,
    /// Built-in token service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builtin: Option<Builtin>,
}

/// `auth.token.builtin`.
#[derive(Debug, Serialize)]
pub struct Builtin {
    /// Signing key file.
    pub signingkey: String,
    /// Users htpasswd file.
    pub users: String,
    /// Access rules file.
    pub access: String,
    /// Token lifetime.
    pub expiration: String,
}

/// `proxy`.
#[derive(Debug, Serialize)]
pub struct ProxyConfig {
    /// Tag revalidation interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Upstreams.
    pub upstreams: Vec<UpstreamConfig>,
    /// Cache bound, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxsize: Option<u64>,
}

/// `proxy.upstreams[]`.
#[derive(Debug, Serialize)]
pub struct UpstreamConfig {
    /// Host as clients write it.
    pub name: String,
    /// API URL.
    pub url: String,
    /// User name file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usernamefile: Option<String>,
    /// Password file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passwordfile: Option<String>,
    /// CA certificates trusted for it besides the system's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cafile: Option<String>,
}

/// The CA file a mirror trusts for an upstream: the user's bundle, else the
/// operator's CA; none for plain http.
pub fn upstream_cafile(u: &crate::reconcile::validated::Upstream) -> Option<String> {
    if !u.url.starts_with("https://") {
        return None;
    }
    Some(match &u.ca_bundle {
        Some(_) => format!("{}/{}/{}", paths::UPSTREAM_CA_DIR, u.name, names::CA_CERT_KEY),
        None => format!("{}/{}", paths::CA_BUNDLE_DIR, names::CA_CERT_KEY),
    })
}

/// Directory holding the credential files of one upstream.
pub fn upstream_dir(name: &str) -> String {
    format!("{}/{}", paths::UPSTREAMS_DIR, name)
}

/// Builds config.yml.
pub fn build_registry_config(v: &ValidatedRegistry) -> RegistryConfig {
    let storage = StorageConfig {
        filesystem: match &v.storage {
            Storage::Claim { .. } | Storage::EmptyDir { .. } => {
                Some(Filesystem { rootdirectory: paths::STORAGE_ROOT.into() })
            }
            Storage::S3(_) => None,
        },
        s3: match &v.storage {
            Storage::S3(s) => Some(S3 {
                bucket: s.bucket.clone(),
                region: s.region.clone(),
                regionendpoint: s.endpoint.clone(),
                forcepathstyle: s.force_path_style,
                rootdirectory: s.root_directory.clone(),
                chunksize: s.chunk_size,
                storageclass: s.storage_class.clone(),
                encrypt: s.encrypt,
                keyid: s.key_id.clone(),
                skipverify: s.skip_verify,
            }),
            _ => None,
        },
        // Always written for s3, so the choice is visible in config.yml.
        redirect: match &v.storage {
            Storage::S3(s) => Some(Redirect { disable: !s.redirect }),
            _ => None,
        },
        delete: Enabled { enabled: v.delete_enabled },
        maintenance: Maintenance::default(),
        gc: gc_config(v),
        retention: v.retention.as_ref().map(retention_config),
        quotas: quotas_config(&v.quotas),
    };
    let http = Http {
        addr: format!(":{}", names::REGISTRY_CONTAINER_PORT),
        host: v.endpoint.url.clone(),
        tls: v.tls_secret.as_ref().map(|_| Tls {
            certificate: format!("{}/{}", paths::TLS_DIR, names::TLS_CERT_KEY),
            key: format!("{}/{}", paths::TLS_DIR, names::TLS_KEY_KEY),
        }),
        debug: Debug {
            addr: format!(":{}", names::DEBUG_CONTAINER_PORT),
            prometheus: Prometheus { enabled: true, path: "/metrics" },
        },
        draintimeout: "30s",
        trustedproxies: v.ingress.as_ref().map(|i| i.trusted_proxies.clone()).unwrap_or_default(),
    };
    let auth = match &v.auth {
        Auth::None => None,
        Auth::Htpasswd { realm, .. } => Some(AuthConfig {
            htpasswd: Some(Htpasswd {
                realm: realm.clone(),
                path: format!("{}/{}", paths::HTPASSWD_DIR, names::DEFAULT_HTPASSWD_KEY),
            }),
            token: None,
        }),
        Auth::Token(t) => Some(AuthConfig {
            htpasswd: None,
            token: Some(Token {
                realm: v.endpoint.realm.clone(),
                service: v.endpoint.host.clone(),
                issuer: t.issuer.clone(),
                rootcertbundle: None,
                builtin: Some(Builtin {
                    signingkey: format!("{}/{}", paths::TOKEN_KEY_DIR, names::TOKEN_SIGNING_KEY_KEY),
                    users: format!("{}/{}", paths::USERS_DIR, names::DEFAULT_HTPASSWD_KEY),
                    access: format!("{}/{}", paths::ACCESS_DIR, names::ACCESS_KEY),
                    expiration: t.expiration.clone(),
                }),
            }),
        }),
        Auth::External { realm, service, issuer, .. } => Some(AuthConfig {
            htpasswd: None,
            token: Some(Token {
                realm: realm.clone(),
                service: service.clone(),
                issuer: issuer.clone(),
                rootcertbundle: Some(format!("{}/{}", paths::TOKEN_BUNDLE_DIR, names::DEFAULT_BUNDLE_KEY)),
                builtin: None,
            }),
        }),
    };
    let proxy = v.proxy.as_ref().map(|p| ProxyConfig {
        ttl: p.ttl.clone(),
        upstreams: p
            .upstreams
            .iter()
            .map(|u| UpstreamConfig {
                name: u.name.clone(),
                url: u.url.clone(),
                usernamefile: u.credentials.as_ref().map(|_| format!("{}/username", upstream_dir(&u.name))),
                passwordfile: u.credentials.as_ref().map(|_| format!("{}/password", upstream_dir(&u.name))),
                cafile: upstream_cafile(u),
            })
            .collect(),
        maxsize: p.max_size_bytes,
    });
    RegistryConfig {
        version: "0.1".into(),
        log: Log { level: v.log_level, formatter: "json" },
        storage,
        http,
        auth,
        proxy,
        notifications: v.notifications.as_ref().map(notifications_config),
        ui: v.ui_path.as_ref().map(|path| UiConfig { enabled: true, path: path.clone() }),
    }
}

/// access.yml.
#[derive(Debug, Serialize)]
pub struct AccessFile {
    /// Groups.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Rules.
    pub rules: Vec<AccessRuleOut>,
}

/// One rule of access.yml.
#[derive(Debug, Serialize)]
pub struct AccessRuleOut {
    /// Glob.
    pub repository: String,
    /// Users.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Groups.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Anonymous.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
    /// Actions.
    pub actions: Vec<RepositoryAction>,
}

/// Builds access.yml, when the built-in token service is configured.
pub fn build_access_file(v: &ValidatedRegistry) -> Option<AccessFile> {
    let Auth::Token(t) = &v.auth else { return None };
    Some(AccessFile {
        groups: t.groups.clone(),
        rules: t
            .rules
            .iter()
            .map(|r| AccessRuleOut {
                repository: r.repository.clone(),
                users: r.users.clone(),
                groups: r.groups.clone(),
                anonymous: r.anonymous,
                actions: r.actions.clone(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::test_support::{TOKEN_REGISTRY, settings, validated};

    fn with_ingress(extra: &str) -> String {
        format!("{TOKEN_REGISTRY}  ingress:\n    host: registry.example.com\n{extra}")
    }

    /// The Ingress controller's pods become `http.trustedproxies`, so the
    /// registry's login back-off counts per real client (issue 12).
    #[test]
    fn trusted_proxies_of_the_ingress_are_rendered() {
        let v = validated(&with_ingress("    trustedProxies: [10.244.0.0/16, \"fd00::/8\", 192.168.1.7]\n"));
        let yaml = serde_yaml::to_string(&build_registry_config(&v)).unwrap();
        let config: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        let proxies: Vec<&str> =
            config["http"]["trustedproxies"].as_sequence().unwrap().iter().filter_map(|p| p.as_str()).collect();
        assert_eq!(proxies, ["10.244.0.0/16", "fd00::/8", "192.168.1.7"]);

        let none = serde_yaml::to_string(&build_registry_config(&validated(&with_ingress("")))).unwrap();
        assert!(!none.contains("trustedproxies"), "nobody is trusted by default:\n{none}");

        let mut bad = crate::reconcile::render::parse(&with_ingress("    trustedProxies: [10.0.0.0/33]\n")).unwrap();
        let e = crate::reconcile::render::validate_input(&mut bad[0], "team-a", &settings()).unwrap_err().to_string();
        assert!(e.contains("trustedProxies") && e.contains("10.0.0.0/33"), "{e}");
    }

    /// `spec.ui` becomes the registry's `ui` section (issue 14); the Ingress
    /// already routes every path, `/ui/` included, to the registry port.
    #[test]
    fn the_ui_is_rendered_when_enabled() {
        let config = |extra: &str| {
            let yaml = serde_yaml::to_string(&build_registry_config(&validated(&with_ingress(extra)))).unwrap();
            serde_yaml::from_str::<serde_yaml::Value>(&yaml).unwrap()
        };
        let on = config("  ui: { enabled: true }\n");
        assert_eq!(on["ui"]["enabled"], serde_yaml::Value::Bool(true));
        assert_eq!(on["ui"]["path"].as_str(), Some("/ui/"));
        assert_eq!(on["http"]["host"].as_str(), Some("http://registry.example.com"), "pull commands use this host");
        assert_eq!(config("  ui: { enabled: true, path: /console/ }\n")["ui"]["path"].as_str(), Some("/console/"));
        assert!(config("  ui: { enabled: false }\n").get("ui").is_none());
        assert!(config("").get("ui").is_none());
    }
}
