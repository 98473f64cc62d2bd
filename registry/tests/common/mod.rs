//! Harness for the real-client tests: registry processes (wharf-registry or
//! the reference distribution registry) started from a registry:2 config.yml,
//! a private containerd, commands run with deadlines, and OCI image fixtures
//! written by code.
//!
//! Tools come from `$WHARF_CACHE/bin` (default `~/.cache/wharf/bin`) or PATH;
//! a missing tool fails the test with a pointer to `scripts/tools.sh`.
//!
//! `WHARF_TEST_REGISTRY=distribution` runs the wharf-facing tests against the
//! reference registry instead (to check the tests themselves).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod clients;
mod containerd;
mod fixtures;
pub mod s3;
pub mod tls;

#[allow(unused_imports)]
pub use clients::*;
#[allow(unused_imports)]
pub use containerd::*;
#[allow(unused_imports)]
pub use fixtures::*;

use serde_json::Value;

// ---------------------------------------------------------------- tools

pub fn cache_dir() -> PathBuf {
    match std::env::var_os("WHARF_CACHE") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").expect("HOME is not set")).join(".cache/wharf"),
    }
}

/// Finds a tool in `$WHARF_CACHE/bin`, then PATH (then /usr/sbin, /sbin).
/// Panics, naming scripts/tools.sh, when it is missing.
pub fn tool(name: &str) -> PathBuf {
    let mut dirs = vec![cache_dir().join("bin")];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.extend([PathBuf::from("/usr/local/go/bin"), PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")]);
    for d in dirs {
        let p = d.join(name);
        if let Ok(meta) = std::fs::metadata(&p) {
            use std::os::unix::fs::PermissionsExt;
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return p;
            }
        }
    }
    panic!(
        "required tool `{name}` not found in {}/bin or PATH: run `bash scripts/tools.sh` (it installs skopeo, crane, \
         containerd/ctr, the distribution registry and the OCI conformance suite)",
        cache_dir().display()
    );
}

// ---------------------------------------------------------------- commands

/// What a finished command printed.
pub struct Output {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.status.success()
    }
    pub fn describe(&self) -> String {
        format!(
            "`{}` exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what, self.status, self.stdout, self.stderr
        )
    }
}

fn describe_command(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn kill_pid(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Runs a command to completion within `timeout` (killed by PID past it,
/// which fails the test with what it printed so far).
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let what = describe_command(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"));
    let pid = child.id();
    let read_all = |mut r: Box<dyn Read + Send>| -> JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = read_all(Box::new(child.stdout.take().unwrap()));
    let err = read_all(Box::new(child.stderr.take().unwrap()));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(timeout) {
        Ok(status) => status.unwrap_or_else(|e| panic!("waiting for `{what}`: {e}")),
        Err(_) => {
            kill_pid(pid, "KILL");
            let _ = rx.recv_timeout(Duration::from_secs(10));
            let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
            let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
            panic!(
                "`{what}` did not finish within {timeout:?} (killed)\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
            );
        }
    };
    Output {
        what,
        status,
        stdout: String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned(),
    }
}

/// Like [`run`], and fails the test (printing stdout and stderr) unless it exited 0.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> Output {
    let out = run(cmd, timeout);
    assert!(out.ok(), "{}", out.describe());
    out
}

// ---------------------------------------------------------------- child logs

/// The lines a long-running child prints on stdout and stderr: kept for
/// failure messages and readable as they come.
pub struct ChildLog {
    lines: Arc<Mutex<Vec<String>>>,
    rx: Receiver<String>,
}

impl ChildLog {
    pub fn attach(child: &mut Child) -> ChildLog {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let pipes: Vec<Box<dyn Read + Send>> = vec![
            Box::new(child.stdout.take().expect("stdout piped")),
            Box::new(child.stderr.take().expect("stderr piped")),
        ];
        for pipe in pipes {
            let (lines, tx) = (lines.clone(), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        ChildLog { lines, rx }
    }

    /// Waits until a line containing `needle` arrives. `Err` when the child
    /// closed its output (exited) or the deadline passed.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("no line containing {needle:?} within {timeout:?}"));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("the process closed its output before printing {needle:?}"));
                }
            }
        }
    }

    /// Waits until the child closed both outputs (it exited). False on timeout.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => return false,
                Err(RecvTimeoutError::Disconnected) => return true,
            }
        }
    }

    pub fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The last `n` lines.
    pub fn tail(&self, n: usize) -> String {
        let lines = self.lines.lock().unwrap();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

// ---------------------------------------------------------------- registries

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Wharf,
    Distribution,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Wharf => "wharf-registry",
            Kind::Distribution => "distribution-registry",
        }
    }
    pub fn binary(self) -> PathBuf {
        match self {
            Kind::Wharf => PathBuf::from(env!("CARGO_BIN_EXE_wharf-registry")),
            Kind::Distribution => tool("distribution-registry"),
        }
    }
}

