//! The serving certificate follows its files: replaced on disk (as a
//! Kubernetes Secret volume or cert-manager replaces it), new connections
//! get the new one without a restart, and a pull in flight across the swap
//! finishes whole on the connection it started on.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use wharf_registry::config::Config;
use wharf_registry::server::{self, Limits};

use common::tls::make_certs;

fn der(pem_path: &Path) -> CertificateDer<'static> {
    let mut reader = std::io::BufReader::new(std::fs::File::open(pem_path).unwrap());
    rustls_pemfile::certs(&mut reader).next().unwrap().unwrap()
}

/// Replaces `to` by `from` in one rename, as a Secret volume's swap does.
/// A client that trusts `ca` and finds `reg.test` at `addr`; with `h2_only`
/// it offers only h2 by ALPN (and speaks h2c in the clear).
fn client(ca: &Path, addr: std::net::SocketAddr, h2_only: bool) -> reqwest::Client {
    let b = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap())
        .resolve("reg.test", addr);
    if h2_only { b.http2_prior_knowledge() } else { b }.build().unwrap()
}

fn swap_in(from: &Path, to: &Path) {
    let tmp = to.with_extension("new");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

async fn connect(addr: std::net::SocketAddr, ca: &Path) -> TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    roots.add(der(ca)).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(tokio_rustls::rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(Arc::new(config)).connect(ServerName::try_from("reg.test").unwrap(), tcp).await.unwrap()
}

fn peer(conn: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    conn.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned()
}

/// Reads one HTTP/1.1 response head; returns it and whatever body bytes came with it.
async fn read_head(conn: &mut TlsStream<TcpStream>) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed before a response head");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            return (head, buf[end + 4..].to_vec());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_is_served_to_new_connections_while_a_pull_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path(), &["a", "b"], "DNS:reg.test");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    swap_in(&dir.path().join("a.pem"), &cert);
    swap_in(&dir.path().join("a.key"), &key);
    let ca = dir.path().join("ca.pem");

    let yaml = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}/data\nhttp:\n  secret: test\n",
        dir.path().display()
    );
    let app = wharf_registry::build(&Config::from_yaml(&yaml, std::iter::empty()).unwrap()).unwrap();
    let tls = server::tls_config(cert.to_str().unwrap(), key.to_str().unwrap()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = Limits { tls: Some(tls), ..Limits::default() };
    tokio::spawn(server::serve(listener, app.router, limits, std::future::pending()));

    // A 32 MiB blob to pull.
    let blob: Vec<u8> = (0..32u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&blob)));
    let mut conn = connect(addr, &ca).await;
    assert_eq!(peer(&conn), der(&dir.path().join("a.pem")), "served the first certificate");
    let head = format!(
        "POST /v2/tls/app/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: reg.test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        blob.len()
    );
    // Bounded: a stall fails here with its step named, instead of hanging the suite.
    let push = async {
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(&blob).await.unwrap();
        read_head(&mut conn).await
    };
    let (status, _) = tokio::time::timeout(Duration::from_secs(60), push).await.expect("the push stalled");
    assert!(status.starts_with("HTTP/1.1 201"), "{status}");

    // A pull starts on the first certificate and reads only its first bytes.
    let mut pull = connect(addr, &ca).await;
    let get = format!("GET /v2/tls/app/blobs/{digest} HTTP/1.1\r\nHost: reg.test\r\nConnection: close\r\n\r\n");
    pull.write_all(get.as_bytes()).await.unwrap();
    let (status, mut body) = tokio::time::timeout(Duration::from_secs(30), read_head(&mut pull))
        .await
        .expect("no response head for the pull");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

    // The files are replaced; new connections get the new certificate.
    swap_in(&dir.path().join("b.pem"), &cert);
    swap_in(&dir.path().join("b.key"), &key);
    let want = der(&dir.path().join("b.pem"));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let fresh =
            tokio::time::timeout(Duration::from_secs(10), connect(addr, &ca)).await.expect("a TLS handshake stalled");
        if peer(&fresh) == want {
            break;
        }
        assert!(Instant::now() < deadline, "new connections still get the old certificate");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The pull that spans the swap finishes, whole, on its first certificate.
    assert_eq!(peer(&pull), der(&dir.path().join("a.pem")));
    tokio::time::timeout(Duration::from_secs(60), pull.read_to_end(&mut body))
        .await
        .expect("the pull across the swap stalled")
        .unwrap();
    assert_eq!(body.len(), blob.len());
    assert_eq!(format!("sha256:{}", hex::encode(Sha256::digest(&body))), digest, "the pull across the swap is corrupt");
}

