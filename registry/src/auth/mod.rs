//! Authentication and authorization: htpasswd (Basic), bearer tokens
//! verified as registry:2 does, and the built-in token service.
//!
//! The API layer asks [`Auth::check`] for the scopes an endpoint needs and
//! gets an [`Identity`] or a [`Denial`] (401 with a challenge, 403, or 429).
//! This module calls nothing in `api`, `registry` or `storage`.

pub mod access;
pub mod htpasswd;
pub mod htpasswd_rule;
pub mod keys;
pub mod ratelimit;
pub mod realm;
pub mod reload;
pub mod scope;
pub mod token;
pub mod token_service;
pub mod verify;
pub mod viewer;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::config;
pub use crate::config::algorithm::parse_algorithm;
use htpasswd::Htpasswd;
use keys::KeySet;
use ratelimit::LoginLimiter;
use reload::ReloadingFile;
use scope::Access;
use token::Verifier;
use token_service::{ServiceConfig, TokenService};
use verify::PasswordCheck;

/// Who made a request and what they may do.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: Option<String>,
    grants: Grants,
}

#[derive(Debug, Clone)]
enum Grants {
    Everything,
    Scoped(Vec<Access>),
}

impl Identity {
    pub fn anonymous_admin() -> Self {
        Identity { user: None, grants: Grants::Everything }
    }

    pub fn allows(&self, access: &Access) -> bool {
        match &self.grants {
            Grants::Everything => true,
            Grants::Scoped(grants) => {
                access.actions.iter().all(|a| grants.iter().any(|g| g.allows(&access.kind, &access.name, a)))
            }
        }
    }
}

/// Why a request was refused.
#[derive(Debug)]
pub enum Denial {
    /// 401 with this `WWW-Authenticate` value.
    Unauthorized { challenge: String, message: String },
    /// 429 after repeated failed logins.
    TooManyRequests { retry_after: Duration },
}

enum Method {
    Open,
    Htpasswd { realm: String, users: ReloadingFile<Htpasswd> },
    Token { realm: RealmSetting, service: String, verifier: Verifier, builtin: Option<Arc<TokenService>> },
}

enum RealmSetting {
    Fixed(String),
    /// Built from each request, with this path (`/auth/token` for the built-in service).
    Auto(String),
}

pub struct Auth {
    method: Method,
    limiter: LoginLimiter,
    passwords: PasswordCheck,
}

/// What the request carries that auth looks at.
pub struct RequestAuth<'a> {
    pub headers: &'a HeaderMap,
    /// The client's address (from `X-Forwarded-For` only via a trusted proxy).
    pub client: Option<IpAddr>,
    /// The scheme and host the client reached, for `realm: auto`
    /// (`X-Forwarded-*` only via a trusted proxy; the host is validated).
    pub scheme: &'a str,
    pub host: Option<&'a str>,
    /// `http.prefix`, for the built-in token endpoint's path.
    pub prefix: &'a str,
}

/// Why a login failed.
#[derive(Debug)]
pub enum LoginFailure {
    /// Wrong user or password: 401.
    Invalid,
    /// Wrong again after several failures of this name from this client: 429.
    Throttled(Duration),
}

