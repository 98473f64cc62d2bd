//! For the notification tests: an HTTP receiver on loopback that records
//! what it is sent, and pushes of tiny images with the test's own client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Blob, MT_MANIFEST, http, sha256_digest};

pub const MT_EVENTS: &str = "application/vnd.docker.distribution.events.v2+json";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

type Log = Arc<(Mutex<Vec<Received>>, Condvar)>;

/// An HTTP/1.1 server answering every POST with 200, recording it.
pub struct Receiver {
    pub port: u16,
    log: Log,
    stop: Arc<AtomicBool>,
}

/// A loopback port nothing listens on (yet): a receiver that is down.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Receiver {
    /// Listens on `port` (0: any free one).
    pub fn start(port: u16) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| panic!("receiver on {port}: {e}"));
        let port = listener.local_addr().unwrap().port();
        let log: Log = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (l, s) = (l.clone(), s.clone());
                std::thread::spawn(move || serve(conn, l, s));
            }
        });
        Receiver { port, log, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/events", self.port)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.log.0.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the events received so far (every
    /// request's events, in arrival order); panics with them past `timeout`.
    pub fn wait_events(&self, timeout: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.log;
        let mut reqs = lock.lock().unwrap();
        loop {
            let events = events_of(&reqs);
            if done(&events) {
                return events;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "receiver: not there within {timeout:?}; got {} events:\n{events:#?}",
                events.len()
            );
            reqs = cv.wait_timeout(reqs, left).unwrap().0;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The events in requests: registry:2 envelopes are unpacked, a CloudEvent
/// is one event as it came.
pub fn events_of(reqs: &[Received]) -> Vec<Value> {
    let mut out = Vec::new();
    for r in reqs {
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        match v.get("events").and_then(Value::as_array) {
            Some(list) => out.extend(list.iter().cloned()),
            None => out.push(v),
        }
    }
    out
}

fn serve(conn: TcpStream, log: Log, stop: Arc<AtomicBool>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    while !stop.load(Ordering::SeqCst) {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        {
            let (lock, cv) = &*log;
            lock.lock().unwrap().push(Received { path, headers, body });
            cv.notify_all();
        }
        if writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_err() {
            return;
        }
    }
}

/// A one-layer image pushed by the test's own client.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub repo: String,
    pub tag: String,
    pub config: Blob,
    pub layer: Blob,
    pub manifest: Blob,
}

/// Pushes a one-layer image whose content depends on `seed`: two
/// monolithic blob uploads, then the manifest by tag.
pub fn push_tiny(addr: &str, repo: &str, tag: &str, seed: u64) -> Pushed {
    let client = http();
    let layer = Blob::new("application/vnd.oci.image.layer.v1.tar", format!("layer {seed} {repo}:{tag}").into_bytes());
    let config = Blob::new(
        "application/vnd.oci.image.config.v1+json",
        serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "seed": seed})).unwrap(),
    );
    for b in [&config, &layer] {
        let resp = client
            .post(format!("http://{addr}/v2/{repo}/blobs/uploads/?digest={}", b.digest))
            .header("content-type", "application/octet-stream")
            .body(b.bytes.clone())
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201, "upload {}: {}", b.digest, resp.text().unwrap_or_default());
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
    });
    let manifest = Blob::new(MT_MANIFEST, serde_json::to_vec(&manifest).unwrap());
    let resp = client
        .put(format!("http://{addr}/v2/{repo}/manifests/{tag}"))
        .header("content-type", MT_MANIFEST)
        .body(manifest.bytes.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201, "manifest {repo}:{tag}: {}", resp.text().unwrap_or_default());
    assert_eq!(manifest.digest, sha256_digest(&manifest.bytes));
    Pushed { repo: repo.into(), tag: tag.into(), config, layer, manifest }
}

/// The value of a counter or gauge for one endpoint in a `/metrics` text.
pub fn metric(text: &str, name: &str, endpoint: &str) -> Option<f64> {
    let prefix = format!("{name}{{endpoint=\"{endpoint}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok())
}

/// Events whose action and digest are these.
pub fn find<'a>(events: &'a [Value], action: &str, digest: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["action"] == action && e["target"]["digest"] == digest).collect()
}
