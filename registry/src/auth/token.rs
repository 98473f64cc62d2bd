//! Bearer token verification, compatible with registry:2's `auth.token`:
//! the signature (RS*, PS*, ES256/384, EdDSA; never `none` or HMAC), the
//! key (x5c chain to the root bundle, or kid in the bundle or JWKS), the
//! issuer, the audience, `exp`/`nbf` with a small leeway, and the `access`
//! claim. The built-in token service's tokens go through the same code.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};

use super::keys::{KeySet, TrustedKey};
use super::scope::Access;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    pub aud: Audience,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default)]
    pub access: Vec<Access>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("signing algorithm {0:?} is not accepted")]
    Algorithm(String),
    #[error("no trusted key for this token: {0}")]
    UnknownKey(String),
    #[error("token rejected: {0}")]
    Invalid(String),
}

pub struct Verifier {
    pub issuer: String,
    pub service: String,
    algorithms: Vec<Algorithm>,
    keys: KeySet,
}

/// Algorithms accepted when `signingalgorithms` is not set. HMAC is never
/// among them: a shared secret would let any holder mint tokens.
pub const DEFAULT_ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

impl Verifier {
    pub fn new(issuer: String, service: String, algorithms: Vec<Algorithm>, keys: KeySet) -> Self {
        Verifier { issuer, service, algorithms, keys }
    }

    fn key_for(&self, header: &jsonwebtoken::Header) -> Result<TrustedKey, TokenError> {
        if let Some(x5c) = &header.x5c {
            return self.keys.verify_chain(x5c).map_err(TokenError::UnknownKey);
        }
        if let Some(kid) = &header.kid {
            return self.keys.by_kid(kid).cloned().ok_or_else(|| TokenError::UnknownKey(format!("kid {kid}")));
        }
        if let Some(jwk) = &header.jwk {
            // An embedded key is only as good as our trust in it.
            let thumb = jwk
                .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
                .map_err(|e| TokenError::Malformed(format!("embedded jwk: {e}")))?;
            return self.keys.by_kid(&thumb).cloned().ok_or_else(|| TokenError::UnknownKey("embedded jwk".into()));
        }
        Err(TokenError::UnknownKey("the token names no key (x5c, kid or jwk)".into()))
    }

    /// Verifies `token` for `audience` (the service, or a derived audience
    /// for refresh tokens) and returns its claims.
    pub fn verify_for(&self, token: &str, audience: &str) -> Result<Claims, TokenError> {
        // `alg: none` and unknown algorithms fail to parse here.
        let header = jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let key = self.key_for(&header)?;
        if !key.kind.allows(header.alg) {
            return Err(TokenError::Algorithm(format!("{:?} with a {:?} key", header.alg, key.kind)));
        }
        let mut v = Validation::new(header.alg);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[audience]);
        v.required_spec_claims = HashSet::from(["exp".to_string(), "iss".to_string(), "aud".to_string()]);
        jsonwebtoken::decode::<Claims>(token, &key.key, &v).map(|d| d.claims).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            TokenError::Invalid(match e.kind() {
                K::ExpiredSignature => "expired".into(),
                K::ImmatureSignature => "not yet valid (nbf)".into(),
                K::InvalidIssuer => format!("issuer is not {}", self.issuer),
                K::InvalidAudience => format!("audience is not {audience}"),
                K::InvalidSignature => "bad signature".into(),
                other => format!("{other:?}"),
            })
        })
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_for(token, &self.service)
    }
}
