//! The operator's certificate authority and the serving certificates it
//! issues. Pure: PEM in, PEM out, the clock passed in; the reconcile keeps
//! them in Secrets.
//!
//! One CA per cluster: nodes and Pods trust one PEM, whatever the number of
//! registries. Keys are ECDSA P-256, which every client in the field speaks.

use std::collections::BTreeSet;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use time::OffsetDateTime;

/// Why a certificate could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// rcgen refused the parameters or a PEM.
    #[error("{what}: {source}")]
    Rcgen {
        /// What was being done.
        what: &'static str,
        /// Cause.
        #[source]
        source: rcgen::Error,
    },
    /// A stored certificate is not PEM X.509.
    #[error("not a PEM certificate: {0}")]
    Parse(String),
}

fn rcgen_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> Error {
    move |source| Error::Rcgen { what, source }
}

/// A certificate and its private key, PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pem {
    /// The certificate.
    pub cert: String,
    /// The PKCS#8 private key.
    pub key: String,
}

/// The CA: its certificate and key, and an issuer made from them.
pub struct Ca {
    pem: Pem,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("cert", &self.pem.cert).finish_non_exhaustive()
    }
}

impl Ca {
    /// A new self-signed CA valid from a minute before `now` (clock skew) for `lifetime`.
    pub fn generate(common_name: &str, now: OffsetDateTime, lifetime: Duration) -> Result<Ca, Error> {
        let key = KeyPair::generate().map_err(rcgen_err("generating the CA key"))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_err("CA parameters"))?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.distinguished_name.push(DnType::OrganizationName, "wharf");
        // Path length 0: this CA signs serving certificates, never another CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        (params.not_before, params.not_after) = validity(now, lifetime);
        let cert = params.self_signed(&key).map_err(rcgen_err("signing the CA"))?;
        let pem = Pem { cert: cert.pem(), key: key.serialize_pem() };
        Ca::from_pem(pem)
    }

    /// The CA kept in a Secret.
    pub fn from_pem(pem: Pem) -> Result<Ca, Error> {
        let key = KeyPair::from_pem(&pem.key).map_err(rcgen_err("reading the CA key"))?;
        let issuer = Issuer::from_ca_cert_pem(&pem.cert, key).map_err(rcgen_err("reading the CA certificate"))?;
        Ok(Ca { pem, issuer })
    }

    /// The certificate and key, for the Secret.
    pub fn pem(&self) -> &Pem {
        &self.pem
    }

    /// The certificate clients trust.
    pub fn cert_pem(&self) -> &str {
        &self.pem.cert
    }

    /// A serving certificate for `dns_names` (the first is the subject's
    /// common name), with a fresh key.
    pub fn issue(&self, dns_names: &[String], now: OffsetDateTime, lifetime: Duration) -> Result<Pem, Error> {
        let key = KeyPair::generate().map_err(rcgen_err("generating a serving key"))?;
        let mut params = CertificateParams::new(dns_names.to_vec()).map_err(rcgen_err("serving certificate names"))?;
        if let Some(first) = dns_names.first() {
            params.distinguished_name.push(DnType::CommonName, first.as_str());
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        (params.not_before, params.not_after) = validity(now, lifetime);
        let cert = params.signed_by(&key, &self.issuer).map_err(rcgen_err("signing a serving certificate"))?;
        Ok(Pem { cert: cert.pem(), key: key.serialize_pem() })
    }
}

fn validity(now: OffsetDateTime, lifetime: Duration) -> (OffsetDateTime, OffsetDateTime) {
    let skew = time::Duration::minutes(1);
    (now - skew, now + time::Duration::seconds(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2)))
}

/// What the reconcile needs to know of a stored certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// Unix seconds after which it is no longer valid.
    pub not_after: i64,
    /// Unix seconds from which it is valid.
    pub not_before: i64,
    /// Its DNS subject alternative names.
    pub dns_names: BTreeSet<String>,
}

/// Reads the first certificate of a PEM text.
pub fn facts(cert_pem: &str) -> Result<Facts, Error> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).map_err(|e| Error::Parse(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| Error::Parse(e.to_string()))?;
    let mut dns_names = BTreeSet::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(n) = name {
                dns_names.insert((*n).to_string());
            }
        }
    }
    let validity = cert.validity();
    Ok(Facts { not_after: validity.not_after.timestamp(), not_before: validity.not_before.timestamp(), dns_names })
}

