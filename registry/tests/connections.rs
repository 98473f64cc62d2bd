//! Connection hardening (issue 12, section 4) and bcrypt off the async
//! workers (section 3), over real sockets on loopback: the server under test
//! is `server::serve` in this process, on a runtime with two workers (as in
//! the pod). Every wait has a deadline; a test fails when it passes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use wharf_registry::config::Config;
use wharf_registry::server::{self, Limits};

const DEADLINE: Duration = Duration::from_secs(20);

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves a registry (`auth` at the top level, `$DIR` its directory) with `limits`.
async fn start(limits: Limits, auth: impl FnOnce(&std::path::Path) -> String) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}/data\nhttp:\n  secret: test\n{}\n",
        dir.path().display(),
        auth(dir.path())
    );
    let app = wharf_registry::build(&Config::from_yaml(&yaml, std::iter::empty()).unwrap()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, app.router, limits, async move {
        let _ = rx.await;
    }));
    Server { addr, stop: Some(tx), _dir: dir }
}

fn open() -> impl FnOnce(&std::path::Path) -> String {
    |_| String::new()
}

/// Sends `GET path` and reads one response; returns its status line and head.
async fn get(conn: &mut TcpStream, path: &str, extra: &str) -> String {
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: reg.test\r\n{extra}\r\n").as_bytes()).await.unwrap();
    read_response(conn).await
}

async fn read_response(conn: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return head;
            }
        }
        let n = tokio::time::timeout(DEADLINE, conn.read(&mut chunk))
            .await
            .expect("no response within the deadline")
            .expect("reading a response");
        assert!(n > 0, "connection closed mid-response: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Waits for the server to close `conn` (EOF or reset); returns how long it took.
async fn closed_within(conn: &mut TcpStream, deadline: Duration) -> Duration {
    let started = Instant::now();
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout(deadline.saturating_sub(started.elapsed()), conn.read(&mut chunk)).await {
            Err(_) => panic!("the server kept the connection open for {deadline:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

/// A client that sends half a request head is dropped, while others are
/// served meanwhile. Old code armed no header timeout (hyper had no timer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_half_a_header_is_dropped() {
    let limits = Limits { read_header: Duration::from_secs(1), ..Limits::default() };
    let srv = start(limits, open()).await;
    let mut slow = TcpStream::connect(srv.addr).await.unwrap();
    slow.write_all(b"GET /v2/ HTTP/1.1\r\nHost: reg.test\r\nX-Slow: ").await.unwrap();
    // A client that sends nothing at all is dropped too.
    let mut silent = TcpStream::connect(srv.addr).await.unwrap();

    let mut normal = TcpStream::connect(srv.addr).await.unwrap();
    let head = get(&mut normal, "/v2/", "").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    closed_within(&mut slow, DEADLINE).await;
    closed_within(&mut silent, DEADLINE).await;
    // (A keep-alive connection waiting for its next request is subject to the same timeout.)
    let mut normal = TcpStream::connect(srv.addr).await.unwrap();
    let head = get(&mut normal, "/v2/", "").await;
    assert!(head.starts_with("HTTP/1.1 200"), "normal requests keep being served: {head}");
}

/// A keep-alive connection with no traffic is closed after the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed() {
    let limits = Limits { idle: Duration::from_secs(1), read_header: Duration::from_secs(60), ..Limits::default() };
    let srv = start(limits, open()).await;
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    let head = get(&mut conn, "/v2/", "").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let took = closed_within(&mut conn, DEADLINE).await;
    assert!(took >= Duration::from_millis(500), "closed after {took:?}, before the idle timeout");
}

/// A client that opens a TLS connection and never says hello is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=reg.test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tls = server::tls_config(cert.to_str().unwrap(), key.to_str().unwrap()).unwrap();
    let limits = Limits {
        tls: Some(tls),
        tls_handshake: Duration::from_secs(1),
        read_header: Duration::from_secs(60),
        idle: Duration::from_secs(60),
        ..Limits::default()
    };
    let srv = start(limits, open()).await;
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    closed_within(&mut conn, DEADLINE).await;
}

/// Over `http.maxconnections`, a client waits until a connection closes.
/// Old code had no limit: the second client was served at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_wait_for_a_free_slot() {
    let limits = Limits { max_connections: 1, ..Limits::default() };
    let srv = start(limits, open()).await;
    let mut first = TcpStream::connect(srv.addr).await.unwrap();
    assert!(get(&mut first, "/v2/", "").await.starts_with("HTTP/1.1 200"));

    let mut second = TcpStream::connect(srv.addr).await.unwrap();
    second.write_all(b"GET /v2/ HTTP/1.1\r\nHost: reg.test\r\n\r\n").await.unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(800), second.read(&mut byte)).await;
    assert!(early.is_err(), "the second connection was served while the first held the only slot");

    drop(first);
    let head = read_response(&mut second).await;
    assert!(head.starts_with("HTTP/1.1 200"), "served once the slot is free: {head}");
}

