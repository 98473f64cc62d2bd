//! Tokens from an external issuer through the real router, verified as
//! registry:2 does: keys and certificates made with openssl, the way
//! registry-web or Harbor users make them.

mod inproc;

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use inproc::*;
use wharf_registry::config::Config;

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
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
