//! The serving certificate, read from `http.tls.certificate` and `.key` and
//! read again when the files change: a Kubernetes Secret volume (or
//! cert-manager) swaps them in place, and the registry keeps serving with
//! no restart. Connections already open keep the certificate they shook
//! hands with; new ones get the new one.
//!
//! The files are looked at, at most once a second, when a client says
//! hello. A pair that does not load (a key that no longer matches while the
//! two files are being replaced) is not used: the previous one stays until
//! a later look finds a good pair.

use std::io;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

/// ring's suites with AES-128-GCM first, as Go's servers prefer it: as safe
/// for a registry's traffic, and cheaper per byte than AES-256 on every pull.
fn server_provider() -> CryptoProvider {
    let mut provider = tokio_rustls::rustls::crypto::ring::default_provider();
    let rank = |s: &tokio_rustls::rustls::SupportedCipherSuite| {
        use tokio_rustls::rustls::CipherSuite as C;
        match s.suite() {
            C::TLS13_AES_128_GCM_SHA256 => 0,
            C::TLS13_AES_256_GCM_SHA384 => 1,
            C::TLS13_CHACHA20_POLY1305_SHA256 => 2,
            C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 | C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 3,
            _ => 4,
        }
    };
    provider.cipher_suites.sort_by_key(rank);
    provider
}

/// How often the files may be looked at.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// What identifies one version of a file: a swap changes at least one.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &str) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    // `metadata` follows symlinks, as a Secret volume's `..data` swap needs.
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// The certificate and key at two paths, reloaded when they change.
#[derive(Debug)]
pub struct CertificateFiles {
    cert_path: String,
    key_path: String,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// When the files were last looked at, and what they were then.
    seen: Mutex<(Instant, Stamp, Stamp)>,
}

impl CertificateFiles {
    /// Loads the pair; an error names the file that is wrong.
    pub fn load(cert_path: &str, key_path: &str) -> anyhow::Result<Arc<Self>> {
        let provider = Arc::new(server_provider());
        let stamps = (stamp(cert_path), stamp(key_path));
        let key = certified_key(&provider, cert_path, key_path)?;
        Ok(Arc::new(CertificateFiles {
            cert_path: cert_path.to_string(),
            key_path: key_path.to_string(),
            provider,
            current: RwLock::new(Arc::new(key)),
            seen: Mutex::new((Instant::now(), stamps.0, stamps.1)),
        }))
    }

    /// A rustls server config that serves whatever the files hold now.
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<Arc<ServerConfig>> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        // Our order, not the client's: curl and others put AES-256 first.
        config.ignore_client_order = true;
        Ok(Arc::new(config))
    }

    /// Reloads the pair if either file changed since the last look.
    fn refresh(&self) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.0.elapsed() < LOOK_EVERY {
            return;
        }
        seen.0 = Instant::now();
        let stamps = (stamp(&self.cert_path), stamp(&self.key_path));
        if (stamps.0, stamps.1) == (seen.1, seen.2) {
            return;
        }
        match certified_key(&self.provider, &self.cert_path, &self.key_path) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
                (seen.1, seen.2) = stamps;
                tracing::info!(certificate = %self.cert_path, "reloaded the TLS certificate");
            }
            // Stamps stay old, so the next look tries again.
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "the changed TLS files do not load; serving the previous certificate"
            ),
        }
    }
}

impl ResolvesServerCert for CertificateFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.refresh();
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

fn certified_key(provider: &CryptoProvider, cert_path: &str, key_path: &str) -> anyhow::Result<CertifiedKey> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut io::BufReader::new(
        std::fs::File::open(cert_path).with_context(|| format!("opening http.tls.certificate {cert_path}"))?,
    ))
    .collect::<Result<_, _>>()
    .with_context(|| format!("parsing certificates in {cert_path}"))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate found in {cert_path}");
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut io::BufReader::new(
        std::fs::File::open(key_path).with_context(|| format!("opening http.tls.key {key_path}"))?,
    ))
    .with_context(|| format!("parsing private key in {key_path}"))?
    .with_context(|| format!("no private key found in {key_path}"))?;
    let signing =
        provider.key_provider.load_private_key(key).with_context(|| format!("the key in {key_path} is not usable"))?;
    let certified = CertifiedKey::new(certs, signing);
    certified
        .keys_match()
        .with_context(|| format!("the certificate in {cert_path} does not match the key in {key_path}"))?;
    Ok(certified)
}
