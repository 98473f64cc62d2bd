//! Tracing (issue 17): the spans of one push through the real HTTP server
//! form the tree request → registry operation → storage call, and with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set the registry process sends its spans to
//! an OTLP/HTTP receiver.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use opentelemetry::trace::SpanId;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use prost::Message as _;
use sha2::{Digest as _, Sha256};
use tracing_subscriber::layer::SubscriberExt as _;

use wharf_registry::config::Config;

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.as_str().into_owned())
}

/// The spans as an indented tree, with the attributes that say where time went.
fn render(spans: &[SpanData], parent: SpanId, depth: usize, out: &mut String) {
    for s in spans.iter().filter(|s| s.parent_span_id == parent) {
        let attrs: Vec<String> = ["repository", "status", "repo", "digest", "key", "from", "bytes"]
            .iter()
            .filter_map(|k| attr(s, k).map(|v| format!("{k}={v}")))
            .collect();
        let ms = s.end_time.duration_since(s.start_time).unwrap_or_default().as_secs_f64() * 1000.0;
        out.push_str(&format!("{}{} [{ms:.2} ms] {}\n", "  ".repeat(depth), s.name, attrs.join(" ")));
        render(spans, s.span_context.span_id(), depth + 1, out);
    }
}

/// The one child of `parent` named `name`.
fn child<'a>(spans: &'a [SpanData], parent: &SpanData, name: &str, tree: &str) -> &'a SpanData {
    let found: Vec<&SpanData> =
        spans.iter().filter(|s| s.parent_span_id == parent.span_context.span_id() && s.name == name).collect();
    assert_eq!(found.len(), 1, "{} should have one child {name}; the spans:\n{tree}", parent.name);
    found[0]
}

/// The trace a (tracing) client's manifest PUT belongs to, and its span.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