/// The registry the wharf-facing tests run against: wharf-registry, or the
/// reference registry with `WHARF_TEST_REGISTRY=distribution`.
pub fn registry_under_test() -> Kind {
    match std::env::var("WHARF_TEST_REGISTRY").as_deref() {
        Ok("distribution") => Kind::Distribution,
        Ok("wharf") | Ok("") | Err(_) => Kind::Wharf,
        Ok(other) => panic!("WHARF_TEST_REGISTRY={other}: expected `wharf` or `distribution`"),
    }
}

/// A minimal registry:2 config.yml: filesystem storage under `root`, deletes
/// enabled, a port the kernel chooses on loopback, info logs.
pub fn minimal_config(root: &Path) -> String {
    format!(
        "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n",
        root.display()
    )
}

/// A registry process (`<binary> serve <config.yml>`), killed by PID on drop.
pub struct RegistryProcess {
    pub kind: Kind,
    child: Child,
    /// `127.0.0.1:PORT`, read from the `listening on` log line.
    pub addr: String,
    pub log: ChildLog,
    config_dir: tempfile::TempDir,
    exited: Option<ExitStatus>,
}

pub const START_TIMEOUT: Duration = Duration::from_secs(30);

impl RegistryProcess {
    pub fn start(kind: Kind, config_yaml: &str) -> RegistryProcess {
        RegistryProcess::start_expecting(kind, config_yaml, 200)
    }

    /// Starts a registry whose `GET /v2/` answers `base_status` (401 with auth).
    pub fn start_expecting(kind: Kind, config_yaml: &str, base_status: u16) -> RegistryProcess {
        let config_dir = tempfile::Builder::new().prefix("wharf-cfg.").tempdir().unwrap();
        let config = config_dir.path().join("config.yml");
        std::fs::write(&config, config_yaml).unwrap();
        let mut cmd = Command::new(kind.binary());
        cmd.arg("serve").arg(&config).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // Only the file configures the registry under test.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("REGISTRY_") {
                cmd.env_remove(&k);
            }
        }
        // distribution's OpenTelemetry exporters stay off (no stray connections).
        cmd.env("OTEL_SDK_DISABLED", "true").env("OTEL_TRACES_EXPORTER", "none");
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", kind.name()));
        let log = ChildLog::attach(&mut child);
        let line = match log.wait_for("listening on", START_TIMEOUT) {
            Ok(line) => line,
            Err(e) => {
                kill_pid(child.id(), "KILL");
                let _ = child.wait();
                panic!("{} did not start: {e}\nconfig:\n{config_yaml}\nlog:\n{}", kind.name(), log.text());
            }
        };
        let addr = parse_listen_addr(&line).unwrap_or_else(|| panic!("no address in {line:?}"));
        let mut p = RegistryProcess { kind, child, addr, log, config_dir, exited: None };
        // The API answers on the address it logged.
        let resp = http().get(p.url("/v2/")).send();
        match resp {
            Ok(r) if r.status().as_u16() == base_status => {}
            other => {
                let got = other.map(|r| r.status().to_string()).unwrap_or_else(|e| e.to_string());
                p.kill();
                panic!("{} at {}: GET /v2/ gave {got}\nlog:\n{}", kind.name(), p.addr, p.log.text());
            }
        }
        p
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }

    /// SIGTERM, then wait up to `timeout` for the process to close its output
    /// (it exited), then SIGKILL. Returns whether it exited by itself.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        if self.exited.is_some() {
            return true;
        }
        kill_pid(self.child.id(), "TERM");
        let by_itself = self.log.wait_closed(timeout);
        self.kill();
        by_itself
    }

    pub fn config_path(&self) -> PathBuf {
        self.config_dir.path().join("config.yml")
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- {} log (last 60 lines) ---\n{}", self.kind.name(), self.log.tail(60));
        }
    }
}

