//! The keys a token may be signed with: certificates from `rootcertbundle`
//! (found by key id, or through an `x5c` chain that leads to one of them),
//! keys from a `jwks` file (by `kid`), and the built-in service's own key.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use sha2::{Digest as _, Sha256};
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

/// The family of a public key, which decides the algorithms it can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyKind {
    pub fn allows(self, alg: Algorithm) -> bool {
        use Algorithm as A;
        match self {
            KeyKind::Rsa => matches!(alg, A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512),
            KeyKind::EcP256 => alg == A::ES256,
            KeyKind::EcP384 => alg == A::ES384,
            KeyKind::Ed25519 => alg == A::EdDSA,
        }
    }
}

#[derive(Clone)]
pub struct TrustedKey {
    pub kind: KeyKind,
    pub key: DecodingKey,
}

#[derive(Default, Clone)]
pub struct KeySet {
    by_kid: HashMap<String, TrustedKey>,
    /// DER of every root certificate, for x5c chains.
    roots: Vec<Vec<u8>>,
}

/// libtrust's key id (what registry:2 and registry-web put in `kid`):
/// base32 of the first 240 bits of sha256(SPKI DER), in groups of four.
pub fn libtrust_kid(spki_der: &[u8]) -> String {
    let sum = Sha256::digest(spki_der);
    let b32 = base32_encode(&sum[..30]);
    b32.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(":")
}

fn base32_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0);
    for &b in data {
        buf = (buf << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buf >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// RFC 7638 thumbprint of an EC P-256 key given its coordinates.
pub fn ec_thumbprint(x: &[u8], y: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(x),
        URL_SAFE_NO_PAD.encode(y)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The verification key inside a certificate.
pub fn cert_key(cert: &X509Certificate<'_>) -> Result<TrustedKey, String> {
    let spki = cert.public_key();
    let raw = &spki.subject_public_key.data;
    let kind = match spki.parsed().map_err(|e| format!("unreadable public key: {e}"))? {
        PublicKey::RSA(_) => KeyKind::Rsa,
        PublicKey::EC(point) => match point.key_size() {
            256 => KeyKind::EcP256,
            384 => KeyKind::EcP384,
            n => return Err(format!("EC keys of {n} bits are not supported")),
        },
        _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => KeyKind::Ed25519,
        _ => return Err("unsupported public key type".into()),
    };
    let key = match kind {
        KeyKind::Rsa => DecodingKey::from_rsa_der(raw),
        KeyKind::EcP256 | KeyKind::EcP384 => DecodingKey::from_ec_der(raw),
        KeyKind::Ed25519 => DecodingKey::from_ed_der(raw),
    };
    Ok(TrustedKey { kind, key })
}

impl KeySet {
    /// Adds every certificate of a PEM bundle as a trusted root.
    pub fn add_root_bundle(&mut self, pem_text: &[u8]) -> Result<usize, String> {
        let mut n = 0;
        for pem in Pem::iter_from_buffer(pem_text) {
            let pem = pem.map_err(|e| format!("invalid PEM: {e}"))?;
            if pem.label != "CERTIFICATE" {
                continue;
            }
            let (_, cert) = parse_x509_certificate(&pem.contents).map_err(|e| format!("invalid certificate: {e}"))?;
            let key = cert_key(&cert)?;
            self.by_kid.insert(libtrust_kid(cert.public_key().raw), key.clone());
            if let Ok(PublicKey::EC(point)) = cert.public_key().parsed()
                && point.key_size() == 256
            {
                let d = point.data();
                if d.len() == 65 {
                    self.by_kid.insert(ec_thumbprint(&d[1..33], &d[33..]), key);
                }
            }
            self.roots.push(pem.contents.clone());
            n += 1;
        }
        if n == 0 {
            return Err("no certificates found".into());
        }
        Ok(n)
    }

    /// Adds every key of a JWK set under its `kid`.
    pub fn add_jwks(&mut self, json: &[u8]) -> Result<usize, String> {
        let set: JwkSet = serde_json::from_slice(json).map_err(|e| format!("invalid JWKS: {e}"))?;
        let mut n = 0;
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone().ok_or("every JWKS key needs a kid")?;
            let kind = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => KeyKind::Rsa,
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                    jsonwebtoken::jwk::EllipticCurve::P256 => KeyKind::EcP256,
                    jsonwebtoken::jwk::EllipticCurve::P384 => KeyKind::EcP384,
                    _ => return Err(format!("kid {kid}: unsupported curve")),
                },
                jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => KeyKind::Ed25519,
                _ => return Err(format!("kid {kid}: symmetric keys are not accepted")),
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("kid {kid}: {e}"))?;
            self.by_kid.insert(kid, TrustedKey { kind, key });
            n += 1;
        }
        Ok(n)
    }

    pub fn add(&mut self, kid: String, key: TrustedKey) {
        self.by_kid.insert(kid, key);
    }

    pub fn by_kid(&self, kid: &str) -> Option<&TrustedKey> {
        self.by_kid.get(kid)
    }

    /// Verifies an `x5c` chain (leaf first) against the root bundle and
    /// returns the leaf's key.
    pub fn verify_chain(&self, x5c: &[String]) -> Result<TrustedKey, String> {
        if self.roots.is_empty() {
            return Err("x5c chains need auth.token.rootcertbundle".into());
        }
        let ders: Vec<Vec<u8>> = x5c
            .iter()
            .map(|c| STANDARD.decode(c).map_err(|_| "x5c entry is not base64".to_string()))
            .collect::<Result<_, _>>()?;
        let certs: Vec<X509Certificate<'_>> = ders
            .iter()
            .map(|d| parse_x509_certificate(d).map(|(_, c)| c).map_err(|e| format!("x5c certificate: {e}")))
            .collect::<Result<_, _>>()?;
        let leaf = certs.first().ok_or("x5c is empty")?;
        for c in &certs {
            if !c.validity().is_valid() {
                return Err(format!("certificate {} is outside its validity period", c.subject()));
            }
        }
        for pair in certs.windows(2) {
            pair[0]
                .verify_signature(Some(pair[1].public_key()))
                .map_err(|_| format!("certificate {} is not signed by {}", pair[0].subject(), pair[1].subject()))?;
        }
        let last = certs.last().ok_or("x5c is empty")?;
        let anchored = self.roots.iter().any(|root| {
            root.as_slice() == last.as_ref()
                || parse_x509_certificate(root)
                    .map(|(_, r)| r.validity().is_valid() && last.verify_signature(Some(r.public_key())).is_ok())
                    .unwrap_or(false)
        });
        if !anchored {
            return Err("the x5c chain does not lead to a certificate in rootcertbundle".into());
        }
        cert_key(leaf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_encode(b"f"), "MY");
    }
}
