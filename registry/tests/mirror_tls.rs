//! A mirror speaks TLS to its upstream with verification on: an upstream
//! whose certificate a private CA signed is refused until that upstream's
//! `cafile` names the CA, and then pulls through whole. Nothing is ever
//! accepted unverified.

mod common;
mod mirror_support;

use common::*;
use mirror_support::{image, wharf};
use wharf_registry::config::Config;
use wharf_registry::server::{self, Limits};

/// A wharf registry serving HTTPS with `dir/up.pem` on 127.0.0.1, in this
/// process; returns its port. It runs until the test process exits.
fn tls_upstream(dir: &std::path::Path) -> u16 {
    let yaml = format!("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}/up-data\n", dir.display());
    let app = wharf_registry::build(&Config::from_yaml(&yaml, std::iter::empty()).unwrap()).unwrap();
    let (cert, key) = (dir.join("up.pem"), dir.join("up.key"));
    let tls = server::tls_config(cert.to_str().unwrap(), key.to_str().unwrap()).unwrap();
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let port = std_listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let limits = Limits { tls: Some(tls), ..Limits::default() };
            server::serve(listener, app.router, limits, std::future::pending()).await
        })
        .unwrap();
    });
    port
}

#[test]
fn an_upstream_signed_by_a_private_ca_is_trusted_only_through_its_cafile() {
    let dir = tempfile::Builder::new().prefix("wharf-mirror-tls.").tempdir().unwrap();
    common::tls::make_certs(dir.path(), &["up"], "IP:127.0.0.1");
    let port = tls_upstream(dir.path());
    let upstream = format!("https://127.0.0.1:{port}");
    let ca = dir.path().join("ca.pem");

    // An image on the upstream, pushed over verified TLS.
    let client = reqwest::blocking::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let (blobs, manifest) = image(71, 64 << 10);
    for b in &blobs {
        let r = client
            .post(format!("{upstream}/v2/team/app/blobs/uploads/?digest={}", b.digest))
            .body(b.bytes.clone())
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
    let r = client
        .put(format!("{upstream}/v2/team/app/manifests/v1"))
        .header("content-type", MT_MANIFEST)
        .body(manifest.bytes.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);

    // Without the CA: the upstream's certificate is not trusted, nothing is served.
    let proxy =
        |cafile: &str| format!("proxy:\n  upstreams:\n    - name: upstream.test\n      url: {upstream}\n{cafile}");
    let (untrusting, _) = wharf(&dir.path().join("m1"), &proxy(""), 200);
    let r = http()
        .get(untrusting.url("/v2/upstream.test/team/app/manifests/v1"))
        .header("accept", MT_MANIFEST)
        .send()
        .unwrap();
    assert!(r.status().is_server_error(), "served from an unverified upstream: {}", r.status());
    let log = untrusting.log.text();
    assert!(log.to_ascii_lowercase().contains("certificate"), "the log does not say why:\n{log}");

    // With the upstream's cafile: verified, and the image pulls whole.
    let cafile = format!("      cafile: {}\n", ca.display());
    let (mirror, _) = wharf(&dir.path().join("m2"), &proxy(&cafile), 200);
    let r =
        http().get(mirror.url("/v2/upstream.test/team/app/manifests/v1")).header("accept", MT_MANIFEST).send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", mirror.log.text());
    assert_eq!(r.bytes().unwrap().to_vec(), manifest.bytes);
    for b in &blobs {
        let r = http().get(mirror.url(&format!("/v2/upstream.test/team/app/blobs/{}", b.digest))).send().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(sha256_digest(&r.bytes().unwrap()), b.digest);
    }
}

/// A cafile that holds no certificate is refused at start, by its key.
#[test]
fn a_cafile_without_a_certificate_is_refused_at_start() {
    let dir = tempfile::Builder::new().prefix("wharf-mirror-tls.").tempdir().unwrap();
    let bad = dir.path().join("empty.pem");
    std::fs::write(&bad, "not a certificate\n").unwrap();
    let config = format!(
        "{}proxy:\n  upstreams:\n    - name: upstream.test\n      url: https://127.0.0.1:9\n      cafile: {}\n",
        minimal_config(&dir.path().join("data")),
        bad.display()
    );
    let cfg = dir.path().join("config.yml");
    std::fs::write(&cfg, config).unwrap();
    let out = run(
        std::process::Command::new(Kind::Wharf.binary()).arg("serve").arg(&cfg),
        std::time::Duration::from_secs(30),
    );
    assert!(!out.ok(), "started with a CA file holding no certificate");
    assert!(out.stderr.contains("holds no PEM certificate"), "{}", out.describe());
}
