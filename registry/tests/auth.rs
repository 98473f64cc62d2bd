//! Auth through the real router: htpasswd (reloaded on change), the
//! built-in token service with access rules (the scenario of seed 000),
//! and tokens from an external issuer whose keys and certificates are made
//! with openssl, the way registry-web or Harbor users make them.

mod inproc;

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
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

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
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

// ------------------------------------------------------------ external tokens

fn openssl(args: &[&str], dir: &Path) {
    let out =
        Command::new("openssl").args(args).current_dir(dir).output().expect("openssl is installed by scripts/tools.sh");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, a leaf certificate it signed, an unrelated self-signed certificate,
/// and an EC key, all made with openssl as a registry-web user would.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=token-ca",
            ],
            d,
        );
        openssl(
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=token-signer",
            ],
            d,
        );
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "leaf.crt",
                "-days",
                "2",
            ],
            d,
        );
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "rogue.key",
                "-out",
                "rogue.crt",
                "-days",
                "2",
                "-subj",
                "/CN=rogue",
            ],
            d,
        );
        openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ec.key"], d);
        openssl(&["req", "-x509", "-key", "ec.key", "-out", "ec.crt", "-days", "2", "-subj", "/CN=ec-signer"], d);
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).unwrap()
    }

    fn der_b64(&self, cert: &str) -> String {
        let out = Command::new("openssl").args(["x509", "-in", &self.path(cert), "-outform", "DER"]).output().unwrap();
        STANDARD.encode(out.stdout)
    }

    /// A JWKS holding the EC key's public part under kid "ec-1".
    fn jwks(&self) -> String {
        let out = Command::new("openssl")
            .args(["ec", "-in", &self.path("ec.key"), "-pubout", "-outform", "DER"])
            .output()
            .unwrap();
        // The SPKI of a P-256 key ends with the 65-byte uncompressed point.
        let point = &out.stdout[out.stdout.len() - 65..];
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "ec-1", "x": b64(&point[1..33]), "y": b64(&point[33..])}]});
        let p = self.dir.path().join("jwks.json");
        std::fs::write(&p, jwks.to_string()).unwrap();
        p.display().to_string()
    }
}

fn claims(aud: &str, iss: &str, repo: &str, actions: &[&str], exp_offset: i64, nbf_offset: i64) -> serde_json::Value {
    let now = now() as i64;
    json!({
        "iss": iss, "sub": "someone", "aud": aud,
        "exp": now + exp_offset, "nbf": now + nbf_offset, "iat": now,
        "access": [{"type": "repository", "name": repo, "actions": actions}]
    })
}