/// `127.0.0.1:PORT` from a line such as `... msg="listening on 127.0.0.1:5000" ...`.
pub fn parse_listen_addr(line: &str) -> Option<String> {
    let at = line.find("listening on ")? + "listening on ".len();
    let addr: String =
        line[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']')).collect();
    let addr = addr.replace("[::]", "127.0.0.1").replace("0.0.0.0", "127.0.0.1");
    (addr.contains(':') && addr.rsplit(':').next()?.parse::<u16>().is_ok()).then_some(addr)
}

/// A blocking HTTP client for loopback (no proxy, bounded timeouts).
pub fn http() -> reqwest::blocking::Client {
    wharf_registry::install_crypto_provider();
    reqwest::blocking::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// GET `path` and parse JSON, asserting 200.
pub fn get_json(reg: &RegistryProcess, path: &str) -> Value {
    let resp = http().get(reg.url(path)).send().unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = resp.status();
    let body = resp.text().unwrap();
    assert_eq!(status.as_u16(), 200, "GET {path} on {}: {body}", reg.kind.name());
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
}

/// The repositories in `/v2/_catalog`.
pub fn catalog(reg: &RegistryProcess) -> BTreeSet<String> {
    let v = get_json(reg, "/v2/_catalog?n=1000");
    v["repositories"]
        .as_array()
        .unwrap_or_else(|| panic!("catalog: {v}"))
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

/// The tags in `/v2/<repo>/tags/list`.
pub fn tags(reg: &RegistryProcess, repo: &str) -> BTreeSet<String> {
    let v = get_json(reg, &format!("/v2/{repo}/tags/list"));
    assert_eq!(v["name"], repo, "tags/list name: {v}");
    v["tags"]
        .as_array()
        .unwrap_or_else(|| panic!("tags of {repo}: {v}"))
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

/// GET a manifest with every OCI/Docker media type accepted; returns
/// (content type, Docker-Content-Digest, body) after checking the body's digest.
pub fn get_manifest(reg: &RegistryProcess, repo: &str, reference: &str) -> (String, String, Vec<u8>) {
    let resp =
        http().get(reg.url(&format!("/v2/{repo}/manifests/{reference}"))).header("Accept", ACCEPT_ALL).send().unwrap();
    let status = resp.status().as_u16();
    let ct = header(&resp, "content-type");
    let dcd = header(&resp, "docker-content-digest");
    let body = resp.bytes().unwrap().to_vec();
    assert_eq!(status, 200, "GET manifest {repo}:{reference}: {}", String::from_utf8_lossy(&body));
    assert_eq!(dcd, sha256_digest(&body), "Docker-Content-Digest of {repo}:{reference} is not the digest of its body");
    (ct, dcd, body)
}

pub fn header(resp: &reqwest::blocking::Response, name: &str) -> String {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

pub const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Moves the modification time of every file under `dir` `age` into the
/// past: how the GC tests make content old without waiting for it.
pub fn age_files(dir: &Path, age: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            age_files(&path, age);
        } else if let Ok(f) = std::fs::File::options().write(true).open(&path) {
            f.set_modified(std::time::SystemTime::now() - age).unwrap();
        }
    }
}

/// Ages a storage root's blobs and reference markers (not its links).
pub fn age_content(root: &Path, age: Duration) {
    age_files(&root.join("docker/registry/v2/blobs"), age);
    age_files(&root.join("wharf/gc/refs"), age);
}
