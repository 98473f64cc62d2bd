//! Step 2: spec + dereferenced objects + operator settings → [`ValidatedRegistry`].
//!
//! Synchronous and pure. User errors live here: a missing or malformed
//! Secret, conflicting fields. [`ValidatedRegistry`] (its types are in
//! [`super::validated`]) is the single input of the builders; after this
//! step nothing reads the raw resource except for its owner reference.

use std::collections::BTreeMap;

use crate::crd::{AccessMode, CommonSpec, ServiceType};
use crate::names::{self, ChildNames, EndpointInput};
use crate::settings::Settings;
use crate::syntax::{is_dotted_dns_name, is_ip_or_cidr};

use super::dereference::{Dereferenced, SecretState};
use super::s3::validate_s3;
use super::validate_gc::{validate_gc, validate_quotas, validate_retention};
use super::validated::{
    AccessRule, Auth, Identity, Ingress, NewClaim, Pods, Service, Storage, TokenService, ValidatedRegistry,
};

/// A user error: the spec, or what it refers to, cannot work as it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A referenced Secret does not exist.
    #[error("Secret {name} does not exist (referenced by {field})")]
    SecretMissing {
        /// Secret name.
        name: String,
        /// The spec field that names it.
        field: String,
    },
    /// A referenced Secret lacks a key.
    #[error("Secret {name} has no key {key} (referenced by {field})")]
    SecretKeyMissing {
        /// Secret name.
        name: String,
        /// Missing key.
        key: String,
        /// The spec field.
        field: String,
    },
    /// The htpasswd content is malformed.
    #[error("Secret {name} key {key}: line {line}: {problem}")]
    MalformedHtpasswd {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// Conflicting or impossible fields.
    #[error("{0}")]
    InvalidSpec(String),
}

impl Error {
    /// The condition reason (and event reason) for this error.
    pub fn reason(&self) -> &'static str {
        use crate::crd::conditions::reasons;
        match self {
            Error::SecretMissing { .. } => reasons::SECRET_MISSING,
            Error::SecretKeyMissing { .. } | Error::MalformedHtpasswd { .. } => reasons::SECRET_INVALID,
            Error::InvalidSpec(_) => reasons::INVALID_SPEC,
        }
    }

    /// Whether the error can clear without a change to the resource (a Secret may appear or be fixed).
    pub fn depends_on_other_objects(&self) -> bool {
        !matches!(self, Error::InvalidSpec(_))
    }
}

/// Validates the shared part of a spec. The mirror adds its `proxy` afterwards.
pub fn validate(
    id: &Identity,
    spec: &CommonSpec<'_>,
    deref: &Dereferenced,
    settings: &Settings,
) -> Result<ValidatedRegistry, Error> {
    let names = ChildNames::new(&id.name);
    let server = spec.server;
    if server.replicas < 0 {
        return Err(Error::InvalidSpec(format!("replicas must not be negative, got {}", server.replicas)));
    }
    let storage = validate_storage(spec, &names, deref)?;
    if server.replicas > 1 && !storage.allows_rolling_update() {
        return Err(Error::InvalidSpec(
            "storage: more than one replica needs shared storage (s3, or a filesystem claim with accessModes \
             [ReadWriteMany]); a ReadWriteOnce claim mounts on one node only"
                .into(),
        ));
    }
    if server.replicas > 1 && matches!(storage, Storage::EmptyDir { .. }) {
        return Err(Error::InvalidSpec("storage.emptyDir is local to each pod; use replicas: 1".into()));
    }

    let service = validate_service(spec)?;
    let ingress = validate_ingress(spec)?;
    if let Some(tls) = &server.tls {
        require_key(deref, &tls.secret_name, names::TLS_CERT_KEY, "tls.secretName")?;
        require_key(deref, &tls.secret_name, names::TLS_KEY_KEY, "tls.secretName")?;
    }
    let endpoint = names::endpoint(&EndpointInput {
        service: &names.service(),
        namespace: &id.namespace,
        cluster_domain: &settings.cluster_domain,
        port: service.port,
        registry_tls: server.tls.is_some(),
        ingress: ingress.as_ref().map(|i| (i.host.as_str(), i.tls_secret_name.is_some())),
    });
    let auth = validate_auth(id, spec, deref)?;
    let gc = validate_gc(spec)?;
    let retention = validate_retention(spec, gc.as_ref())?;
    let quotas = validate_quotas(spec)?;
    Ok(ValidatedRegistry {
        kind: id.kind,
        names,
        namespace: id.namespace.clone(),
        owner: id.owner.clone(),
        endpoint,
        pods: Pods {
            replicas: server.replicas,
            image: server
                .image
                .as_deref()
                .map(str::trim)
                .filter(|i| !i.is_empty())
                .unwrap_or(&settings.default_image)
                .to_string(),
            resources: server.resources.clone(),
            node_selector: server.node_selector.clone(),
            tolerations: server.tolerations.clone(),
            affinity: server.affinity.clone(),
            annotations: server.pod_annotations.clone(),
        },
        log_level: server.log_level,
        ui_path: server.ui.as_ref().filter(|u| u.enabled).map(|u| u.path.clone().unwrap_or_else(|| "/ui/".into())),
        storage,
        auth,
        service,
        ingress,
        tls_secret: server.tls.as_ref().map(|t| t.secret_name.clone()),
        network_policy: server.network_policy.as_ref().filter(|n| n.enabled).map(|n| n.from.clone()),
        operator_namespace: settings.node.namespace.clone(),
        delete_enabled: spec.delete_enabled,
        gc,
        retention,
        quotas,
        http_secret: deref.generated.http_secret.clone(),
        proxy: None,
    })
}