/// A quoted-string for a `WWW-Authenticate` parameter (RFC 9110 §5.6.4).
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The username and password of a Basic `Authorization` header.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl Auth {
    pub fn open() -> Self {
        Auth { method: Method::Open, limiter: LoginLimiter::default(), passwords: PasswordCheck::default() }
    }

    pub fn from_config(c: Option<&config::auth::Auth>) -> Result<Auth, String> {
        let Some(c) = c else { return Ok(Auth::open()) };
        let method = if let Some(h) = &c.htpasswd {
            let users = ReloadingFile::open(&h.path, Htpasswd::parse).map_err(|e| format!("auth.htpasswd.path {e}"))?;
            Method::Htpasswd { realm: h.realm.clone(), users }
        } else if let Some(t) = &c.token {
            let service = t.service.clone().unwrap_or_default();
            let issuer = t.issuer.clone().unwrap_or_default();
            let mut keys = KeySet::default();
            if let Some(path) = &t.rootcertbundle {
                let pem = std::fs::read(path).map_err(|e| format!("auth.token.rootcertbundle {path}: {e}"))?;
                keys.add_root_bundle(&pem).map_err(|e| format!("auth.token.rootcertbundle {path}: {e}"))?;
            }
            if let Some(path) = &t.jwks {
                let json = std::fs::read(path).map_err(|e| format!("auth.token.jwks {path}: {e}"))?;
                keys.add_jwks(&json).map_err(|e| format!("auth.token.jwks {path}: {e}"))?;
            }
            let builtin = match &t.builtin {
                Some(b) => {
                    let (svc, kid, public) = TokenService::load(ServiceConfig {
                        issuer: &issuer,
                        service: &service,
                        signing_key: &b.signingkey,
                        users: &b.users,
                        access: &b.access,
                        expiration: b.expiration.map_or(Duration::from_secs(300), |d| d.0),
                        refresh_expiration: b.refreshexpiration.map_or(Duration::from_secs(30 * 86400), |d| d.0),
                    })?;
                    keys.add(kid, public);
                    Some(Arc::new(svc))
                }
                None => None,
            };
            let algorithms = match &t.signingalgorithms {
                Some(names) => names.iter().map(|n| parse_algorithm(n)).collect::<Result<Vec<_>, _>>()?,
                None => token::DEFAULT_ALGORITHMS.to_vec(),
            };
            let realm = if t.realm_is_auto() {
                RealmSetting::Auto(t.autoredirectpath.clone().unwrap_or_else(|| "/auth/token".into()))
            } else {
                RealmSetting::Fixed(t.realm.clone().unwrap_or_default())
            };
            Method::Token {
                realm,
                service: service.clone(),
                verifier: Verifier::new(issuer, service, algorithms, keys),
                builtin,
            }
        } else {
            Method::Open
        };
        Ok(Auth { method, limiter: LoginLimiter::default(), passwords: PasswordCheck::default() })
    }

    pub fn token_service(&self) -> Option<&Arc<TokenService>> {
        match &self.method {
            Method::Token { builtin, .. } => builtin.as_ref(),
            _ => None,
        }
    }

    /// Verifies a refresh token of the built-in service; returns its user.
    pub fn verify_refresh(&self, token: &str) -> Result<String, String> {
        match &self.method {
            Method::Token { verifier, service, .. } => verifier
                .verify_for(token, &token_service::refresh_audience(service))
                .map_err(|e| e.to_string())?
                .sub
                .filter(|s| !s.is_empty())
                .ok_or_else(|| "refresh token names no user".to_string()),
            _ => Err("no token service".into()),
        }
    }

    pub fn limiter(&self) -> &LoginLimiter {
        &self.limiter
    }

    /// Checks `user`'s password in `users` (on the blocking pool, or from the
    /// short-lived cache of verified logins) and keeps the failure count of
    /// this name from this client. A correct password is never refused.
    pub async fn login(
        &self,
        users: Arc<Htpasswd>,
        user: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<(), LoginFailure> {
        if self.passwords.verify(users, user, password).await {
            self.limiter.success(user, client);
            return Ok(());
        }
        match self.limiter.failure(user, client) {
            Some(retry_after) => Err(LoginFailure::Throttled(retry_after)),
            None => Err(LoginFailure::Invalid),
        }
    }

    /// Checks a request that needs `needed` (empty: any authenticated caller).
    pub async fn check(&self, req: &RequestAuth<'_>, needed: &[Access]) -> Result<Identity, Denial> {
        match &self.method {
            Method::Open => Ok(Identity::anonymous_admin()),
            Method::Htpasswd { realm, users } => {
                let challenge = format!("Basic realm={}", quote(realm));
                let Some((user, password)) = basic_credentials(req.headers) else {
                    return Err(Denial::Unauthorized { challenge, message: "authentication required".into() });
                };
                match self.login(users.get(), &user, &password, req.client).await {
                    Ok(()) => Ok(Identity { user: Some(user), grants: Grants::Everything }),
                    Err(LoginFailure::Throttled(retry_after)) => Err(Denial::TooManyRequests { retry_after }),
                    Err(LoginFailure::Invalid) => {
                        Err(Denial::Unauthorized { challenge, message: "invalid username or password".into() })
                    }
                }
            }
            Method::Token { realm, service, verifier, .. } => {
                let realm_url = match realm {
                    RealmSetting::Fixed(url) => url.clone(),
                    RealmSetting::Auto(path) => realm::auto(req.scheme, req.host, &format!("{}{path}", req.prefix)),
                };
                let mut challenge = format!("Bearer realm={},service={}", quote(&realm_url), quote(service));
                if !needed.is_empty() {
                    let scopes: Vec<String> = needed.iter().map(Access::to_string).collect();
                    challenge.push_str(&format!(",scope={}", quote(&scopes.join(" "))));
                }
                let Some(token) = bearer(req.headers) else {
                    return Err(Denial::Unauthorized { challenge, message: "authentication required".into() });
                };
                let claims = verifier.verify(token).map_err(|e| Denial::Unauthorized {
                    challenge: format!("{challenge},error=\"invalid_token\""),
                    message: e.to_string(),
                })?;
                let identity =
                    Identity { user: claims.sub.filter(|s| !s.is_empty()), grants: Grants::Scoped(claims.access) };
                // As registry:2: 401 with insufficient_scope (not 403), so a client may fetch a
                // token for the scope in the challenge, and an anonymous one learns it must log in.
                if let Some(missing) = needed.iter().find(|a| !identity.allows(a)) {
                    return Err(Denial::Unauthorized {
                        challenge: format!("{challenge},error=\"insufficient_scope\""),
                        message: format!("the token does not grant {missing}"),
                    });
                }
                Ok(identity)
            }
        }
    }
}