fn sign(header: Header, claims: &serde_json::Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn x5c_header(alg: Algorithm, chain: Vec<String>) -> Header {
    let mut h = Header::new(alg);
    h.x5c = Some(chain);
    h
}

#[tokio::test]
async fn external_tokens_are_verified_as_registry2_does() {
    let pki = Pki::new();
    let jwks = pki.jwks();
    let reg = Reg::with_config(
        "",
        &format!(
            "auth:\n  token:\n    realm: https://auth.example.com/token\n    service: registry.example.com\n    issuer: harbor-token-issuer\n    rootcertbundle: {}\n    jwks: {jwks}\n",
            pki.path("ca.crt")
        ),
    );
    let leaf_key = EncodingKey::from_rsa_pem(&pki.read("leaf.key")).unwrap();
    let rogue_key = EncodingKey::from_rsa_pem(&pki.read("rogue.key")).unwrap();
    let ec_key = EncodingKey::from_ec_pem(&pki.read("ec.key")).unwrap();
    let chain = vec![pki.der_b64("leaf.crt"), pki.der_b64("ca.crt")];
    let good = || claims("registry.example.com", "harbor-token-issuer", "app", &["pull"], 300, -10);
    let mut jwks_header = Header::new(Algorithm::ES256);
    jwks_header.kid = Some("ec-1".into());

    let accepted = [
        ("x5c chain to the root bundle", sign(x5c_header(Algorithm::RS256, chain.clone()), &good(), &leaf_key)),
        (
            "leaf alone, signed by the root",
            sign(x5c_header(Algorithm::RS256, vec![pki.der_b64("leaf.crt")]), &good(), &leaf_key),
        ),
        ("kid from the JWKS", sign(jwks_header.clone(), &good(), &ec_key)),
    ];
    // The repository exists (pushed through a router without auth over the same
    // storage), so an accepted token gets the real answer: 200 and the tag list.
    let open = Config::from_yaml(
        &format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}/data\nhttp:\n  secret: test\n",
            reg.dir.path().display()
        ),
        std::iter::empty(),
    )
    .unwrap();
    let seeder = Reg { router: wharf_registry::build(&open).unwrap().router, dir: tempfile::tempdir().unwrap() };
    seeder.push_image("app", "v1", "external").await;
    for (why, token) in accepted {
        let r =
            reg.req(Method::GET, "/v2/app/tags/list", &[("authorization", &format!("Bearer {token}"))], vec![]).await;
        assert_eq!(r.status, StatusCode::OK, "{why}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json(), json!({"name": "app", "tags": ["v1"]}), "{why}");
    }

    let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let alg_none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&good()));
    let hs256 = sign(Header::new(Algorithm::HS256), &good(), &EncodingKey::from_secret(b"shared"));
    let mut hs_with_kid = Header::new(Algorithm::HS256);
    hs_with_kid.kid = Some("ec-1".into());
    let refused: Vec<(&str, String, StatusCode)> = vec![
        ("alg none", alg_none, StatusCode::UNAUTHORIZED),
        ("HS256 when not configured", hs256, StatusCode::UNAUTHORIZED),
        (
            "HS256 naming a trusted kid",
            sign(hs_with_kid, &good(), &EncodingKey::from_secret(b"x")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "signed with the wrong key",
            sign(x5c_header(Algorithm::RS256, chain.clone()), &good(), &rogue_key),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "x5c chain that does not lead to the bundle",
            sign(x5c_header(Algorithm::RS256, vec![pki.der_b64("rogue.crt")]), &good(), &rogue_key),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "wrong aud",
            sign(
                x5c_header(Algorithm::RS256, chain.clone()),
                &claims("other-service", "harbor-token-issuer", "app", &["pull"], 300, -10),
                &leaf_key,
            ),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "wrong iss",
            sign(
                x5c_header(Algorithm::RS256, chain.clone()),
                &claims("registry.example.com", "someone-else", "app", &["pull"], 300, -10),
                &leaf_key,
            ),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "expired",
            sign(
                x5c_header(Algorithm::RS256, chain.clone()),
                &claims("registry.example.com", "harbor-token-issuer", "app", &["pull"], -3600, -7200),
                &leaf_key,
            ),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "not yet valid",
            sign(
                x5c_header(Algorithm::RS256, chain.clone()),
                &claims("registry.example.com", "harbor-token-issuer", "app", &["pull"], 7200, 3600),
                &leaf_key,
            ),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "unknown kid",
            {
                let mut h = Header::new(Algorithm::ES256);
                h.kid = Some("nope".into());
                sign(h, &good(), &ec_key)
            },
            StatusCode::UNAUTHORIZED,
        ),
        ("no key named", sign(Header::new(Algorithm::RS256), &good(), &leaf_key), StatusCode::UNAUTHORIZED),
        ("garbage", "not.a.token".to_string(), StatusCode::UNAUTHORIZED),
        (
            "scope names another repository",
            sign(
                x5c_header(Algorithm::RS256, chain.clone()),
                &claims("registry.example.com", "harbor-token-issuer", "other", &["pull"], 300, -10),
                &leaf_key,
            ),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "scope lacks the action",
            sign(x5c_header(Algorithm::RS256, chain.clone()), &good(), &leaf_key),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (why, token, want) in refused {
        let (method, uri) = if why == "scope lacks the action" {
            (Method::POST, "/v2/app/blobs/uploads/")
        } else {
            (Method::GET, "/v2/app/tags/list")
        };
        let r = reg.req(method, uri, &[("authorization", &format!("Bearer {token}"))], vec![]).await;
        assert_eq!(r.status, want, "{why}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.code(), "UNAUTHORIZED", "{why}");
        // A valid token without the scope: insufficient_scope, as in registry:2.
        let error = if why.starts_with("scope") { "insufficient_scope" } else { "invalid_token" };
        assert!(r.header("www-authenticate").contains(&format!("error=\"{error}\"")), "{why}");
    }
    assert!(reg.files().iter().all(|f| !f.contains("_uploads")), "no refused request created anything");
}

#[tokio::test]
async fn a_self_signed_signer_like_registry_web_is_found_by_kid() {
    // Seed 003: registry-web signs with auth.key and puts libtrust's key id in kid;
    // the registry trusts auth.cert through rootcertbundle.
    let pki = Pki::new();
    let reg = Reg::with_config(
        "",
        &format!(
            "auth:\n  token:\n    realm: https://registry-web.example.com/api/auth\n    service: registry:8080\n    issuer: Chris\n    rootcertbundle: {}\n",
            pki.path("rogue.crt")
        ),
    );
    let spki =
        Command::new("openssl").args(["x509", "-in", &pki.path("rogue.crt"), "-pubkey", "-noout"]).output().unwrap();
    let spki = String::from_utf8(spki.stdout).unwrap();
    let der = STANDARD.decode(spki.lines().filter(|l| !l.starts_with("-----")).collect::<String>()).unwrap();
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(wharf_registry::auth::keys::libtrust_kid(&der));
    let token = sign(
        h,
        &claims("registry:8080", "Chris", "app", &["pull"], 300, -10),
        &EncodingKey::from_rsa_pem(&pki.read("rogue.key")).unwrap(),
    );
    let r = reg.req(Method::GET, "/v2/app/tags/list", &[("authorization", &format!("Bearer {token}"))], vec![]).await;
    assert_eq!(
        r.code(),
        "NAME_UNKNOWN",
        "authorized, and the repository simply does not exist: {}",
        String::from_utf8_lossy(&r.body)
    );
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
