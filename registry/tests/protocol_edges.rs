//! Protocol edges (issue 12 §5-6): `_state` is required, an invalid
//! manifest reference is 404 on reads, an invalid blob range is 416, a
//! manifest's served media type does not change across a restart, and an
//! oversized manifest gets a 413 the client can read even while it is still
//! sending.

mod common;
mod inproc;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use axum::http::{Method, StatusCode};

use inproc::{OCI_INDEX, OCI_MANIFEST, Reg};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

fn path_of(location: &str) -> String {
    location.trim_start_matches("http://reg.test:5000").to_string()
}

#[tokio::test]
async fn an_invalid_reference_is_an_unknown_manifest_on_reads() {
    let reg = Reg::new();
    reg.push_image("r", "v1", "s").await;
    for reference in [".INVALID_MANIFEST_NAME", "-x", "bad:tag", "sha256:zz"] {
        for method in [Method::GET, Method::HEAD] {
            let r = reg.req(method.clone(), &format!("/v2/r/manifests/{reference}"), &[], vec![]).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {reference}");
            if method == Method::GET {
                assert_eq!(r.code(), "MANIFEST_UNKNOWN", "{reference}");
            }
        }
        // A PUT still says what is wrong with the reference.
        let r = reg.req(Method::PUT, &format!("/v2/r/manifests/{reference}"), &[], b"{}".to_vec()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "PUT {reference}");
    }
}

#[tokio::test]
async fn a_range_ending_before_it_starts_is_not_satisfiable() {
    let reg = Reg::new();
    let data = vec![7u8; 1000];
    let d = reg.push_blob("r", &data).await;
    // As distribution answers (and the conformance suite's `range 500-0`
    // expects): RFC 9110 lets a server reject an invalid range instead of
    // ignoring it.
    let r = reg.req(Method::GET, &format!("/v2/r/blobs/{d}"), &[("range", "bytes=500-0")], vec![]).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), "bytes */1000");
    let r = reg.req(Method::GET, &format!("/v2/r/blobs/{d}"), &[("range", "bytes=500-999")], vec![]).await;
    assert_eq!((r.status, r.body.len()), (StatusCode::PARTIAL_CONTENT, 500));
}

#[tokio::test]
async fn upload_sessions_require_their_state() {
    let reg = Reg::new();
    let r = reg.req(Method::POST, "/v2/r/blobs/uploads/", &[], vec![]).await;
    let with_state = path_of(r.header("location"));
    let bare = with_state.split('?').next().unwrap().to_string();
    let data = b"chunk".to_vec();
    let d = inproc::digest(&data);
    for (method, path, body) in [
        (Method::GET, bare.clone(), vec![]),
        (Method::PATCH, bare.clone(), data.clone()),
        (Method::PUT, format!("{bare}?digest={d}"), data.clone()),
        (Method::DELETE, bare.clone(), vec![]),
    ] {
        let r = reg.req(method.clone(), &path, &[], body).await;
        assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID"), "{method}");
        assert!(String::from_utf8_lossy(&r.body).contains("_state"), "{method}: the message names _state");
    }
    // Nothing was written by the refused requests; the session works with its state.
    let r = reg.get(&with_state).await;
    assert_eq!((r.status, r.header("range")), (StatusCode::NO_CONTENT, "0-0"));
    let r = reg.req(Method::PATCH, &with_state, &[], data.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = reg.req(Method::PUT, &format!("{}&digest={d}", path_of(r.header("location"))), &[], vec![]).await;
    assert_eq!(r.status, StatusCode::CREATED);
}

/// A second registry over the same storage root, with fresh process state:
/// what a restart sees.
fn restarted(reg: &Reg) -> Reg {
    let yaml = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}/data\n  delete:\n    enabled: true\nhttp:\n  secret: test\n",
        reg.dir.path().display()
    );
    let config = wharf_registry::config::Config::from_yaml(&yaml, std::iter::empty()).unwrap();
    Reg { router: wharf_registry::build(&config).unwrap().router, dir: tempfile::tempdir().unwrap() }
}

