//! The built-in token service (`auth.token.builtin`): users log in with
//! Basic auth against an htpasswd file, and get a short-lived token whose
//! `access` claim is the intersection of what they asked for and what the
//! access rules permit. It signs with a key from a file (the operator
//! generates it into a Secret); the registry verifies these tokens with the
//! same code as external ones.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::DecodePrivateKey;
use serde::Serialize;

use super::access::AccessRules;
use super::htpasswd::Htpasswd;
use super::keys::{KeyKind, TrustedKey, ec_thumbprint};
use super::reload::ReloadingFile;
use super::scope::Access;
use super::token::Claims;

pub struct TokenService {
    pub issuer: String,
    pub service: String,
    expiration: Duration,
    refresh_expiration: Duration,
    signing: EncodingKey,
    kid: String,
    users: ReloadingFile<Htpasswd>,
    rules: ReloadingFile<AccessRules>,
}

/// The token endpoint's answer, in the docker token spec's shape.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub token: String,
    pub access_token: String,
    pub expires_in: u64,
    pub issued_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

pub struct ServiceConfig<'a> {
    pub issuer: &'a str,
    pub service: &'a str,
    pub signing_key: &'a str,
    pub users: &'a str,
    pub access: &'a str,
    pub expiration: Duration,
    pub refresh_expiration: Duration,
}

/// The audience of refresh tokens, so one is never accepted as an access token.
pub fn refresh_audience(service: &str) -> String {
    format!("{service}#refresh")
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl TokenService {
    /// Loads the key, users and rules; returns the service and the public
    /// key (with its kid) that verifiers must trust.
    pub fn load(c: ServiceConfig<'_>) -> Result<(TokenService, String, TrustedKey), String> {
        let pem = std::fs::read_to_string(c.signing_key)
            .map_err(|e| format!("auth.token.builtin.signingkey {}: {e}", c.signing_key))?;
        let secret = p256::SecretKey::from_pkcs8_pem(&pem).map_err(|e| {
            format!("auth.token.builtin.signingkey {}: not a PKCS#8 PEM ECDSA P-256 key ({e}); create one with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`", c.signing_key)
        })?;
        let point = secret.public_key().to_sec1_bytes();
        if point.len() != 65 {
            return Err("unexpected public key encoding".into());
        }
        let kid = ec_thumbprint(&point[1..33], &point[33..]);
        let signing =
            EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| format!("auth.token.builtin.signingkey: {e}"))?;
        let public = TrustedKey { kind: KeyKind::EcP256, key: jsonwebtoken::DecodingKey::from_ec_der(&point) };
        let users =
            ReloadingFile::open(c.users, Htpasswd::parse).map_err(|e| format!("auth.token.builtin.users {e}"))?;
        let rules =
            ReloadingFile::open(c.access, AccessRules::parse).map_err(|e| format!("auth.token.builtin.access {e}"))?;
        Ok((
            TokenService {
                issuer: c.issuer.to_string(),
                service: c.service.to_string(),
                expiration: c.expiration,
                refresh_expiration: c.refresh_expiration,
                signing,
                kid: kid.clone(),
                users,
                rules,
            },
            kid,
            public,
        ))
    }

    pub fn rules(&self) -> Arc<AccessRules> {
        self.rules.get()
    }

    /// The current users file (verify with [`super::Auth::login`], off the async workers).
    pub fn users(&self) -> Arc<Htpasswd> {
        self.users.get()
    }

    pub fn user_exists(&self, user: &str) -> bool {
        self.users.get().contains(user)
    }

    /// What `user` gets of `requested`: a partial grant is not an error.
    pub fn grant(&self, user: Option<&str>, requested: &[Access]) -> Vec<Access> {
        let rules = self.rules.get();
        let mut out = Vec::new();
        for want in requested {
            match (want.kind.as_str(), want.name.as_str()) {
                ("repository", name) => {
                    let permitted = rules.permitted(user, name);
                    let actions: BTreeSet<String> = want
                        .actions
                        .iter()
                        .flat_map(|a| {
                            if a == "*" { permitted.iter().cloned().collect::<Vec<_>>() } else { vec![a.clone()] }
                        })
                        .filter(|a| permitted.contains(a))
                        .collect();
                    if !actions.is_empty() {
                        out.push(Access {
                            kind: want.kind.clone(),
                            name: want.name.clone(),
                            actions: actions.into_iter().collect(),
                        });
                    }
                }
                // Everyone may list; the registry filters the list by the rules.
                ("registry", "catalog") => out.push(Access::catalog()),
                _ => {}
            }
        }
        out
    }

    fn sign(&self, claims: &Claims) -> Result<String, String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.signing).map_err(|e| format!("signing a token: {e}"))
    }

    /// Issues an access token (and, when asked, a refresh token).
    pub fn issue(&self, user: Option<&str>, requested: &[Access], offline: bool) -> Result<TokenResponse, String> {
        let now = now_secs();
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: Some(user.unwrap_or("").to_string()),
            aud: super::token::Audience::One(self.service.clone()),
            exp: now + self.expiration.as_secs(),
            nbf: Some(now.saturating_sub(1)),
            iat: Some(now),
            jti: Some(uuid::Uuid::new_v4().to_string()),
            access: self.grant(user, requested),
        };
        let token = self.sign(&claims)?;
        let refresh_token = match (offline, user) {
            (true, Some(u)) => Some(self.sign(&Claims {
                aud: super::token::Audience::One(refresh_audience(&self.service)),
                exp: now + self.refresh_expiration.as_secs(),
                sub: Some(u.to_string()),
                access: Vec::new(),
                jti: Some(uuid::Uuid::new_v4().to_string()),
                ..claims.clone()
            })?),
            _ => None,
        };
        let issued_at = time::OffsetDateTime::from_unix_timestamp(now as i64)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        Ok(TokenResponse {
            access_token: token.clone(),
            token,
            expires_in: self.expiration.as_secs(),
            issued_at,
            refresh_token,
        })
    }
}
