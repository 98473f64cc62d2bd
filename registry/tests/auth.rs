//! Auth through the real router: htpasswd (reloaded on change) and the
//! built-in token service with access rules (the scenario of seed 000).
//! Tokens from an external issuer are in auth_external.rs.

mod inproc;

use std::path::Path;

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::json;

use inproc::*;
use wharf_registry::config::Config;

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

fn bcrypt_line(user: &str, password: &str) -> String {
    format!("{user}:{}\n", bcrypt::hash(password, 4).unwrap())
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

// ---------------------------------------------------------------- htpasswd

#[tokio::test]
async fn htpasswd_challenges_and_reloads_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "htpasswd", &bcrypt_line("alice", "wonderland"));
    let reg = Reg::with_config("", &format!("auth:\n  htpasswd:\n    realm: Registry Realm\n    path: {path}\n"));

    let r = reg.get("/v2/").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "UNAUTHORIZED");
    assert_eq!(r.header("www-authenticate"), "Basic realm=\"Registry Realm\"");

    let ok = reg.req(Method::GET, "/v2/", &[("authorization", &basic("alice", "wonderland"))], vec![]).await;
    assert_eq!(ok.status, StatusCode::OK);
    let bad = reg.req(Method::GET, "/v2/", &[("authorization", &basic("alice", "nope"))], vec![]).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);

    // The Secret is updated while the registry runs: bob is added, alice's password changes.
    let tmp = write(dir.path(), "htpasswd.new", &(bcrypt_line("alice", "changed") + &bcrypt_line("bob", "builder")));
    std::fs::rename(tmp, &path).unwrap();
    let bob = reg.req(Method::GET, "/v2/", &[("authorization", &basic("bob", "builder"))], vec![]).await;
    assert_eq!(bob.status, StatusCode::OK, "the new user works without a restart");
    let old = reg.req(Method::GET, "/v2/", &[("authorization", &basic("alice", "wonderland"))], vec![]).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED, "the old password stopped working");
}