#[tokio::test]
async fn a_manifest_is_served_as_the_same_type_after_a_restart() {
    let reg = Reg::new();
    let cfg = reg.push_blob("r", b"{}").await;
    let layer = reg.push_blob("r", b"layer").await;
    let image = |mt: Option<&str>| {
        let mut m = serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 5}],
        });
        if let Some(mt) = mt {
            m["mediaType"] = serde_json::json!(mt);
        }
        serde_json::to_vec(&m).unwrap()
    };
    let index = br#"{"schemaVersion":2,"manifests":[]}"#.to_vec();
    // (body, Content-Type, expected: the type served, or None for a refusal)
    let cases: Vec<(Vec<u8>, Option<&str>, Option<&str>)> = vec![
        (image(None), Some(OCI_MANIFEST), Some(OCI_MANIFEST)),
        (image(None), None, Some(OCI_MANIFEST)),
        (image(None), Some("application/json"), Some(OCI_MANIFEST)),
        (image(Some(DOCKER_MANIFEST)), Some(DOCKER_MANIFEST), Some(DOCKER_MANIFEST)),
        (image(Some(DOCKER_MANIFEST)), None, Some(DOCKER_MANIFEST)),
        (index.clone(), Some(OCI_INDEX), Some(OCI_INDEX)),
        // No mediaType in the body: a Docker type cannot come from the header
        // alone, or the type would change when read back (registry:2 refuses
        // these too).
        (image(None), Some(DOCKER_MANIFEST), None),
        (index.clone(), Some(DOCKER_LIST), None),
        (index, Some(OCI_MANIFEST), None),
    ];
    let mut served = Vec::new();
    for (i, (body, content_type, want)) in cases.iter().enumerate() {
        let headers: Vec<(&str, &str)> = content_type.iter().map(|c| ("content-type", *c)).collect();
        let r = reg.req(Method::PUT, &format!("/v2/r/manifests/t{i}"), &headers, body.clone()).await;
        let got = reg.get(&format!("/v2/r/manifests/t{i}")).await;
        match want {
            Some(want) => {
                assert_eq!(r.status, StatusCode::CREATED, "case {i}: {}", String::from_utf8_lossy(&r.body));
                assert_eq!(got.header("content-type"), *want, "case {i} before the restart");
                served.push((i, want));
            }
            None => {
                assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"), "case {i}");
                assert!(String::from_utf8_lossy(&r.body).contains("mediaType"), "case {i}: the message says why");
                assert_eq!(got.status, StatusCode::NOT_FOUND, "case {i}: nothing stored");
            }
        }
    }
    let after = restarted(&reg);
    for (i, want) in served {
        let got = after.get(&format!("/v2/r/manifests/t{i}")).await;
        assert_eq!(got.header("content-type"), *want, "case {i} after the restart");
    }
}

// ---------------------------------------------------------------- oversized manifests, on a real socket

const LIMIT: usize = 4 * 1024 * 1024;

/// Reads one HTTP response (head and a Content-Length body) from `s`.
fn read_response(s: &mut TcpStream) -> Result<(u16, String, String), String> {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..at]).to_string();
            let len = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= at + 4 + len {
                let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
                let body = String::from_utf8_lossy(&buf[at + 4..at + 4 + len]).to_string();
                return Ok((status, head, body));
            }
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err(format!("connection closed after {} bytes of response", buf.len())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("reading the response after {} bytes: {e}", buf.len())),
        }
    }
}

fn connect(reg: &common::RegistryProcess) -> TcpStream {
    let s = TcpStream::connect(&reg.addr).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

fn assert_readable_413(what: &str, got: Result<(u16, String, String), String>) {
    let (status, head, body) = got.unwrap_or_else(|e| panic!("{what}: no response the client can read: {e}"));
    assert_eq!(status, 413, "{what}: {head}\n{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
    assert_eq!(v["errors"][0]["code"], "SIZE_INVALID", "{what}: {body}");
    let msg = v["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("4 MiB") && msg.contains(&LIMIT.to_string()), "{what}: the message names the limit: {msg}");
}

#[test]
fn an_oversized_manifest_gets_a_413_the_client_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let reg = common::RegistryProcess::start(common::Kind::Wharf, &common::minimal_config(&dir.path().join("data")));
    let size = LIMIT + LIMIT / 4;
    let body = vec![b' '; size];
    let head = |extra: &str| {
        format!("PUT /v2/r/manifests/big HTTP/1.1\r\nHost: {}\r\nContent-Type: {OCI_MANIFEST}\r\n{extra}\r\n", reg.addr)
    };

    // 1. Content-Length over the limit; the client writes it all, then reads.
    let mut s = connect(&reg);
    let sent = s.write_all(head(&format!("Content-Length: {size}\r\n")).as_bytes()).and_then(|()| s.write_all(&body));
    assert!(sent.is_ok(), "the server stopped reading while the client was sending: {sent:?}");
    assert_readable_413("Content-Length", read_response(&mut s));
    // The connection is still usable: the body was read to its end.
    s.write_all(format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\n\r\n", reg.addr).as_bytes()).unwrap();
    assert_eq!(read_response(&mut s).map(|r| r.0), Ok(200));

    // 2. Chunked, no length up front.
    let mut s = connect(&reg);
    let mut wire = head("Transfer-Encoding: chunked\r\n").into_bytes();
    for part in body.chunks(64 * 1024) {
        wire.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        wire.extend_from_slice(part);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    let sent = s.write_all(&wire);
    assert!(sent.is_ok(), "chunked: the server stopped reading while the client was sending: {sent:?}");
    assert_readable_413("chunked", read_response(&mut s));

    // 3. A client that waits for 100 Continue gets the 413 instead, and sends nothing.
    let mut s = connect(&reg);
    s.write_all(head(&format!("Content-Length: {size}\r\nExpect: 100-continue\r\n")).as_bytes()).unwrap();
    assert_readable_413("Expect: 100-continue", read_response(&mut s));

    // 4. A length past what the registry reads and discards: answered at once.
    let mut s = connect(&reg);
    s.write_all(head("Content-Length: 1099511627776\r\n").as_bytes()).unwrap();
    let got = read_response(&mut s);
    assert!(got.as_ref().is_ok_and(|(_, h, _)| h.to_ascii_lowercase().contains("connection: close")), "{got:?}");
    assert_readable_413("1 TiB Content-Length", got);

    // Nothing was stored, and the registry still answers.
    let r = common::http().get(reg.url("/v2/r/manifests/big")).send().unwrap();
    assert_eq!(r.status().as_u16(), 404);
}
