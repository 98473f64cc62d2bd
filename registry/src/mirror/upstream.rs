//! One upstream registry: its URL, the credentials it is given, and the
//! client side of the auth dance (anonymous, Basic, or Bearer tokens from
//! the upstream's realm).
//!
//! Credentials go to two places only: the upstream's own host (Basic, when
//! it asks for Basic) and a token realm on a host the upstream is allowed to
//! use (its own host or one listed in `realmhosts`). Redirects (blob CDNs)
//! never carry them: the client drops `Authorization` on a cross-host
//! redirect. Tokens are cached per credentials and scope until shortly
//! before they expire.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Error;
use crate::registry::digest::Digest;

/// Every manifest type the cache stores, asked for on every upstream manifest request.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.artifact.manifest.v1+json";

pub type CredKey = [u8; 32];

/// A keyed hash of Basic credentials, with a random key per process.
pub fn credential_key(user: &str, password: &str) -> CredKey {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = KEY.get_or_init(rand::random::<[u8; 32]>);
    // HMAC accepts keys of any length; this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else { return [0xff; 32] };
    mac.update(user.as_bytes());
    mac.update(b"\0");
    mac.update(password.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Whom the mirror speaks for upstream.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub enum Credentials {
    #[default]
    Anonymous,
    Basic {
        user: String,
        password: String,
    },
}

impl Credentials {
    /// A key for caches (tokens, confirmations) that holds no secret: a
    /// keyed hash, with a random key per process.
    pub fn key(&self) -> [u8; 32] {
        match self {
            Credentials::Anonymous => [0; 32],
            Credentials::Basic { user, password } => credential_key(user, password),
        }
    }

    fn basic_header(&self) -> Option<String> {
        match self {
            Credentials::Anonymous => None,
            Credentials::Basic { user, password } => {
                Some(format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))))
            }
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => write!(f, "anonymous"),
            Credentials::Basic { user, .. } => write!(f, "basic({user})"),
        }
    }
}

/// What the upstream asked for in its last `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String> },
}

/// Parses `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, params) = value.split_once(' ').unwrap_or((value, ""));
    let mut fields = HashMap::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (val, after) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        fields.insert(key, val.to_string());
        rest = after.trim_start().trim_start_matches(',').trim_start();
    }
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer { realm: fields.remove("realm")?, service: fields.remove("service") })
    } else {
        None
    }
}

/// `(https?, host[:port])` of an http(s) URL, host lowercased.
fn url_host(url: &str) -> Option<(bool, String)> {
    let (https, rest) = match url.strip_prefix("https://") {
        Some(r) => (true, r),
        None => (false, url.strip_prefix("http://")?),
    };
    let host = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    (!host.is_empty() && !host.contains('@')).then_some((https, host))
}

fn same_host(a: &str, b: &str, https: bool) -> bool {
    let default = if https { ":443" } else { ":80" };
    let norm = |h: &str| {
        if h.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) && !h.ends_with(']') {
            h.to_string()
        } else {
            format!("{h}{default}")
        }
    };
    norm(a) == norm(b)
}

type TokenKey = ([u8; 32], String);

pub struct Upstream {
    /// The name clients select it by (`docker.io`); empty for `remoteurl`.
    pub name: String,
    /// The first path component of its local repositories (the name, `:` as `_`).
    pub prefix: String,
    /// The base URL without a trailing slash.
    pub url: String,
    https: bool,
    host: String,
    realm_hosts: Vec<String>,
    /// The configured account (anonymous when none, or in pass-through mode).
    pub account: Credentials,
    docker_hub: bool,
    client: reqwest::Client,
    challenge: Mutex<Option<Challenge>>,
    /// Bearer tokens by (credentials key, scope), with when to stop using them.
    tokens: Mutex<HashMap<TokenKey, (String, Instant)>>,
    /// Credentials the token service refused, and when: not sent again for
    /// `REFUSED_TTL`, so one client retrying a wrong password cannot get the
    /// mirror's address blocked upstream for everyone.
    refused: Mutex<HashMap<[u8; 32], Instant>>,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream").field("name", &self.name).field("url", &self.url).finish()
    }
}

/// Connecting, and each read of a body, give up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Manifests and tokens are small: the whole exchange has this long.
const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long credentials the token service refused are refused here without asking.
const REFUSED_TTL: Duration = Duration::from_secs(30);

