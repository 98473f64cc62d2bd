//! The `wharf-registry` binary as an operator runs it: `config check` on
//! real-world configs, the debug listener, request logs, and a graceful
//! SIGTERM that lets an in-flight upload finish.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_wharf-registry");

fn seed(name: &str) -> String {
    format!("{}/tests/seeds/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn config_check(path: &str, env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(BIN).args(["config", "check", path]).envs(env.iter().copied()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn config_check_prints_the_effective_config() {
    let (ok, out) = config_check(&seed("stock-registry2.yml"), &[("REGISTRY_HTTP_SECRET", "s3cr3t")]);
    assert!(ok, "{out}");
    assert!(out.contains("rootdirectory: /var/lib/registry"), "{out}");
    assert!(out.contains("secret: <redacted>") && !out.contains("s3cr3t"), "{out}");
    let (ok, out) =
        config_check(&seed("stock-registry2.yml"), &[("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/data")]);
    assert!(ok && out.contains("rootdirectory: /data"), "{out}");
}

#[test]
fn seed_configs_load_or_name_what_is_unsupported() {
    for (file, needle) in [
        ("003-oss-token.yml", "storage.oss"),
        ("003-oss-htpasswd-tls.yml", "storage.oss"),
        ("000-token-realm-localhost.yml", "auth.token.realm"),
    ] {
        let (ok, out) = config_check(&seed(file), &[]);
        assert!(!ok, "{file} should be refused for now: {out}");
        assert!(out.contains(needle), "{file}: the refusal names `{needle}`: {out}");
        assert!(!out.contains("panicked"), "{out}");
    }
    // Seed 004: a mirror with an upstream account and no client auth would
    // hand the account's private images to anyone; it is refused, and says so.
    let (ok, out) = config_check(&seed("004-dockerhub-mirror.yml"), &[]);
    assert!(!ok, "004-dockerhub-mirror.yml must be refused: {out}");
    assert!(
        out.contains("proxy.username") && out.contains("private images") && out.contains("exposeupstreamaccount"),
        "the refusal explains the leak and the ways out: {out}"
    );
    assert!(!out.contains("secret-password"), "the refusal does not print the password: {out}");
    let (ok, out) =
        config_check(&seed("004-dockerhub-mirror.yml"), &[("REGISTRY_PROXY_EXPOSEUPSTREAMACCOUNT", "true")]);
    assert!(ok && out.contains("remoteurl: https://registry-1.docker.io"), "the explicit declaration starts it: {out}");
    assert!(!out.contains("secret-password") && out.contains("<redacted>"), "{out}");
    let (_, out) = config_check(&seed("000-token-realm-localhost.yml"), &[]);
    assert!(out.contains("localhost") && out.contains("one machine"), "the realm refusal explains why: {out}");
    let (ok, out) = config_check("/nonexistent/config.yml", &[]);
    assert!(!ok && out.contains("/nonexistent/config.yml"), "{out}");
}

/// A running registry whose stderr is read line by line.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
    dir: tempfile::TempDir,
}