fn validate_storage(spec: &CommonSpec<'_>, names: &ChildNames, deref: &Dereferenced) -> Result<Storage, Error> {
    let s = &spec.server.storage;
    let kinds = [s.filesystem.is_some(), s.empty_dir.is_some(), s.s3.is_some()].iter().filter(|x| **x).count();
    if kinds != 1 {
        return Err(Error::InvalidSpec("storage: set exactly one of filesystem, emptyDir and s3".into()));
    }
    if let Some(fs) = &s.filesystem {
        return match (&fs.existing_claim, &fs.size) {
            (Some(claim), None) => {
                if fs.storage_class_name.is_some() || fs.access_modes.is_some() {
                    return Err(Error::InvalidSpec(
                        "storage.filesystem: storageClassName and accessModes cannot be set with existingClaim".into(),
                    ));
                }
                Ok(Storage::Claim { claim_name: claim.clone(), create: None, shared: false })
            }
            (None, Some(size)) => {
                let modes = fs.access_modes.clone().unwrap_or_else(|| vec![AccessMode::ReadWriteOnce]);
                if modes.is_empty() {
                    return Err(Error::InvalidSpec("storage.filesystem.accessModes must not be empty".into()));
                }
                let shared = modes.contains(&AccessMode::ReadWriteMany);
                Ok(Storage::Claim {
                    claim_name: names.pvc(),
                    create: Some(NewClaim {
                        size: size.clone(),
                        storage_class_name: fs.storage_class_name.clone(),
                        access_modes: modes.iter().map(|m| format!("{m:?}")).collect(),
                        retain: fs.retain_on_delete,
                    }),
                    shared,
                })
            }
            _ => Err(Error::InvalidSpec(
                "storage.filesystem: set size (for a claim the operator creates) or existingClaim, not both".into(),
            )),
        };
    }
    if let Some(e) = &s.empty_dir {
        return Ok(Storage::EmptyDir { size_limit: e.size_limit.clone() });
    }
    let Some(s3) = &s.s3 else {
        return Err(Error::InvalidSpec("storage: set exactly one of filesystem, emptyDir and s3".into()));
    };
    Ok(Storage::S3(Box::new(validate_s3(s3, deref)?)))
}

fn validate_service(spec: &CommonSpec<'_>) -> Result<Service, Error> {
    let s = &spec.server.service;
    if !(1..=65535).contains(&s.port) {
        return Err(Error::InvalidSpec(format!("service.port {} is not a port", s.port)));
    }
    if s.node_port.is_some() && s.type_ == ServiceType::ClusterIP {
        return Err(Error::InvalidSpec("service.nodePort needs type NodePort or LoadBalancer".into()));
    }
    Ok(Service { type_: s.type_, port: s.port, node_port: s.node_port, annotations: s.annotations.clone() })
}