/// A pair that does not load (the key replaced by one that does not match
/// the certificate, as in the moment between two file writes) is not used:
/// the previous certificate keeps being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mismatched_pair_keeps_the_previous_certificate() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path(), &["a", "b"], "DNS:reg.test");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    swap_in(&dir.path().join("a.pem"), &cert);
    swap_in(&dir.path().join("a.key"), &key);
    let tls = server::tls_config(cert.to_str().unwrap(), key.to_str().unwrap()).unwrap();
    let yaml = format!("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}/data\n", dir.path().display());
    let app = wharf_registry::build(&Config::from_yaml(&yaml, std::iter::empty()).unwrap()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::serve(
        listener,
        app.router,
        Limits { tls: Some(tls), ..Limits::default() },
        std::future::pending(),
    ));
    let ca = dir.path().join("ca.pem");

    swap_in(&dir.path().join("b.key"), &key);
    // Well past a look at the files: every connection still gets a whole, matching pair.
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        assert_eq!(peer(&connect(addr, &ca).await), der(&dir.path().join("a.pem")));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The certificate catches up: the new pair is served.
    swap_in(&dir.path().join("b.pem"), &cert);
    let deadline = Instant::now() + Duration::from_secs(15);
    while peer(&connect(addr, &ca).await) != der(&dir.path().join("b.pem")) {
        assert!(Instant::now() < deadline, "the matching pair was never served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The server's cipher order wins (AES-128-GCM, cheaper per byte, even when
/// the client lists AES-256 first), so does its ALPN order (HTTP/1.1 for a
/// client that offers both), and a large HTTP/2 pull over TLS, whose frames
/// go through the write buffer below rustls, arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_picks_aes_128_and_http1_and_an_h2_pull_arrives_whole() {
    use tokio_rustls::rustls::CipherSuite;
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path(), &["a"], "DNS:reg.test");
    let (cert, key, ca) = (dir.path().join("a.pem"), dir.path().join("a.key"), dir.path().join("ca.pem"));
    let tls = server::tls_config(cert.to_str().unwrap(), key.to_str().unwrap()).unwrap();
    let yaml = format!("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}/data\n", dir.path().display());
    let app = wharf_registry::build(&Config::from_yaml(&yaml, std::iter::empty()).unwrap()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::serve(
        listener,
        app.router,
        Limits { tls: Some(tls), ..Limits::default() },
        std::future::pending(),
    ));

    // A client that prefers AES-256.
    let mut provider = tokio_rustls::rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|s| s.suite() != CipherSuite::TLS13_AES_256_GCM_SHA384);
    let mut roots = RootCertStore::empty();
    roots.add(der(&ca)).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let conn =
        TlsConnector::from(Arc::new(config)).connect(ServerName::try_from("reg.test").unwrap(), tcp).await.unwrap();
    let suite = conn.get_ref().1.negotiated_cipher_suite().map(|s| s.suite());
    assert_eq!(suite, Some(CipherSuite::TLS13_AES_128_GCM_SHA256));

    // A client that offers h2 and HTTP/1.1 gets HTTP/1.1.
    wharf_registry::install_crypto_provider();
    let base = format!("https://reg.test:{}", addr.port());
    let both = client(&ca, addr, false).get(format!("{base}/v2/")).send().await.unwrap();
    assert_eq!((both.status().as_u16(), both.version()), (200, reqwest::Version::HTTP_11));

    // A 24 MiB blob pushed and pulled over HTTP/2, by a client that offers only h2.
    let client = client(&ca, addr, true);
    let blob: Vec<u8> = (0..24u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&blob)));
    let put = client.post(format!("{base}/v2/tls/h2/blobs/uploads/?digest={digest}")).body(blob.clone()).send();
    let put = put.await.unwrap();
    assert_eq!(put.status().as_u16(), 201);
    assert_eq!(put.version(), reqwest::Version::HTTP_2, "ALPN did not pick h2");
    let got = client.get(format!("{base}/v2/tls/h2/blobs/{digest}")).send().await.unwrap();
    assert_eq!((got.status().as_u16(), got.version()), (200, reqwest::Version::HTTP_2));
    let body = tokio::time::timeout(Duration::from_secs(60), got.bytes()).await.expect("the h2 pull stalled").unwrap();
    assert_eq!(body.len(), blob.len());
    assert_eq!(format!("sha256:{}", hex::encode(Sha256::digest(&body))), digest);
}

/// `http.http2.disabled: true` (registry:2's key): HTTP/1.1 only, over TLS
/// (no h2 by ALPN) and in the clear (no h2c by prior knowledge).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_disabled_serves_http1_only() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path(), &["a"], "DNS:reg.test");
    let (cert, key, ca) = (dir.path().join("a.pem"), dir.path().join("a.key"), dir.path().join("ca.pem"));
    let yaml = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}/data\nhttp:\n  http2:\n    disabled: true\n",
        dir.path().display()
    );
    let config = Config::from_yaml(&yaml, std::iter::empty()).unwrap();
    let limits = Limits::from_config(&config.http);
    assert!(!limits.http2);
    wharf_registry::install_crypto_provider();
    let mut addrs = Vec::new();
    for tls in [Some(server::tls_config(cert.to_str().unwrap(), key.to_str().unwrap()).unwrap()), None] {
        let app = wharf_registry::build(&config).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(listener.local_addr().unwrap());
        let limits = Limits { tls, ..limits.clone() };
        tokio::spawn(server::serve(listener, app.router, limits, std::future::pending()));
    }
    let (tls, plain) = (addrs[0], addrs[1]);
    for (scheme, addr) in [("https", tls), ("http", plain)] {
        let url = format!("{scheme}://reg.test:{}/v2/", addr.port());
        let ok = client(&ca, addr, false).get(&url).send().await.unwrap();
        assert_eq!((ok.status().as_u16(), ok.version()), (200, reqwest::Version::HTTP_11), "{url}");
        let h2 = client(&ca, addr, true).get(&url).send().await;
        assert!(h2.is_err(), "{url}: HTTP/2 was served: {h2:?}");
    }
}
