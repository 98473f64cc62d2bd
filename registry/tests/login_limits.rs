//! Tenant safety of logins (issue 12, sections 3 and 5): failed logins of
//! one client never lock out others behind the same address, and the
//! `X-Forwarded-*` headers count only from `http.trustedproxies`.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http_body_util::BodyExt;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use tower::ServiceExt;

use wharf_registry::api::PeerAddr;
use wharf_registry::config::Config;

struct Reg {
    router: Router,
    _dir: tempfile::TempDir,
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
}

impl Resp {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// A registry with `http_extra` under `http:` and `auth` (with `$DIR` for its directory) at the top.
fn registry(http_extra: &str, auth: impl FnOnce(&std::path::Path) -> String) -> Reg {
    let dir = tempfile::tempdir().unwrap();
    let auth = auth(dir.path());
    let yaml = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}/data\nhttp:\n  secret: test\n{http_extra}\n{auth}\n",
        dir.path().display()
    );
    let config = Config::from_yaml(&yaml, std::iter::empty()).unwrap();
    Reg { router: wharf_registry::build(&config).unwrap().router, _dir: dir }
}

/// alice and bob in an htpasswd file, at `htpasswd -B`'s cost.
fn htpasswd_registry(http_extra: &str) -> Reg {
    registry(http_extra, |dir| {
        let path = dir.join("htpasswd");
        let lines =
            format!("alice:{}\nbob:{}\n", bcrypt::hash("alice-pw", 5).unwrap(), bcrypt::hash("bob-pw", 5).unwrap());
        std::fs::write(&path, lines).unwrap();
        format!("auth:\n  htpasswd:\n    realm: Registry\n    path: {}\n", path.display())
    })
}

/// The built-in token service with `realm: auto`.
fn token_registry(http_extra: &str) -> Reg {
    registry(http_extra, |dir| {
        let secret = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        std::fs::write(dir.join("key.pem"), secret.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
        std::fs::write(dir.join("users"), format!("alice:{}\n", bcrypt::hash("alice-pw", 4).unwrap())).unwrap();
        std::fs::write(dir.join("access.yml"), "rules: []\n").unwrap();
        let d = dir.display();
        format!(
            "auth:\n  token:\n    realm: auto\n    service: reg\n    issuer: wharf\n    builtin:\n      signingkey: {d}/key.pem\n      users: {d}/users\n      access: {d}/access.yml\n"
        )
    })
}

impl Reg {
    async fn send(&self, method: &str, uri: &str, peer: &str, headers: &[(&str, &str)]) -> Resp {
        let mut b = Request::builder().method(method).uri(uri).header("host", "reg.internal:5000");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut req = b.body(Body::empty()).unwrap();
        req.extensions_mut().insert(PeerAddr(peer.parse::<SocketAddr>().unwrap()));
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let _ = resp.into_body().collect().await;
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR);
        Resp { status, headers }
    }

    async fn login(&self, user: &str, password: &str, peer: &str, xff: Option<&str>) -> StatusCode {
        let auth = basic(user, password);
        let mut headers = vec![("authorization", auth.as_str())];
        if let Some(xff) = xff {
            headers.push(("x-forwarded-for", xff));
        }
        self.send("GET", "/v2/", peer, &headers).await.status
    }
}