fn validate_ingress(spec: &CommonSpec<'_>) -> Result<Option<Ingress>, Error> {
    let Some(i) = &spec.server.ingress else { return Ok(None) };
    let host = i.host.trim().to_ascii_lowercase();
    if !is_dotted_dns_name(&host) {
        return Err(Error::InvalidSpec(format!(
            "ingress.host `{host}` must be a fully qualified DNS name with at least one dot: docker reads a bare \
             name as a Docker Hub namespace"
        )));
    }
    let mut annotations = BTreeMap::from([(
        names::ANNOTATION_NGINX_BODY_SIZE.to_string(),
        i.max_body_size.clone().unwrap_or_else(|| "0".into()),
    )]);
    if spec.server.tls.is_some() {
        annotations.insert(names::ANNOTATION_NGINX_BACKEND_PROTOCOL.into(), "HTTPS".into());
    }
    annotations.extend(i.annotations.clone());
    for p in &i.trusted_proxies {
        if !is_ip_or_cidr(p) {
            return Err(Error::InvalidSpec(format!(
                "ingress.trustedProxies: `{p}` is not an IP address or CIDR range such as 10.244.0.0/16"
            )));
        }
    }
    Ok(Some(Ingress {
        host,
        class_name: i.class_name.clone(),
        tls_secret_name: i.tls_secret_name.clone(),
        annotations,
        trusted_proxies: i.trusted_proxies.iter().map(|p| p.trim().to_string()).collect(),
    }))
}

fn validate_auth(id: &Identity, spec: &CommonSpec<'_>, deref: &Dereferenced) -> Result<Auth, Error> {
    let Some(a) = &spec.server.auth else { return Ok(Auth::None) };
    let kinds = [a.htpasswd.is_some(), a.token.is_some(), a.external_token.is_some()].iter().filter(|x| **x).count();
    if kinds > 1 {
        return Err(Error::InvalidSpec("auth: set at most one of htpasswd, token and externalToken".into()));
    }
    if let Some(h) = &a.htpasswd {
        let key = h.secret.key.clone().unwrap_or_else(|| names::DEFAULT_HTPASSWD_KEY.into());
        check_htpasswd(deref, &h.secret.secret_name, &key, "auth.htpasswd.secret")?;
        return Ok(Auth::Htpasswd {
            secret: h.secret.secret_name.clone(),
            key,
            realm: h.realm.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| "wharf".into()),
        });
    }
    if let Some(t) = &a.token {
        let key = t.users.key.clone().unwrap_or_else(|| names::DEFAULT_HTPASSWD_KEY.into());
        check_htpasswd(deref, &t.users.secret_name, &key, "auth.token.users")?;
        let groups = t.groups.clone().unwrap_or_default();
        let mut rules = Vec::new();
        for (i, r) in t.rules.iter().flatten().enumerate() {
            for g in r.groups.iter().flatten() {
                if !groups.contains_key(g) {
                    return Err(Error::InvalidSpec(format!(
                        "auth.token.rules[{i}]: group `{g}` is not defined under auth.token.groups"
                    )));
                }
            }
            if r.repository.trim().is_empty() {
                return Err(Error::InvalidSpec(format!("auth.token.rules[{i}].repository is empty")));
            }
            rules.push(AccessRule {
                repository: r.repository.clone(),
                users: r.users.clone().unwrap_or_default(),
                groups: r.groups.clone().unwrap_or_default(),
                anonymous: r.anonymous.unwrap_or(false),
                actions: r.actions.clone(),
            });
        }
        let signing_key = deref
            .generated
            .signing_key
            .as_ref()
            .ok_or_else(|| Error::InvalidSpec("internal: the token signing key was not generated".into()))?;
        return Ok(Auth::Token(Box::new(TokenService {
            users_secret: t.users.secret_name.clone(),
            users_key: key,
            groups,
            rules,
            issuer: t.issuer.clone().unwrap_or_else(|| format!("wharf.dev/{}/{}", id.namespace, id.name)),
            expiration: t.expiration.clone().unwrap_or_else(|| "5m".into()),
            signing_key_pem: signing_key.pem.clone(),
        })));
    }
    if let Some(e) = &a.external_token {
        check_realm(&e.realm)?;
        let key = e.root_cert_bundle.key.clone().unwrap_or_else(|| names::DEFAULT_BUNDLE_KEY.into());
        require_key(deref, &e.root_cert_bundle.secret_name, &key, "auth.externalToken.rootCertBundle")?;
        return Ok(Auth::External {
            realm: e.realm.clone(),
            service: e.service.clone(),
            issuer: e.issuer.clone(),
            bundle_secret: e.root_cert_bundle.secret_name.clone(),
            bundle_key: key,
        });
    }
    Ok(Auth::None)
}

/// Refuses a realm that only works on some machines (seed 000).
fn check_realm(realm: &str) -> Result<(), Error> {
    let rest = realm
        .strip_prefix("https://")
        .or_else(|| realm.strip_prefix("http://"))
        .ok_or_else(|| Error::InvalidSpec(format!("auth.externalToken.realm `{realm}` must be an http(s) URL")))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if authority.starts_with('[') {
        authority.split(']').next().map(|h| format!("{h}]")).unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default().to_string()
    };
    let host = host.to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") || host.starts_with("127.") || host == "[::1]" {
        return Err(Error::InvalidSpec(format!(
            "auth.externalToken.realm `{realm}` is on the loopback address: every client would look for the \
             token service on its own machine"
        )));
    }
    if !host.contains('.') && !host.starts_with('[') {
        return Err(Error::InvalidSpec(format!(
            "auth.externalToken.realm `{realm}` names a bare host `{host}`, which resolves only in some places; \
             use a fully qualified name"
        )));
    }
    Ok(())
}

