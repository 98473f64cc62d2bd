//! `auth:`: htpasswd, or tokens (external, or the built-in token service).

use serde::{Deserialize, Serialize};

use super::values::{ConfigError, GoDuration, key_error};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub htpasswd: Option<HtpasswdAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenAuth>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HtpasswdAuth {
    pub realm: String,
    pub path: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenAuth {
    /// A URL, or `auto` to build it from each request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootcertbundle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signingalgorithms: Option<Vec<String>>,
    /// registry:2's way of saying `realm: auto`.
    #[serde(default)]
    pub autoredirect: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoredirectpath: Option<String>,
    /// Development only: allow a realm on localhost or a bare host name.
    #[serde(default)]
    pub allowlocalrealm: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<BuiltinTokenService>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BuiltinTokenService {
    /// PKCS#8 PEM ECDSA P-256 private key (tokens are ES256).
    pub signingkey: String,
    /// bcrypt htpasswd file of users.
    pub users: String,
    /// Access rules file (groups and rules).
    pub access: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshexpiration: Option<GoDuration>,
}

impl Auth {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        match (&self.htpasswd, &self.token) {
            (Some(_), Some(_)) => Err(key_error("auth", "configure one of htpasswd and token, not both")),
            (None, None) => Err(key_error("auth", "no auth method configured (htpasswd or token)")),
            (Some(h), None) => {
                if h.path.is_empty() {
                    return Err(key_error("auth.htpasswd.path", "is required"));
                }
                Ok(())
            }
            (None, Some(t)) => t.validate(),
        }
    }
}

impl TokenAuth {
    /// True when the realm is built from each request.
    pub fn realm_is_auto(&self) -> bool {
        self.autoredirect || self.realm.as_deref() == Some("auto") || (self.realm.is_none() && self.builtin.is_some())
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.realm_is_auto() {
            let realm =
                self.realm.as_deref().ok_or_else(|| key_error("auth.token.realm", "is required (a URL or `auto`)"))?;
            if !self.allowlocalrealm {
                super::realm::check(realm).map_err(|m| {
                    key_error(
                        "auth.token.realm",
                        format!("{m} (set auth.token.allowlocalrealm: true to allow it for development)"),
                    )
                })?;
            }
        }
        if self.service.as_deref().unwrap_or("").is_empty() {
            return Err(key_error("auth.token.service", "is required: the audience tokens must name"));
        }
        if self.issuer.as_deref().unwrap_or("").is_empty() {
            return Err(key_error("auth.token.issuer", "is required: the issuer tokens must name"));
        }
        if self.rootcertbundle.is_none() && self.jwks.is_none() && self.builtin.is_none() {
            return Err(key_error("auth.token", "no keys to verify tokens: set rootcertbundle, jwks or builtin"));
        }
        for alg in self.signingalgorithms.iter().flatten() {
            if alg.to_ascii_uppercase().starts_with("HS") {
                return Err(key_error(
                    "auth.token.signingalgorithms",
                    format!("{alg} is refused: HMAC needs a shared secret, which lets every holder mint tokens"),
                ));
            }
            super::algorithm::parse_algorithm(alg).map_err(|m| key_error("auth.token.signingalgorithms", m))?;
        }
        Ok(())
    }
}