/// Behind SNAT every client has one address. Old code: five failures of
/// alice blocked the address, so bob's and alice's correct logins got 429.
#[tokio::test]
async fn a_typo_prone_script_locks_out_no_one() {
    let reg = htpasswd_registry("");
    let nat = "10.9.8.7:40000";
    for _ in 0..5 {
        assert_eq!(reg.login("alice", "stale", nat, None).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(reg.login("alice", "stale", nat, None).await, StatusCode::TOO_MANY_REQUESTS, "alice backs off");
    assert_eq!(reg.login("bob", "bob-pw", nat, None).await, StatusCode::OK, "another name is not blocked");
    assert_eq!(reg.login("bob", "nope", nat, None).await, StatusCode::UNAUTHORIZED, "bob's own count is clean");
    assert_eq!(reg.login("alice", "alice-pw", nat, None).await, StatusCode::OK, "a correct password always passes");
    assert_eq!(reg.login("alice", "stale", nat, None).await, StatusCode::UNAUTHORIZED, "the success cleared it");
}

/// The built-in token service shares the rule.
#[tokio::test]
async fn the_token_endpoint_does_not_lock_out_correct_passwords() {
    let reg = token_registry("");
    let peer = "10.9.8.7:40000";
    let get = |user: &'static str, pw: &'static str| {
        let auth = basic(user, pw);
        let reg = &reg;
        async move { reg.send("GET", "/auth/token?service=reg", peer, &[("authorization", &auth)]).await.status }
    };
    for _ in 0..6 {
        assert_ne!(get("alice", "wrong").await, StatusCode::OK);
    }
    assert_eq!(get("alice", "wrong").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(get("alice", "alice-pw").await, StatusCode::OK);
}

/// `X-Forwarded-For` names the client only when a trusted proxy sent it.
/// Old code ignored it always: every client behind the Ingress was the
/// Ingress, and a stranger's header was … ignored too (that part held).
#[tokio::test]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    let reg = htpasswd_registry("  trustedproxies: [10.0.0.0/8]\n");
    let ingress = "10.1.2.3:50000";
    for _ in 0..6 {
        reg.login("alice", "wrong", ingress, Some("203.0.113.5")).await;
    }
    assert_eq!(reg.login("alice", "wrong", ingress, Some("203.0.113.5")).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        reg.login("alice", "wrong", ingress, Some("198.51.100.9")).await,
        StatusCode::UNAUTHORIZED,
        "another client behind the same Ingress has its own count"
    );

    // A stranger cannot pick a fresh address per attempt to dodge the back-off.
    let stranger = "192.0.2.44:1234";
    for i in 0..6 {
        reg.login("alice", "wrong", stranger, Some(&format!("198.18.0.{i}"))).await;
    }
    assert_eq!(reg.login("alice", "wrong", stranger, Some("198.18.0.99")).await, StatusCode::TOO_MANY_REQUESTS);
}

/// `realm: auto` and `Location` follow `X-Forwarded-Host`/`-Proto` only from
/// trusted proxies, and the challenge never carries a forged host. Old code
/// believed anyone's headers.
#[tokio::test]
async fn forwarded_host_and_proto_count_only_from_trusted_proxies() {
    let reg = token_registry("  trustedproxies: [10.0.0.0/8, \"::1\"]\n");
    let forged = [("x-forwarded-host", "evil.example"), ("x-forwarded-proto", "https")];
    let r = reg.send("GET", "/v2/", "192.0.2.44:1234", &forged).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header("www-authenticate"), "Bearer realm=\"http://reg.internal:5000/auth/token\",service=\"reg\"");

    let r = reg.send("GET", "/v2/", "10.1.2.3:50000", &forged).await;
    assert_eq!(r.header("www-authenticate"), "Bearer realm=\"https://evil.example/auth/token\",service=\"reg\"");
    let r = reg.send("GET", "/v2/", "[::1]:50000", &forged).await;
    assert!(r.header("www-authenticate").contains("https://evil.example/"), "IPv6 proxies too");

    // A Host that is no host name is not reflected into the header.
    let r = reg.send("GET", "/v2/", "10.1.2.3:50000", &[("x-forwarded-host", "x\",error=\"insufficient_scope")]).await;
    let challenge = r.header("www-authenticate");
    assert!(!challenge.contains("insufficient_scope"), "{challenge}");
    assert!(challenge.starts_with("Bearer realm=\"http://reg.internal:5000/"), "{challenge}");
}

#[tokio::test]
async fn upload_locations_follow_forwarded_headers_only_from_trusted_proxies() {
    let reg = registry("  trustedproxies: [10.0.0.0/8]\n", |_| String::new());
    let forged = [("x-forwarded-host", "evil.example"), ("x-forwarded-proto", "https")];
    let r = reg.send("POST", "/v2/app/blobs/uploads/", "192.0.2.44:1234", &forged).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.header("location").starts_with("http://reg.internal:5000/v2/app/blobs/uploads/"), "{:?}", r.headers);
    let r = reg.send("POST", "/v2/app/blobs/uploads/", "10.1.2.3:50000", &forged).await;
    assert!(r.header("location").starts_with("https://evil.example/v2/app/blobs/uploads/"), "{:?}", r.headers);
}

#[test]
fn trusted_proxies_are_validated_at_start() {
    let e = Config::from_yaml("storage: {filesystem: {}}\nhttp: {trustedproxies: [10.0.0.0/33]}\n", std::iter::empty())
        .unwrap_err()
        .to_string();
    assert!(e.contains("http.trustedproxies") && e.contains("10.0.0.0/33"), "{e}");
}