fn secret_of<'d>(deref: &'d Dereferenced, name: &str, field: &str) -> Result<&'d SecretState, Error> {
    match deref.secrets.get(name) {
        None | Some(SecretState::Missing) => {
            Err(Error::SecretMissing { name: name.to_string(), field: field.to_string() })
        }
        Some(s) => Ok(s),
    }
}

pub fn require_key(deref: &Dereferenced, name: &str, key: &str, field: &str) -> Result<(), Error> {
    match secret_of(deref, name, field)? {
        SecretState::Present(data) if !data.contains_key(key) => {
            Err(Error::SecretKeyMissing { name: name.to_string(), key: key.to_string(), field: field.to_string() })
        }
        _ => Ok(()),
    }
}

fn check_htpasswd(deref: &Dereferenced, name: &str, key: &str, field: &str) -> Result<(), Error> {
    require_key(deref, name, key, field)?;
    if let SecretState::Present(data) = secret_of(deref, name, field)?
        && let Some(content) = data.get(key)
    {
        parse_htpasswd(content).map_err(|(line, problem)| Error::MalformedHtpasswd {
            name: name.to_string(),
            key: key.to_string(),
            line,
            problem,
        })?;
    }
    Ok(())
}

/// The registry's own rule for htpasswd lines (one source file, compiled
/// into both): what passes here never crash-loops the registry at start-up.
#[path = "../../../registry/src/auth/htpasswd_rule.rs"]
mod htpasswd_rule;

/// Checks htpasswd content: `user:bcrypt-hash` lines (as `htpasswd -B` writes
/// them), blank lines and `#` comments. Returns the user names.
pub fn parse_htpasswd(content: &[u8]) -> Result<Vec<String>, (usize, String)> {
    let text = std::str::from_utf8(content).map_err(|_| (0, "not UTF-8 text".to_string()))?;
    let mut users = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some((user, _)) = htpasswd_rule::parse_line(line).map_err(|e| (i + 1, e))? {
            users.push(user.to_string());
        }
    }
    if users.is_empty() {
        return Err((0, "no users".into()));
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BCRYPT: &str = "$2y$05$abcdefghijklmnopqrstuu5BXn5JmRw9VdMSt2y/xz0t5RVhQkC3i";

    #[test]
    fn htpasswd_accepts_bcrypt_only() {
        let good = format!("# team\nalice:{BCRYPT}\n\nbob:{BCRYPT}\n");
        assert_eq!(parse_htpasswd(good.as_bytes()), Ok(vec!["alice".to_string(), "bob".to_string()]));
        let md5 = "alice:$apr1$abc$0123456789abcdefghijkl\n";
        let err = parse_htpasswd(md5.as_bytes()).expect_err("apr1 refused");
        assert_eq!(err.0, 1);
        assert!(err.1.contains("htpasswd -B"), "{}", err.1);
        assert_eq!(parse_htpasswd(b"alice\n").expect_err("no colon").0, 1);
        // The registry cannot verify $2x$ and refuses it at start-up: accepting it here was a crash loop.
        let x = format!("alice:{}\n", BCRYPT.replacen("$2y$", "$2x$", 1));
        assert!(parse_htpasswd(x.as_bytes()).expect_err("$2x$ refused").1.contains("htpasswd -B"));
        let low_cost = format!("alice:{}\n", BCRYPT.replacen("$05$", "$03$", 1));
        assert!(parse_htpasswd(low_cost.as_bytes()).is_err(), "cost below 4 is refused as by the registry");
        assert_eq!(parse_htpasswd(b"\n# only comments\n").expect_err("empty").1, "no users");
    }

    #[test]
    fn realms_that_work_on_one_machine_only_are_refused() {
        for bad in
            ["http://localhost/service/token", "https://127.0.0.1:5001/auth", "http://auth:5001/token", "ftp://a.b/"]
        {
            assert!(check_realm(bad).is_err(), "{bad}");
        }
        for good in
            ["https://auth.example.com/token", "http://10.1.2.3:5001/auth", "https://harbor.corp.example/service/token"]
        {
            assert_eq!(check_realm(good), Ok(()), "{good}");
        }
    }
}
