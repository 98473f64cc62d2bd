//! Bearer tokens (JWTs with `kid`, `x5c` or an embedded `jwk`), the JWKS
//! and root bundle files that hold the trusted keys, token-request scopes,
//! realms, and `Authorization: Basic` headers.
//!
//! The trusted key is a P-256 key whose private half was thrown away after
//! signing the seed tokens in fuzz/corpus/token (valid until 2100).
#![no_main]

use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use wharf_registry::auth::keys::KeySet;
use wharf_registry::auth::scope::Access;
use wharf_registry::auth::token::{DEFAULT_ALGORITHMS, Verifier};
use wharf_registry::auth::basic_credentials;
use wharf_registry::config::realm;

const ROOT_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBODCB3qADAgECAgEBMAoGCCqGSM49BAMCMBoxGDAWBgNVBAMMD3doYXJmIGZ1\nenogcm9vdDAgFw0yMDAxMDEwMDAwMDBaGA8yMDk5MTIzMTAwMDAwMFowGjEYMBYG\nA1UEAwwPd2hhcmYgZnV6eiByb290MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\ngwmHr+TAr0IkqwWW2L9rEduIVjXJyEud/N8WPAUaKA37H1ltNwzYPm6wQXPaMbaX\nBBUROmdJtM7w67nVd0JpN6MTMBEwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD\nAgNJADBGAiEA3QehOZt0srrFlMvm3wIkCMVyeBHKFALVqjdA8C0XLsoCIQD9Gy3h\nVzuWY4XSlSy5IAKNsZHH/4DW+uGrLh0rOWK9KA==\n-----END CERTIFICATE-----\n";
const JWKS: &str = r#"{"keys": [{"kty": "EC", "crv": "P-256", "x": "gwmHr-TAr0IkqwWW2L9rEduIVjXJyEud_N8WPAUaKA0", "y": "-x9ZbTcM2D5usEFz2jG2lwQVETpnSbTO8Ou51XdCaTc", "kid": "fuzz", "alg": "ES256", "use": "sig"}]}"#;

static VERIFIER: LazyLock<Verifier> = LazyLock::new(|| {
    let mut keys = KeySet::default();
    keys.add_jwks(JWKS.as_bytes()).expect("the fuzz JWKS loads");
    keys.add_root_bundle(ROOT_PEM.as_bytes()).expect("the fuzz root loads");
    Verifier::new("fuzz-issuer".into(), "fuzz-service".into(), DEFAULT_ALGORITHMS.to_vec(), keys)
});

fuzz_target!(|data: &[u8]| {
    let mut fresh = KeySet::default();
    let _ = fresh.add_jwks(data);
    let _ = fresh.add_root_bundle(data);
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(data) {
        headers.insert(header::AUTHORIZATION, v);
        let _ = basic_credentials(&headers);
    }
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(claims) = VERIFIER.verify(s.trim()) {
        // Only a token the trusted key signed gets here.
        assert_eq!(claims.iss, "fuzz-issuer");
    }
    for scope in s.split(' ') {
        if let Some(a) = Access::parse(scope) {
            assert_eq!(Access::parse(&a.to_string()).as_ref().map(|b| &b.name), Some(&a.name));
        }
    }
    let _ = realm::check(s);
});