#[tokio::test]
async fn failed_logins_back_off_with_429() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "htpasswd", &bcrypt_line("alice", "wonderland"));
    let reg = Reg::with_config("", &format!("auth:\n  htpasswd:\n    realm: r\n    path: {path}\n"));
    for _ in 0..5 {
        let r = reg.req(Method::GET, "/v2/", &[("authorization", &basic("alice", "guess"))], vec![]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = reg.req(Method::GET, "/v2/", &[("authorization", &basic("alice", "guess"))], vec![]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "a wrong password again, before Retry-After");
    assert_eq!(r.code(), "TOOMANYREQUESTS");
    assert!(r.header("retry-after").parse::<u64>().unwrap() >= 1);
    // Issue 12: a correct password is never refused (the failures may be another client's behind the same NAT).
    let r = reg.req(Method::GET, "/v2/", &[("authorization", &basic("alice", "wonderland"))], vec![]).await;
    assert_eq!(r.status, StatusCode::OK);
}

// ------------------------------------------------------ built-in token service

const RULES: &str = r#"
groups:
  team-a: [alice, bob]
rules:
  - { repository: "team-a/**", groups: [team-a], actions: [pull, push] }
  - { repository: "{user}/**", users: ["*"], actions: [pull, push, delete] }
  - { repository: "public/**", anonymous: true, actions: [pull] }
  - { repository: "public/**", users: [alice], actions: [push] }
"#;

struct Builtin {
    reg: Reg,
    _keys: tempfile::TempDir,
    access_path: String,
}

fn builtin() -> Builtin {
    let keys = tempfile::tempdir().unwrap();
    let secret = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
    let key = write(keys.path(), "signing.pem", &pem);
    let users = write(
        keys.path(),
        "users",
        &(bcrypt_line("alice", "a-pass") + &bcrypt_line("bob", "b-pass") + &bcrypt_line("carol", "c-pass")),
    );
    let access_path = write(keys.path(), "access.yml", RULES);
    let reg = Reg::with_config(
        "  delete:\n    enabled: true",
        &format!(
            "auth:\n  token:\n    realm: auto\n    service: reg.test:5000\n    issuer: wharf\n    builtin:\n      signingkey: {key}\n      users: {users}\n      access: {access_path}\n      expiration: 5m\n"
        ),
    );
    Builtin { reg, _keys: keys, access_path }
}

impl Builtin {
    /// The docker token dance's second step: GET the realm with Basic credentials.
    async fn token(&self, creds: Option<(&str, &str)>, scopes: &[&str]) -> String {
        let mut uri = "/auth/token?service=reg.test:5000".to_string();
        for s in scopes {
            uri.push_str(&format!("&scope={s}"));
        }
        let auth = creds.map(|(u, p)| basic(u, p));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let r = self.reg.req(Method::GET, &uri, &headers, vec![]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        assert_eq!(v["token"], v["access_token"]);
        assert!(v["expires_in"].as_u64().unwrap() <= 300, "tokens are short-lived");
        v["token"].as_str().unwrap().to_string()
    }

    async fn with(&self, token: &str, method: Method, uri: &str, body: Vec<u8>) -> Resp {
        let bearer = format!("Bearer {token}");
        self.reg.req(method, uri, &[("authorization", &bearer), ("content-type", OCI_MANIFEST)], body).await
    }

    /// Pushes a one-layer image with `token`; returns the manifest PUT's status.
    async fn push(&self, token: &str, repo: &str, tag: &str) -> StatusCode {
        let layer = format!("layer of {repo}");
        let d = digest(layer.as_bytes());
        let r = self
            .with(token, Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={d}"), layer.clone().into_bytes())
            .await;
        if r.status != StatusCode::CREATED {
            return r.status;
        }
        let cfg = b"{}".to_vec();
        let c = digest(&cfg);
        self.with(token, Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={c}"), cfg).await;
        let m = image_manifest(&c, 2, &d, layer.len(), None);
        self.with(token, Method::PUT, &format!("/v2/{repo}/manifests/{tag}"), m).await.status
    }
}

#[tokio::test]
async fn the_token_dance_with_an_automatic_realm() {
    let b = builtin();
    let r = b.reg.get("/v2/team-a/app/tags/list").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.header("www-authenticate"),
        "Bearer realm=\"http://reg.test:5000/auth/token\",service=\"reg.test:5000\",scope=\"repository:team-a/app:pull\""
    );
    let r = b
        .reg
        .req(
            Method::POST,
            "/v2/team-a/app/blobs/uploads/",
            &[("x-forwarded-proto", "https"), ("x-forwarded-host", "registry.example.com")],
            vec![],
        )
        .await;
    // Issue 12: X-Forwarded-* count only from http.trustedproxies (tests/login_limits.rs); here nobody is trusted.
    assert!(
        r.header("www-authenticate").starts_with("Bearer realm=\"http://reg.test:5000/auth/token\""),
        "the realm is the address the client reached: {}",
        r.header("www-authenticate")
    );
    assert!(r.header("www-authenticate").contains("scope=\"repository:team-a/app:pull,push\""));

    let token = b.token(Some(("alice", "a-pass")), &["repository:team-a/app:pull,push"]).await;
    assert_eq!(b.push(&token, "team-a/app", "1").await, StatusCode::CREATED);
    let r = b.with(&token, Method::GET, "/v2/team-a/app/manifests/1", vec![]).await;
    assert_eq!(r.status, StatusCode::OK);
    // The token is scoped: another repository is refused with 401 insufficient_scope, as in registry:2.
    let r = b.with(&token, Method::GET, "/v2/team-b/app/tags/list", vec![]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "UNAUTHORIZED");
    assert!(r.header("www-authenticate").contains("error=\"insufficient_scope\""), "{}", r.header("www-authenticate"));
    assert!(r.header("www-authenticate").contains("scope=\"repository:team-b/app:pull\""));
}

#[tokio::test]
async fn group_rules_decide_who_may_push_and_pull() {
    let b = builtin();
    let alice = b.token(Some(("alice", "a-pass")), &["repository:team-a/app:pull,push"]).await;
    assert_eq!(b.push(&alice, "team-a/app", "1").await, StatusCode::CREATED);

    // carol is outside team-a: a partial (empty) grant, not an error, then 401 on use.
    let carol = b.token(Some(("carol", "c-pass")), &["repository:team-a/app:pull,push"]).await;
    assert_eq!(b.push(&carol, "team-a/app", "2").await, StatusCode::UNAUTHORIZED);
    let r = b.with(&carol, Method::GET, "/v2/team-a/app/manifests/1", vec![]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // ...but her personal namespace is hers.
    let carol_own = b.token(Some(("carol", "c-pass")), &["repository:carol/tools:pull,push"]).await;
    assert_eq!(b.push(&carol_own, "carol/tools", "1").await, StatusCode::CREATED);

    // bob is in team-a.
    let bob = b.token(Some(("bob", "b-pass")), &["repository:team-a/app:pull"]).await;
    assert_eq!(b.with(&bob, Method::GET, "/v2/team-a/app/manifests/1", vec![]).await.status, StatusCode::OK);
    // A pull-only grant cannot push.
    assert_eq!(b.push(&bob, "team-a/app", "3").await, StatusCode::UNAUTHORIZED);

    // Wrong password: 401 from the token endpoint.
    let r = b
        .reg
        .req(Method::GET, "/auth/token?service=reg.test:5000", &[("authorization", &basic("bob", "x"))], vec![])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn anonymous_pull_only_where_the_rules_allow() {
    let b = builtin();
    let alice = b
        .token(Some(("alice", "a-pass")), &["repository:public/base:pull,push", "repository:team-a/app:pull,push"])
        .await;
    assert_eq!(b.push(&alice, "public/base", "1").await, StatusCode::CREATED);
    assert_eq!(b.push(&alice, "team-a/app", "1").await, StatusCode::CREATED);

    let anon = b.token(None, &["repository:public/base:pull", "repository:team-a/app:pull"]).await;
    assert_eq!(b.with(&anon, Method::GET, "/v2/public/base/manifests/1", vec![]).await.status, StatusCode::OK);
    assert_eq!(b.with(&anon, Method::GET, "/v2/team-a/app/manifests/1", vec![]).await.status, StatusCode::UNAUTHORIZED);
    let anon_push = b.token(None, &["repository:public/base:push"]).await;
    assert_eq!(b.push(&anon_push, "public/base", "2").await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_catalog_shows_only_what_the_caller_may_see() {
    let b = builtin();
    let alice = b
        .token(
            Some(("alice", "a-pass")),
            &["repository:team-a/app:pull,push", "repository:public/base:pull,push", "repository:alice/x:push,pull"],
        )
        .await;
    for repo in ["team-a/app", "public/base", "alice/x"] {
        assert_eq!(b.push(&alice, repo, "1").await, StatusCode::CREATED, "{repo}");
    }
    let catalog = |who: Option<(&'static str, &'static str)>| {
        let b = &b;
        async move {
            let t = b.token(who, &["registry:catalog:*"]).await;
            b.with(&t, Method::GET, "/v2/_catalog", vec![]).await.json()["repositories"].clone()
        }
    };
    assert_eq!(catalog(Some(("alice", "a-pass"))).await, json!(["alice/x", "public/base", "team-a/app"]));
    assert_eq!(catalog(Some(("carol", "c-pass"))).await, json!(["public/base"]));
    assert_eq!(catalog(None).await, json!(["public/base"]));
    let r = b.reg.get("/v2/_catalog").await;
    assert!(r.header("www-authenticate").contains("scope=\"registry:catalog:*\""));
}

#[tokio::test]
async fn rules_file_reloads_and_refresh_tokens_work() {
    let b = builtin();
    let carol = b.token(Some(("carol", "c-pass")), &["repository:team-a/app:pull,push"]).await;
    assert_eq!(b.push(&carol, "team-a/app", "1").await, StatusCode::UNAUTHORIZED);
    // carol joins team-a: the rules file changes, no restart.
    let tmp = format!("{}.new", b.access_path);
    std::fs::write(&tmp, RULES.replace("[alice, bob]", "[alice, bob, carol]")).unwrap();
    std::fs::rename(&tmp, &b.access_path).unwrap();
    let carol = b.token(Some(("carol", "c-pass")), &["repository:team-a/app:pull,push"]).await;
    assert_eq!(b.push(&carol, "team-a/app", "1").await, StatusCode::CREATED);

    // OAuth2 password grant with offline access, then the refresh_token grant.
    let form = "grant_type=password&username=alice&password=a-pass&service=reg.test%3A5000&client_id=test&access_type=offline&scope=repository%3Ateam-a%2Fapp%3Apull";
    let r = b
        .reg
        .req(Method::POST, "/auth/token", &[("content-type", "application/x-www-form-urlencoded")], form.into())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    let refresh = r.json()["refresh_token"].as_str().unwrap().to_string();
    // A refresh token is not an access token.
    assert_eq!(
        b.with(&refresh, Method::GET, "/v2/team-a/app/tags/list", vec![]).await.status,
        StatusCode::UNAUTHORIZED
    );
    let form = format!(
        "grant_type=refresh_token&refresh_token={refresh}&service=reg.test%3A5000&client_id=test&scope=repository%3Ateam-a%2Fapp%3Apull"
    );
    let r = b
        .reg
        .req(Method::POST, "/auth/token", &[("content-type", "application/x-www-form-urlencoded")], form.into())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(b.with(&token, Method::GET, "/v2/team-a/app/tags/list", vec![]).await.status, StatusCode::OK);
    let r = b
        .reg
        .req(
            Method::POST,
            "/auth/token",
            &[],
            b"grant_type=password&username=alice&password=bad&service=reg.test%3A5000".to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn config_refuses_local_realms_and_hmac() {
    let base = "storage: {filesystem: {rootdirectory: /tmp/x}}\nauth:\n  token:\n    service: s\n    issuer: i\n    rootcertbundle: /dev/null\n";
    for realm in ["http://localhost/service/token", "http://127.0.0.1:5001/token", "http://proxy/service/token"] {
        let e = Config::from_yaml(&format!("{base}    realm: {realm}\n"), std::iter::empty()).unwrap_err().to_string();
        assert!(e.contains("auth.token.realm"), "{e}");
        assert!(e.contains("allowlocalrealm"), "the development escape hatch is named: {e}");
    }
    let e =
        Config::from_yaml(&format!("{base}    realm: http://proxy/t\n"), std::iter::empty()).unwrap_err().to_string();
    assert!(e.contains("namespace") && e.contains("dot or a port"), "cites docker's host rule: {e}");
    assert!(
        Config::from_yaml(
            &format!("{base}    realm: http://localhost/t\n    allowlocalrealm: true\n"),
            std::iter::empty()
        )
        .is_ok()
    );
    let e = Config::from_yaml(&format!("{base}    realm: auto\n    signingalgorithms: [HS256]\n"), std::iter::empty())
        .unwrap_err()
        .to_string();
    assert!(e.contains("HS256"), "{e}");
    let e =
        Config::from_yaml(&format!("{base}    realm: auto\n  htpasswd: {{realm: r, path: /x}}\n"), std::iter::empty())
            .unwrap_err()
            .to_string();
    assert!(e.contains("not both"), "{e}");
}