impl Running {
    fn start(extra: &str) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: info, formatter: json, fields: {{service: registry}}}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp:\n  addr: 127.0.0.1:0\n  draintimeout: 30s\n  debug: {{addr: 127.0.0.1:0, prometheus: {{enabled: true}}}}\n{extra}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let mut child = Command::new(BIN).arg("serve").arg(&config).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines, log: Vec::new(), dir }
    }

    /// Waits for a log line containing `needle` and returns it.
    fn wait_for(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no log line with {needle:?}; log so far:\n{}", self.log.join("\n")),
            }
        }
    }

    fn addr_in(line: &str, key: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        match key {
            "msg" => v["msg"].as_str().unwrap().trim_start_matches("listening on ").to_string(),
            k => v[k].as_str().unwrap().to_string(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn http(addr: &str, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn debug_listener_logs_and_graceful_shutdown() {
    let mut reg = Running::start("health:\n  storagedriver: {enabled: true, interval: 1s, threshold: 1}\n");
    let debug = Running::addr_in(&reg.wait_for("debug server listening"), "addr");
    let api = Running::addr_in(&reg.wait_for("listening on"), "msg");

    let health = http(&debug, "GET /debug/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let ready = http(&debug, "GET /debug/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");

    let base = http(&api, "GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(base.to_lowercase().contains("docker-distribution-api-version: registry/2.0"), "{base}");
    let line = reg.wait_for("\"route\":\"base\"");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["service"], "registry", "log.fields on every line: {line}");
    assert_eq!(v["status"], 200);
    assert_eq!(v["method"], "GET");
    assert!(v["duration_ms"].is_number() && v["bytes"].is_number(), "{line}");

    let metrics = http(&debug, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(
        metrics.contains("wharf_registry_http_requests_total{route=\"base\",method=\"GET\",status=\"200\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("wharf_registry_upload_sessions"), "{metrics}");

    // Start an upload, leave its PATCH half-sent, then SIGTERM.
    let post =
        http(&api, "POST /v2/r/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
    let location = post
        .lines()
        .find_map(|l| l.strip_prefix("location: ").or_else(|| l.strip_prefix("Location: ")))
        .unwrap()
        .trim()
        .trim_start_matches("http://x")
        .to_string();
    let mut s = tokio::net::TcpStream::connect(&api).await.unwrap();
    s.write_all(
        format!("PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    // "100 Continue" arrives when the handler starts reading the body: the request is in flight.
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).await.unwrap();
    assert!(interim.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"), "{}", String::from_utf8_lossy(&interim));
    s.write_all(b"01234").await.unwrap();
    let pid = reg.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    reg.wait_for("SIGTERM: draining");
    // While the PATCH is still in flight (half its body unsent), the listener
    // closes: new connections are refused within a bounded time, and the
    // process is still running, held by the in-flight request.
    let refused_by = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        // A listener still open but no longer accepting fills its backlog, and
        // then a connect hangs: bounded, so the deadline below is checked.
        match tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(&api)).await {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            // A handshake racing the listener's close is reset; the next attempt is refused.
            Ok(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
            Ok(Ok(_)) | Err(_) => assert!(
                std::time::Instant::now() < refused_by,
                "new connections still accepted 10 s into the drain, with a request in flight"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reg.child.try_wait().unwrap().is_none(), "the process waits for the in-flight request");
    s.write_all(b"56789").await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 202"), "the in-flight PATCH finished: {resp}");
    assert!(resp.contains("0-9"), "{resp}");
    let status = reg.child.wait().unwrap();
    assert!(status.success(), "clean exit after draining: {status}");
}

/// `health.storagedriver`: storage that stops working turns `/debug/health`
/// to 503 within `threshold` checks, and back to 200 once it works again.
#[tokio::test]
async fn health_fails_when_storage_breaks_and_recovers() {
    let mut reg = Running::start("health:\n  storagedriver: {enabled: true, interval: 1s, threshold: 2}\n");
    let debug = Running::addr_in(&reg.wait_for("debug server listening"), "addr");
    let api = Running::addr_in(&reg.wait_for("listening on"), "msg");
    let health = || http(&debug, "GET /debug/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    // A push, so that the storage root holds a real tree.
    let post = http(
        &api,
        "POST /v2/r/blobs/uploads/?digest=sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert!(post.starts_with("HTTP/1.1 201"), "{post}");
    let first = health().await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");

    // Tests run as root, so permissions stop nothing: the storage root is
    // moved away and a regular file put in its place (every path under it
    // is then ENOTDIR). A root that is merely missing counts as empty, as
    // in registry:2, so the file is what breaks it.
    let root = reg.dir.path().join("data");
    let away = reg.dir.path().join("data.away");
    std::fs::rename(&root, &away).unwrap();
    std::fs::write(&root, b"not a directory").unwrap();
    // interval 1s × threshold 2, plus slack for a loaded machine.
    let failed = poll_health(&health, "HTTP/1.1 503", Duration::from_secs(2 + 5)).await;
    assert!(failed.contains("storagedriver"), "the failing check is named: {failed}");
    assert!(failed.contains("consecutive checks"), "after `threshold` failures: {failed}");
    reg.wait_for("storage health check failed");

    std::fs::remove_file(&root).unwrap();
    std::fs::rename(&away, &root).unwrap();
    let recovered = poll_health(&health, "HTTP/1.1 200", Duration::from_secs(1 + 5)).await;
    assert!(recovered.ends_with("{}"), "{recovered}");
}

/// Asks `/debug/health` until its answer starts with `want`, for at most `within`.
async fn poll_health<F, Fut>(health: &F, want: &str, within: Duration) -> String
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        let answer = health().await;
        if answer.starts_with(want) {
            return answer;
        }
        assert!(std::time::Instant::now() < deadline, "no {want} from /debug/health within {within:?}; last: {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn serves_tls_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=registry.test"])
        .args(["-addext", "subjectAltName=DNS:registry.test,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(d.join("tls.key"))
        .arg("-out")
        .arg(d.join("tls.crt"))
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let mut reg = Running::start(&format!(
        "  tls:\n    certificate: {}\n    key: {}\n",
        d.join("tls.crt").display(),
        d.join("tls.key").display()
    ));
    let api = Running::addr_in(&reg.wait_for("listening on"), "msg");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code} %{http_version}", "--cacert"])
        .arg(d.join("tls.crt"))
        .arg(format!("https://{api}/v2/"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // curl offers h2 and HTTP/1.1 by ALPN; the server's order picks HTTP/1.1.
    assert_eq!(text, "200 1.1", "HTTPS by ALPN: {text} {}", String::from_utf8_lossy(&out.stderr));
    let plain = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{api}/v2/"))
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200", "plain HTTP is not served on the TLS port");
}