/// Why a serving certificate is issued again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reissue {
    /// There is none, or it cannot be read.
    Missing,
    /// Its names are not the ones wanted (the Service or Ingress host changed).
    Names,
    /// Another CA signed it (the CA was replaced).
    OtherCa,
    /// It is within `renew_before` of its end.
    Expiring,
}

impl Reissue {
    /// For the log and the Event.
    pub fn as_str(self) -> &'static str {
        match self {
            Reissue::Missing => "missing",
            Reissue::Names => "names changed",
            Reissue::OtherCa => "CA changed",
            Reissue::Expiring => "expiring",
        }
    }
}

/// A stored serving certificate: its PEM and the CA PEM stored with it.
pub struct Stored<'a> {
    /// `tls.crt`.
    pub cert_pem: &'a str,
    /// `ca.crt`.
    pub ca_pem: &'a str,
}

/// Whether a stored certificate must be issued again, and if not, in how many
/// seconds it must be (its renewal time).
pub fn check(
    stored: Option<Stored<'_>>,
    wanted: &[String],
    ca_pem: &str,
    now: i64,
    renew_before: Duration,
) -> Result<i64, Reissue> {
    let stored = stored.ok_or(Reissue::Missing)?;
    let facts = facts(stored.cert_pem).map_err(|_| Reissue::Missing)?;
    if facts.dns_names != wanted.iter().cloned().collect::<BTreeSet<_>>() {
        return Err(Reissue::Names);
    }
    if stored.ca_pem.trim() != ca_pem.trim() {
        return Err(Reissue::OtherCa);
    }
    let renew_at = facts.not_after - i64::try_from(renew_before.as_secs()).unwrap_or(i64::MAX / 2);
    if now >= renew_at {
        return Err(Reissue::Expiring);
    }
    Ok(renew_at - now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    #[test]
    fn a_ca_survives_its_secret_and_signs_what_it_says() {
        let ca = Ca::generate("wharf test CA", now(), Duration::from_secs(86400)).unwrap();
        let again = Ca::from_pem(ca.pem().clone()).unwrap();
        let names = vec!["reg.team-a.svc.cluster.local".to_string(), "reg.team-a.svc".to_string()];
        let leaf = again.issue(&names, now(), Duration::from_secs(3600)).unwrap();
        let f = facts(&leaf.cert).unwrap();
        assert_eq!(f.dns_names, names.iter().cloned().collect());
        assert_eq!(f.not_after, 1_800_000_000 + 3600);
        assert_eq!(f.not_before, 1_800_000_000 - 60);

        let (_, leaf_pem) = x509_parser::pem::parse_x509_pem(leaf.cert.as_bytes()).unwrap();
        let (_, ca_pem) = x509_parser::pem::parse_x509_pem(ca.cert_pem().as_bytes()).unwrap();
        let (leaf_x, ca_x) = (leaf_pem.parse_x509().unwrap(), ca_pem.parse_x509().unwrap());
        assert_eq!(leaf_x.issuer(), ca_x.subject());
        assert!(ca_x.is_ca());
        assert!(!leaf_x.is_ca());
    }

    #[test]
    fn reissue_when_missing_renamed_resigned_or_expiring() {
        let ca = Ca::generate("wharf test CA", now(), Duration::from_secs(86400)).unwrap();
        let other = Ca::generate("another CA", now(), Duration::from_secs(86400)).unwrap();
        let names = vec!["reg.team-a.svc.cluster.local".to_string()];
        let leaf = ca.issue(&names, now(), Duration::from_secs(3600)).unwrap();
        let t = 1_800_000_000;
        let stored = || Some(Stored { cert_pem: &leaf.cert, ca_pem: ca.cert_pem() });
        let renew = Duration::from_secs(600);
        assert_eq!(check(None, &names, ca.cert_pem(), t, renew), Err(Reissue::Missing));
        let garbage = Some(Stored { cert_pem: "junk", ca_pem: ca.cert_pem() });
        assert_eq!(check(garbage, &names, ca.cert_pem(), t, renew), Err(Reissue::Missing));
        assert_eq!(check(stored(), &["x.example".into()], ca.cert_pem(), t, renew), Err(Reissue::Names));
        assert_eq!(check(stored(), &names, other.cert_pem(), t, renew), Err(Reissue::OtherCa));
        assert_eq!(check(stored(), &names, ca.cert_pem(), t, renew), Ok(3000));
        assert_eq!(check(stored(), &names, ca.cert_pem(), t + 3000, renew), Err(Reissue::Expiring));
    }
}