async fn push(client: &reqwest::Client, base: &str, repo: &str, layer: &[u8], config: &[u8]) -> String {
    // The layer in two requests (a PATCH, then the closing PUT), the config in one.
    for (blob, chunked) in [(layer, true), (config, false)] {
        let r = client.post(format!("{base}/v2/{repo}/blobs/uploads/")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 202, "POST upload");
        let mut location = r.headers()["location"].to_str().unwrap().to_string();
        let mut body = blob.to_vec();
        if chunked {
            let r = client.patch(&location).body(body).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 202, "PATCH upload");
            location = r.headers()["location"].to_str().unwrap().to_string();
            body = Vec::new();
        }
        let sep = if location.contains('?') { '&' } else { '?' };
        let r = client.put(format!("{location}{sep}digest={}", digest(blob))).body(body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 201, "PUT upload: {}", r.text().await.unwrap_or_default());
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(layer), "size": layer.len()}],
    })
    .to_string();
    let r = client
        .put(format!("{base}/v2/{repo}/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "PUT manifest: {}", r.text().await.unwrap_or_default());
    digest(manifest.as_bytes())
}

/// One push through the real server, its spans caught by an in-memory
/// exporter behind the same layer (and filter) that OTLP export uses.
#[tokio::test(flavor = "current_thread")]
async fn a_push_traces_request_then_operation_then_storage() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let subscriber =
        tracing_subscriber::registry().with(wharf_registry::telemetry::otlp::layer(&provider, "wharf_registry"));
    // This thread only: the runtime is current-thread, so server, client and
    // spawned part writes all run here.
    let _traced = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:0\n  secret: test\n",
        dir.path().display()
    );
    let app = wharf_registry::build(&Config::from_yaml(&yaml, std::iter::empty()).unwrap()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(wharf_registry::server::serve(
        listener,
        app.router,
        wharf_registry::server::Limits { drain: Duration::from_secs(5), ..Default::default() },
        async move {
            let _ = stopped.await;
        },
    ));

    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap();
    let (layer, config) = (vec![7u8; 100_000], br#"{"architecture":"amd64","os":"linux"}"#.to_vec());
    let repo = "trace/demo";
    let manifest = push(&client, &base, repo, &layer, &config).await;
    drop(client);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let mut tree = String::new();
    // Roots: spans whose parent is not here (none, or the caller's remote span).
    let here: std::collections::HashSet<SpanId> = spans.iter().map(|s| s.span_context.span_id()).collect();
    let mut roots: Vec<SpanId> = Vec::new();
    for p in spans.iter().map(|s| s.parent_span_id).filter(|p| !here.contains(p)) {
        if !roots.contains(&p) {
            roots.push(p);
        }
    }
    for root in roots {
        render(&spans, root, 0, &mut tree);
    }
    eprintln!("{tree}");

    let requests = |name: &str| -> Vec<&SpanData> {
        spans.iter().filter(|s| s.parent_span_id == SpanId::INVALID && s.name == name).collect()
    };
    // The layer's closing PUT: request → upload_complete → commit under its digest.
    let put_layer = requests("PUT upload")
        .into_iter()
        .find(|r| {
            spans
                .iter()
                .any(|s| s.parent_span_id == r.span_context.span_id() && attr(s, "digest") == Some(digest(&layer)))
        })
        .unwrap_or_else(|| panic!("no `PUT upload` request span with the layer's upload_complete; the spans:\n{tree}"));
    assert_eq!(attr(put_layer, "repository").as_deref(), Some(repo), "{tree}");
    assert_eq!(attr(put_layer, "status").as_deref(), Some("201"), "{tree}");
    let complete = child(&spans, put_layer, "upload_complete", &tree);
    assert_eq!(attr(complete, "repo").as_deref(), Some(repo), "{tree}");
    assert_eq!(attr(complete, "bytes").as_deref(), Some("100000"), "{tree}");
    let commit = child(&spans, complete, "storage.commit", &tree);
    assert!(attr(commit, "to").unwrap_or_default().ends_with(&format!("{}/data", &digest(&layer)[7..])), "{tree}");
    assert_eq!(commit.span_context.trace_id(), put_layer.span_context.trace_id());

    // The PATCH: its part write runs in a task of its own, and still nests.
    let patch = requests("PATCH upload");
    assert_eq!(patch.len(), 1, "{tree}");
    let append = child(&spans, patch[0], "upload_append", &tree);
    assert_eq!(attr(append, "bytes").as_deref(), Some("100000"), "{tree}");
    let part = child(&spans, append, "storage.put_part", &tree);
    assert_eq!(attr(part, "bytes").as_deref(), Some("100000"), "{tree}");

    // The manifest: request → manifest_put (digest, bytes) → the manifest's bytes put.
    // Its request carried a W3C traceparent: the request span continues that trace.
    let put_manifest: Vec<&SpanData> = spans.iter().filter(|s| s.name == "PUT manifest").collect();
    assert_eq!(put_manifest.len(), 1, "{tree}");
    assert_eq!(put_manifest[0].span_context.trace_id().to_string(), CALLER_TRACE);
    assert_eq!(put_manifest[0].parent_span_id.to_string(), CALLER_SPAN);
    let op = child(&spans, put_manifest[0], "manifest_put", &tree);
    assert_eq!(attr(op, "repo").as_deref(), Some(repo), "{tree}");
    assert_eq!(attr(op, "digest"), Some(manifest.clone()), "{tree}");
    let stored = spans
        .iter()
        .filter(|s| s.parent_span_id == op.span_context.span_id() && s.name == "storage.put")
        .find(|s| attr(s, "key").unwrap_or_default().ends_with(&format!("{}/data", &manifest[7..])));
    assert!(stored.is_some(), "manifest_put stored no manifest bytes in a storage.put span:\n{tree}");
}

// ---------------------------------------------------------------- OTLP over HTTP

/// One OTLP/HTTP request as the receiver saw it.
struct Received {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// A minimal OTLP/HTTP receiver on 127.0.0.1: answers every POST with 200
/// and hands the request to the test.
fn receiver() -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                let mut write = conn.try_clone().unwrap();
                let mut read = BufReader::new(conn);
                // Requests on one connection until it closes.
                loop {
                    let mut line = String::new();
                    if read.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let mut headers = HashMap::new();
                    loop {
                        let mut h = String::new();
                        if read.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                        }
                    }
                    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                    let mut body = vec![0; len];
                    if read.read_exact(&mut body).is_err() {
                        return;
                    }
                    let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if write.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                    let content_type = headers.remove("content-type").unwrap_or_default();
                    let _ = tx.send(Received { path, content_type, body });
                }
            });
        }
    });
    (addr, rx)
}

/// The registry process, killed by PID when the test ends.
struct Registry {
    child: std::process::Child,
    log: common::ChildLog,
    addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- registry log ---\n{}", self.log.tail(40));
        }
    }
}