/// bcrypt runs on the blocking pool: with two workers and many concurrent
/// logins, a request that needs no password is still answered promptly.
/// Old code ran bcrypt on the workers, and this request waited for all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_do_not_stall_other_requests() {
    // A cost that takes a good fraction of a second in a debug build.
    const COST: u32 = 10;
    let hash = bcrypt::hash("pw", COST).unwrap();
    let one = Instant::now();
    assert!(bcrypt::verify("pw", &hash).unwrap());
    let one = one.elapsed();
    let srv = start(Limits::default(), move |dir| {
        let path = dir.join("htpasswd");
        std::fs::write(&path, format!("alice:{hash}\n")).unwrap();
        format!("auth:\n  htpasswd:\n    realm: r\n    path: {}\n", path.display())
    })
    .await;

    // A connection that is already open, as a kubelet's or a client's would be.
    let mut probe = TcpStream::connect(srv.addr).await.unwrap();
    assert!(get(&mut probe, "/v2/", "").await.starts_with("HTTP/1.1 401"));

    // Distinct wrong passwords: nothing is cached, every login pays bcrypt.
    let mut logins = Vec::new();
    for i in 0..8 {
        let addr = srv.addr;
        logins.push(tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            let auth = STANDARD.encode(format!("alice:wrong{i}"));
            get(&mut c, "/v2/", &format!("Authorization: Basic {auth}\r\n")).await
        }));
    }
    // Requests without credentials, one after another, while the logins run.
    let (mut probes, mut slowest) = (0, Duration::ZERO);
    let window = Instant::now();
    while logins.iter().any(|l| !l.is_finished()) {
        assert!(window.elapsed() < DEADLINE * 3, "the logins did not finish");
        let started = Instant::now();
        let head = get(&mut probe, "/v2/", "").await;
        slowest = slowest.max(started.elapsed());
        probes += 1;
        assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    }
    for l in logins {
        let head = l.await.unwrap();
        assert!(head.starts_with("HTTP/1.1 401") || head.starts_with("HTTP/1.1 429"), "{head}");
    }
    // Eight logins on two workers would hold them for about four bcrypt times.
    let bound = (one / 2).max(Duration::from_millis(150));
    assert!(probes > 1, "the logins took {:?}, {probes} probe(s)", window.elapsed());
    assert!(slowest < bound, "a request without credentials took {slowest:?} (one bcrypt: {one:?}, {probes} probes)");
}

/// A request that takes longer than the header timeout (a big push on a
/// slow link) is not cut: the timeout is for the head only. Old code
/// checked "no request yet" once, when the connection opened, and closed
/// any connection whose first request was still running at the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outlasting_the_header_timeout_completes() {
    let limits = Limits { read_header: Duration::from_secs(1), ..Limits::default() };
    let srv = start(limits, open()).await;
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    conn.write_all(b"POST /v2/slow/blobs/uploads/ HTTP/1.1\r\nHost: reg.test\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let head = read_response(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 202"), "{head}");
    let location = head
        .lines()
        .find_map(|l| l.strip_prefix("location: ").or_else(|| l.strip_prefix("Location: ")))
        .unwrap()
        .to_string();
    let path = &location[location.find("/v2/").unwrap()..];
    // A fresh connection whose first request is a PATCH trickling for 3 s.
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    let chunks = 6;
    conn.write_all(
        format!("PATCH {path} HTTP/1.1\r\nHost: reg.test\r\nContent-Length: {}\r\n\r\n", chunks * 1000).as_bytes(),
    )
    .await
    .unwrap();
    let mut pace = tokio::time::interval(Duration::from_millis(500));
    for _ in 0..chunks {
        pace.tick().await;
        conn.write_all(&[7u8; 1000]).await.unwrap();
    }
    let head = read_response(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 202"), "{head}");
    assert!(head.to_ascii_lowercase().contains("range: 0-5999"), "{head}");
}