impl Upstream {
    /// `ca` holds PEM certificates trusted for this upstream besides the system's.
    pub fn new(
        name: &str,
        url: &str,
        account: Credentials,
        realm_hosts: &[String],
        ca: &[u8],
    ) -> Result<Upstream, String> {
        let url = url.trim_end_matches('/').to_string();
        let (https, host) = url_host(&url).ok_or_else(|| format!("`{url}` is not an http(s) URL"))?;
        crate::install_crypto_provider();
        let extra_roots = if ca.is_empty() {
            Vec::new()
        } else {
            let certs = reqwest::Certificate::from_pem_bundle(ca).map_err(|e| format!("the CA file of {url}: {e}"))?;
            if certs.is_empty() {
                return Err(format!("the CA file of {url} holds no PEM certificate"));
            }
            certs
        };
        let client = reqwest::Client::builder()
            .tls_certs_merge(extra_roots)
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("wharf-registry/", env!("CARGO_PKG_VERSION"), " (pull-through cache)"))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        let bare = host.split(':').next().unwrap_or("");
        Ok(Upstream {
            name: name.to_string(),
            prefix: crate::config::mirror::prefix_of(name),
            docker_hub: matches!(bare, "registry-1.docker.io" | "index.docker.io" | "docker.io"),
            url,
            https,
            host,
            realm_hosts: realm_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            account,
            client,
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
        })
    }

    /// What the upstream calls a repository: Docker Hub's official images live under `library/`.
    pub fn remote_name(&self, name: &str) -> String {
        if self.docker_hub && !name.contains('/') { format!("library/{name}") } else { name.to_string() }
    }

    /// A readable label for logs and errors.
    pub fn label(&self) -> String {
        if self.name.is_empty() { self.host.clone() } else { self.name.clone() }
    }

    fn unreachable(&self, e: &reqwest::Error) -> Error {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        Error::Unreachable { upstream: self.label(), message }
    }

    /// Whether a token realm may receive credentials meant for this upstream.
    fn realm_allowed(&self, realm: &str) -> Result<(), Error> {
        let refuse = |why: String| Error::Refused { upstream: self.label(), message: why };
        let (https, host) = url_host(realm).ok_or_else(|| refuse(format!("token realm `{realm}` is not a URL")))?;
        if self.https && !https {
            return Err(refuse(format!("token realm `{realm}` is plain http while the upstream is https")));
        }
        let allowed =
            same_host(&host, &self.host, https) || self.realm_hosts.iter().any(|h| same_host(&host, h, https));
        if !allowed {
            return Err(refuse(format!(
                "the token realm is on `{host}`, which is neither the upstream's host nor listed in its realmhosts; \
                 no credentials were sent"
            )));
        }
        Ok(())
    }

    /// Gets (or reuses) a token for `scope` from the Bearer realm.
    async fn token(
        &self,
        creds: &Credentials,
        scope: &str,
        realm: &str,
        service: Option<&str>,
    ) -> Result<String, Error> {
        let key = (creds.key(), scope.to_string());
        if let Some((token, until)) = self.tokens.lock().unwrap_or_else(|p| p.into_inner()).get(&key)
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let refused_at = self.refused.lock().unwrap_or_else(|p| p.into_inner()).get(&key.0).copied();
        if refused_at.is_some_and(|at| at.elapsed() < REFUSED_TTL) {
            return Err(Error::Unauthorized {
                upstream: self.label(),
                message: "the token service refused these credentials moments ago".into(),
            });
        }
        self.realm_allowed(realm)?;
        let mut query = vec![("scope", scope)];
        if let Some(s) = service {
            query.push(("service", s));
        }
        let mut req = self.client.get(realm).query(&query).timeout(SMALL_REQUEST_TIMEOUT);
        if let Some(basic) = creds.basic_header() {
            req = req.header(header::AUTHORIZATION, basic);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED && creds != &Credentials::Anonymous {
            let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
            if refused.len() > 10_000 {
                refused.retain(|_, at| at.elapsed() < REFUSED_TTL);
            }
            refused.insert(key.0, Instant::now());
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Error::TooManyRequests { upstream: self.label(), retry_after: retry_after(&resp) });
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Error::Unauthorized {
                upstream: self.label(),
                message: format!("the token service refused the credentials ({status})"),
            });
        }
        if !status.is_success() {
            return Err(Error::Upstream {
                upstream: self.label(),
                status: status.as_u16(),
                message: "the token service failed".into(),
            });
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let body = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| Error::Upstream {
            upstream: self.label(),
            status: status.as_u16(),
            message: format!("the token service answered something that is not a token: {e}"),
        })?;
        let token = parsed.token.or(parsed.access_token).filter(|t| !t.is_empty()).ok_or_else(|| Error::Upstream {
            upstream: self.label(),
            status: status.as_u16(),
            message: "the token service answered no token".into(),
        })?;
        // The spec's default lifetime is 60 s; renew a little before expiry.
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(60).max(1));
        let until = Instant::now() + lifetime - lifetime.min(Duration::from_secs(10)) / 2;
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if tokens.len() > 10_000 {
            tokens.retain(|_, (_, u)| Instant::now() < *u);
        }
        tokens.insert(key, (token.clone(), until));
        Ok(token)
    }

    /// The `Authorization` value for a request, given what the upstream asked for before.
    async fn authorization(&self, creds: &Credentials, scope: &str) -> Result<Option<String>, Error> {
        let challenge = self.challenge.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(creds.basic_header()),
            Some(Challenge::Bearer { realm, service }) => {
                Ok(Some(format!("Bearer {}", self.token(creds, scope, &realm, service.as_deref()).await?)))
            }
        }
    }

    /// Sends `method /v2/<path>` for `repository`, answering one auth challenge.
    pub async fn send(
        &self,
        method: Method,
        repository: &str,
        path: &str,
        accept: Option<&str>,
        creds: &Credentials,
    ) -> Result<reqwest::Response, Error> {
        let scope = format!("repository:{repository}:pull");
        let url = format!("{}/v2/{repository}/{path}", self.url);
        let mut answered = false;
        loop {
            let mut req = self.client.request(method.clone(), &url);
            if let Some(a) = accept {
                req = req.header(header::ACCEPT, a);
            }
            if method != Method::GET || path.starts_with("manifests/") {
                req = req.timeout(SMALL_REQUEST_TIMEOUT);
            }
            if let Some(auth) = self.authorization(creds, &scope).await? {
                req = req.header(header::AUTHORIZATION, auth);
            }
            let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
            if resp.status() != StatusCode::UNAUTHORIZED || answered {
                return Ok(resp);
            }
            let challenge = resp
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(parse_challenge)
                .next();
            let retry = match &challenge {
                Some(Challenge::Bearer { .. }) => true,
                Some(Challenge::Basic) => creds != &Credentials::Anonymous,
                None => false,
            };
            if !retry {
                return Ok(resp);
            }
            let changed = {
                let mut known = self.challenge.lock().unwrap_or_else(|p| p.into_inner());
                let changed = known.as_ref() != challenge.as_ref();
                *known = challenge;
                changed
            };
            if !changed {
                // Same challenge as before: the cached token was refused; get a new one.
                self.tokens.lock().unwrap_or_else(|p| p.into_inner()).remove(&(creds.key(), scope.clone()));
            }
            answered = true;
        }
    }

    /// Maps a non-success status to an error; `what` names the object.
    pub fn check(
        &self,
        resp: reqwest::Response,
        repository: &str,
        missing: Missing,
    ) -> Result<reqwest::Response, Error> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        Err(match status {
            StatusCode::NOT_FOUND => Error::NotFound { upstream: self.label(), missing },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Error::Unauthorized { upstream: self.label(), message: format!("{repository}: {status}") }
            }
            StatusCode::TOO_MANY_REQUESTS => {
                Error::TooManyRequests { upstream: self.label(), retry_after: retry_after(&resp) }
            }
            s => Error::Upstream { upstream: self.label(), status: s.as_u16(), message: format!("{repository}: {s}") },
        })
    }

    /// `HEAD` a manifest: its digest when the upstream says it.
    pub async fn manifest_head(
        &self,
        repository: &str,
        reference: &str,
        creds: &Credentials,
    ) -> Result<Option<Digest>, Error> {
        let resp = self
            .send(Method::HEAD, repository, &format!("manifests/{reference}"), Some(MANIFEST_ACCEPT), creds)
            .await?;
        let resp = self.check(resp, repository, Missing::Manifest(format!("{repository}:{reference}")))?;
        Ok(content_digest(resp.headers()))
    }

    /// `GET` a manifest: body, media type and the digest the upstream claims.
    pub async fn manifest_get(
        &self,
        repository: &str,
        reference: &str,
        creds: &Credentials,
    ) -> Result<(bytes::Bytes, Option<String>), Error> {
        let resp =
            self.send(Method::GET, repository, &format!("manifests/{reference}"), Some(MANIFEST_ACCEPT), creds).await?;
        let resp = self.check(resp, repository, Missing::Manifest(format!("{repository}:{reference}")))?;
        let media_type = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let limit = crate::oci::manifest::MAX_MANIFEST_BYTES;
        if resp.content_length().is_some_and(|n| n as usize > limit) {
            return Err(Error::Upstream {
                upstream: self.label(),
                status: 200,
                message: "manifest exceeds 4 MiB".into(),
            });
        }
        let body = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
        if body.len() > limit {
            return Err(Error::Upstream {
                upstream: self.label(),
                status: 200,
                message: "manifest exceeds 4 MiB".into(),
            });
        }
        Ok((body, media_type))
    }

    /// `HEAD` a blob: its size.
    pub async fn blob_head(
        &self,
        repository: &str,
        digest: &Digest,
        creds: &Credentials,
    ) -> Result<Option<u64>, Error> {
        let resp = self.send(Method::HEAD, repository, &format!("blobs/{digest}"), None, creds).await?;
        let resp = self.check(resp, repository, Missing::Blob(digest.clone()))?;
        Ok(resp.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()))
    }

    /// `GET` a blob, following redirects (credentials are not forwarded to other hosts).
    pub async fn blob_get(
        &self,
        repository: &str,
        digest: &Digest,
        creds: &Credentials,
    ) -> Result<reqwest::Response, Error> {
        let resp = self.send(Method::GET, repository, &format!("blobs/{digest}"), None, creds).await?;
        self.check(resp, repository, Missing::Blob(digest.clone()))
    }

    pub fn body_error(&self, e: &reqwest::Error) -> Error {
        self.unreachable(e)
    }
}

