//! Validation of what only a mirror has: upstreams, ttl, cache bound, and
//! the rule that upstream credentials need client auth (seed 004: a mirror
//! with its own upstream account and no client auth hands that account's
//! private images to everyone who can reach it).

use crate::crd::{CommonSpec, RegistryMirrorSpec};
use crate::settings::Settings;
use crate::syntax::quantity_bytes;

use super::dereference::Dereferenced;
use super::validate::{self, Error, require_key};
use super::validated::{Identity, Proxy, Upstream, ValidatedRegistry};

/// Secrets holding upstream credentials.
pub fn upstream_secrets(spec: &RegistryMirrorSpec) -> Vec<String> {
    spec.upstreams.iter().filter_map(|u| u.credentials.as_ref()).map(|c| c.secret_name.clone()).collect()
}

/// Validates a RegistryMirror into the shared [`ValidatedRegistry`], with `proxy` set.
pub fn validate_mirror(
    id: &Identity,
    spec: &RegistryMirrorSpec,
    deref: &Dereferenced,
    settings: &Settings,
) -> Result<ValidatedRegistry, Error> {
    let common = CommonSpec::of_mirror_spec(spec);
    let mut v = validate::validate(id, &common, deref, settings)?;
    if spec.upstreams.is_empty() {
        return Err(Error::InvalidSpec("upstreams: name at least one upstream registry".into()));
    }
    let with_credentials: Vec<&str> =
        spec.upstreams.iter().filter(|u| u.credentials.is_some()).map(|u| u.name.as_str()).collect();
    if !with_credentials.is_empty() && !v.auth.is_configured() {
        return Err(Error::InvalidSpec(format!(
            "upstreams {} carry credentials but the mirror has no auth: every client that reaches it could pull \
             that account's private images. Set auth (htpasswd, token or externalToken)",
            with_credentials.join(", ")
        )));
    }
    let mut upstreams = Vec::new();
    for (i, u) in spec.upstreams.iter().enumerate() {
        let name = u.name.trim().to_ascii_lowercase();
        if name.is_empty() || name.contains('/') {
            return Err(Error::InvalidSpec(format!(
                "upstreams[{i}].name `{}` must be a host name like docker.io",
                u.name
            )));
        }
        if upstreams.iter().any(|x: &Upstream| x.name == name) {
            return Err(Error::InvalidSpec(format!("upstreams: `{name}` appears twice")));
        }
        let rest = u.url.strip_prefix("https://").or_else(|| u.url.strip_prefix("http://"));
        if rest.is_none_or(|r| r.split('/').next().is_none_or(|h| h.is_empty() || h.contains('@'))) {
            return Err(Error::InvalidSpec(format!(
                "upstreams[{i}].url `{}` must be an http(s) URL without user info",
                u.url
            )));
        }
        if let Some(c) = &u.credentials {
            let field = format!("upstreams[{i}].credentials");
            for key in [&c.username_key, &c.password_key] {
                require_key(deref, &c.secret_name, key, &field)?;
            }
        }
        let ca_bundle = u.ca_bundle.as_ref().map(|b| (b.config_map_name.clone(), b.key.clone()));
        upstreams.push(Upstream { name, url: u.url.clone(), credentials: u.credentials.clone(), ca_bundle });
    }
    let max_size_bytes = match &spec.max_size {
        None => None,
        Some(q) => Some(
            quantity_bytes(&q.0)
                .ok_or_else(|| Error::InvalidSpec(format!("maxSize `{}` is not a size like 50Gi", q.0)))?,
        ),
    };
    v.proxy = Some(Proxy { ttl: spec.ttl.clone(), max_size_bytes, upstreams });
    Ok(v)
}