fn start_registry(root: &std::path::Path, env: &[(&str, &str)]) -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(&config, common::minimal_config(root)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wharf-registry"));
    cmd.arg("serve").arg(&config).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("REGISTRY_")
            || k.starts_with("OTEL_")
            || k == "RUST_LOG"
            || k.to_ascii_lowercase().ends_with("_proxy")
        {
            cmd.env_remove(&k);
        }
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().unwrap();
    let log = common::ChildLog::attach(&mut child);
    let line = log.wait_for("listening on", common::START_TIMEOUT);
    let mut reg = Registry { child, log, addr: String::new() };
    let line = line.unwrap_or_else(|e| panic!("the registry did not start: {e}"));
    reg.addr = common::parse_listen_addr(&line).unwrap();
    reg
}

/// With an endpoint configured, a request's span leaves over OTLP/HTTP
/// (protobuf, `/v1/traces`) named by its route, from `wharf-registry`.
#[test]
fn spans_leave_over_otlp_when_an_endpoint_is_set() {
    let (collector, received) = receiver();
    let root = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{collector}");
    let reg =
        start_registry(root.path(), &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint), ("OTEL_BSP_SCHEDULE_DELAY", "100")]);
    let resp = common::http().get(format!("http://{}/v2/trace/otlp/tags/list", reg.addr)).send().unwrap();
    assert_eq!(resp.status().as_u16(), 404);

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(req) = received.recv_timeout(left) else {
            panic!("no OTLP request with the request's span within 30 s; received: {seen:?}");
        };
        assert_eq!(req.path, "/v1/traces");
        assert_eq!(req.content_type, "application/x-protobuf");
        let export = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(&req.body[..])
            .expect("an ExportTraceServiceRequest");
        for rs in &export.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| v.value.as_ref())
                .map(|v| format!("{v:?}"))
                .unwrap_or_default();
            for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                seen.push(format!("{} ({service})", span.name));
                if span.name == "GET tags" {
                    assert!(service.contains("wharf-registry"), "service.name: {service}");
                    let has = |k: &str| span.attributes.iter().any(|kv| kv.key == k);
                    assert!(has("repository") && has("status"), "attributes: {:?}", span.attributes);
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------- RUST_LOG

/// Pushes one blob (POST, then PUT with the bytes) with a blocking client.
fn push_blob(reg: &Registry, repo: &str, blob: &[u8]) {
    let http = common::http();
    let r = http.post(format!("http://{}/v2/{repo}/blobs/uploads/", reg.addr)).send().unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let location = if location.starts_with('/') { format!("http://{}{location}", reg.addr) } else { location };
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = http.put(format!("{location}{sep}digest={}", digest(blob))).body(blob.to_vec()).send().unwrap();
    assert_eq!(r.status().as_u16(), 201);
}

/// Where the log lets DEBUG through (`RUST_LOG`), each span adds a line
/// when it closes: its name, parent, fields and time. At `info` the log
/// has no such line.
#[test]
fn debug_logs_show_where_a_push_spent_its_time() {
    let blob = b"where did the time go".to_vec();
    let root = tempfile::tempdir().unwrap();
    let reg = start_registry(root.path(), &[("RUST_LOG", "info,wharf_registry=debug")]);
    push_blob(&reg, "trace/log", &blob);
    let wait = |needle: &str| reg.log.wait_for(needle, Duration::from_secs(30)).unwrap();
    // Children close before their parents: the storage call, its operation, the request.
    let commit = wait("span=storage.commit");
    assert!(commit.contains("msg=\"span closed\"") && commit.contains("parent=upload_complete"), "{commit}");
    assert!(commit.contains("time.busy=") && commit.contains("time.idle="), "{commit}");
    let op = wait("span=upload_complete");
    assert!(op.contains("parent=request") && op.contains("repo=trace/log"), "{op}");
    assert!(op.contains(&format!("digest={}", digest(&blob))) && op.contains("bytes=21"), "{op}");
    let request = wait("span=request");
    assert!(request.contains("route=upload") && request.contains("status=201"), "{request}");

    let quiet = tempfile::tempdir().unwrap();
    let reg = start_registry(quiet.path(), &[]);
    push_blob(&reg, "trace/log", &blob);
    reg.log.wait_for("status=201", Duration::from_secs(30)).unwrap();
    // The request's spans closed before its line was written.
    assert!(!reg.log.text().contains("span closed"), "span lines at info:\n{}", reg.log.text());
}