/// What an upstream 404 was about.
#[derive(Debug, Clone)]
pub enum Missing {
    Manifest(String),
    Blob(Digest),
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Manifest(m) => write!(f, "manifest {m}"),
            Missing::Blob(d) => write!(f, "blob {d}"),
        }
    }
}

pub fn content_digest(headers: &HeaderMap) -> Option<Digest> {
    headers.get("docker-content-digest").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
}

/// A 429's `Retry-After` in seconds, when it is given as a number.
fn retry_after(resp: &reqwest::Response) -> Option<u64> {
    resp.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
        assert_eq!(parse_challenge(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None, "no realm, nothing to follow");
    }

    fn upstream(url: &str, realm_hosts: &[&str]) -> Upstream {
        let hosts: Vec<String> = realm_hosts.iter().map(|s| s.to_string()).collect();
        Upstream::new("docker.io", url, Credentials::Anonymous, &hosts, &[]).unwrap()
    }

    #[test]
    fn realms_only_on_allowed_hosts() {
        let u = upstream("https://registry-1.docker.io", &["auth.docker.io"]);
        assert!(u.realm_allowed("https://auth.docker.io/token").is_ok());
        assert!(u.realm_allowed("https://registry-1.docker.io:443/token").is_ok());
        assert!(u.realm_allowed("https://evil.example/token").is_err());
        assert!(u.realm_allowed("http://auth.docker.io/token").is_err(), "no downgrade to plain http");
        assert!(u.realm_allowed("https://auth.docker.io.evil.example/token").is_err());
        assert!(u.realm_allowed("https://user@auth.docker.io/token").is_err());
        let local = upstream("http://127.0.0.1:5000", &[]);
        assert!(local.realm_allowed("http://127.0.0.1:5000/auth/token").is_ok());
        assert!(local.realm_allowed("http://127.0.0.1:5001/auth/token").is_err(), "another port is another host");
    }

    #[test]
    fn docker_hub_official_images() {
        let u = upstream("https://registry-1.docker.io", &[]);
        assert_eq!(u.remote_name("nginx"), "library/nginx");
        assert_eq!(u.remote_name("bitnami/nginx"), "bitnami/nginx");
        assert_eq!(upstream("https://ghcr.io", &[]).remote_name("nginx"), "nginx");
    }

    #[test]
    fn credential_keys_hold_no_secret_and_differ() {
        let a = Credentials::Basic { user: "a".into(), password: "p".into() };
        let b = Credentials::Basic { user: "a".into(), password: "q".into() };
        assert_ne!(a.key(), b.key());
        assert_eq!(format!("{a:?}"), "basic(a)");
    }
}
