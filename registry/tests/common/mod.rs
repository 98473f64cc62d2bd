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

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub mod s3;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

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

// ---------------------------------------------------------------- containerd

/// A private containerd (own root, state, socket, config) in a temp dir,
/// killed by PID on drop; mounts left under its directory are unmounted.
pub struct Containerd {
    child: Child,
    pub dir: tempfile::TempDir,
    pub address: PathBuf,
    pub snapshotter: String,
    pub log: ChildLog,
}

impl Containerd {
    pub fn start() -> Containerd {
        let containerd = tool("containerd");
        tool("ctr");
        // A short path: unix socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new().prefix("wharf-ctrd.").tempdir_in("/tmp").unwrap();
        let d = dir.path().to_path_buf();
        let d = d.as_path();
        let address = d.join("c.sock");
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = address.display()
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let mut child = Command::new(containerd)
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start containerd");
        let log = ChildLog::attach(&mut child);
        let mut c = Containerd { child, dir, address, snapshotter: String::new(), log };
        if let Err(e) = c.log.wait_for("containerd successfully booted", START_TIMEOUT) {
            panic!("containerd did not start: {e}\n{}", c.log.text());
        }
        run_ok(c.ctr("default").arg("version"), Duration::from_secs(20));
        // overlayfs when this kernel and filesystem allow it, native otherwise.
        let plugins = run_ok(c.ctr("default").args(["plugins", "ls"]), Duration::from_secs(20)).stdout;
        let ok = |name: &str| {
            plugins.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() >= 4 && f[0] == "io.containerd.snapshotter.v1" && f[1] == name && f[3] == "ok"
            })
        };
        c.snapshotter = if ok("overlayfs") && overlay_mount_works(d) {
            "overlayfs".into()
        } else if ok("native") {
            "native".into()
        } else {
            panic!("containerd has neither the overlayfs nor the native snapshotter:\n{plugins}")
        };
        c
    }

    /// `ctr --address SOCK --namespace NS` with the chosen snapshotter.
    pub fn ctr(&self, namespace: &str) -> Command {
        let mut cmd = Command::new(tool("ctr"));
        cmd.arg("--address").arg(&self.address).arg("--namespace").arg(namespace);
        if !self.snapshotter.is_empty() {
            cmd.env("CONTAINERD_SNAPSHOTTER", &self.snapshotter);
        }
        cmd
    }
}

fn overlay_mount_works(dir: &Path) -> bool {
    let t = dir.join("overlay-probe");
    for d in ["l", "u", "w", "m"] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        t.join("l").display(),
        t.join("u").display(),
        t.join("w").display()
    );
    let ok = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(t.join("m"))
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        let _ = Command::new("umount").arg(t.join("m")).status();
    }
    let _ = std::fs::remove_dir_all(&t);
    ok
}

/// Mount points at or under `dir`, deepest first (from /proc/self/mountinfo).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v
}

pub fn unmount_all_under(dir: &Path) {
    for m in mounts_under(dir) {
        let _ = Command::new("umount").arg("-l").arg(&m).stderr(Stdio::null()).status();
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        unmount_all_under(self.dir.path());
        if std::thread::panicking() {
            eprintln!("--- containerd log (last 100 lines) ---\n{}", self.log.tail(100));
        }
    }
}

// ---------------------------------------------------------------- digests

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// sha256 of a file, streamed.
pub fn file_digest(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

// ---------------------------------------------------------------- fixtures

pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Deterministic bytes (splitmix64), so fixtures are reproducible per seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// A content-addressed blob.
#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob { media_type: media_type.into(), digest: sha256_digest(&bytes), bytes }
    }
    pub fn hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").unwrap()
    }
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()})
    }
}

/// One file a layer adds (or, with `whiteout`, removes).
#[derive(Clone, Debug)]
pub struct LayerFile {
    pub path: String,
    pub content: Vec<u8>,
}

/// An image for one platform: gzip layers, config, manifest.
#[derive(Clone, Debug)]
pub struct PlatformImage {
    pub os: String,
    pub arch: String,
    pub layers: Vec<Blob>,
    pub diff_ids: Vec<String>,
    pub config: Blob,
    pub manifest: Blob,
    /// Every file of the unpacked root filesystem, after all layers.
    pub rootfs: BTreeMap<String, Vec<u8>>,
    /// Paths some lower layer added and a higher layer's whiteout removed.
    pub removed: Vec<String>,
}

impl PlatformImage {
    /// `layers` layers (at least 2), each holding a few files of about
    /// `layer_bytes` in all; the last layer whites out a file of the first.
    pub fn generate(rng: &mut Rng, os: &str, arch: &str, layers: usize, layer_bytes: usize) -> PlatformImage {
        assert!(layers >= 2);
        let mut rootfs = BTreeMap::new();
        let mut layer_blobs = Vec::new();
        let mut diff_ids = Vec::new();
        let tag = rng.next_u64();
        for i in 0..layers {
            let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
            entries
                .push((format!("etc/wharf/{arch}-layer{i}"), format!("{os}/{arch} layer {i} {tag:x}\n").into_bytes()));
            let files = 3;
            for f in 0..files {
                entries.push((format!("data/l{i}/f{f}.bin"), rng.bytes(layer_bytes / files)));
            }
            if i == 0 {
                entries.push(("data/gone.txt".into(), b"removed by the top layer\n".to_vec()));
            }
            if i == layers - 1 {
                entries.push(("data/.wh.gone.txt".into(), Vec::new()));
            }
            let tar = tar_bytes(&entries);
            diff_ids.push(sha256_digest(&tar));
            layer_blobs.push(Blob::new(MT_LAYER_GZIP, gzip(&tar)));
            for (p, c) in entries {
                if let Some(name) = p.strip_prefix("data/.wh.") {
                    rootfs.remove(&format!("data/{name}"));
                } else {
                    rootfs.insert(p, c);
                }
            }
        }
        let config = json!({
            "architecture": arch,
            "os": os,
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": (0..layers).map(|i| json!({"created_by": format!("wharf fixture layer {i}")})).collect::<Vec<_>>(),
        });
        let config = Blob::new(MT_CONFIG, serde_json::to_vec(&config).unwrap());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": config.descriptor(),
            "layers": layer_blobs.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        });
        let manifest = Blob::new(MT_MANIFEST, serde_json::to_vec(&manifest).unwrap());
        PlatformImage {
            os: os.into(),
            arch: arch.into(),
            layers: layer_blobs,
            diff_ids,
            config,
            manifest,
            rootfs,
            removed: vec!["data/gone.txt".into()],
        }
    }

    pub fn platform(&self) -> String {
        format!("{}/{}", self.os, self.arch)
    }

    /// Config and layers (what a manifest references).
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut v = vec![&self.config];
        v.extend(self.layers.iter());
        v
    }

    /// The chain ID of the top layer (what containerd names the unpacked snapshot).
    pub fn chain_id(&self) -> String {
        let mut chain = self.diff_ids[0].clone();
        for d in &self.diff_ids[1..] {
            chain = sha256_digest(format!("{chain} {d}").as_bytes());
        }
        chain
    }

    /// An OCI layout whose index.json names this image as `ref_name`.
    pub fn write_layout(&self, dir: &Path, ref_name: &str) {
        let mut desc = self.manifest.descriptor();
        desc["annotations"] = json!({"org.opencontainers.image.ref.name": ref_name});
        let mut all = vec![&self.manifest];
        all.extend(self.blobs());
        write_layout(dir, &all, desc);
    }
}

/// A multi-platform image: an OCI index over linux/amd64 and linux/arm64.
#[derive(Clone, Debug)]
pub struct MultiArchImage {
    pub index: Blob,
    pub images: Vec<PlatformImage>,
}

impl MultiArchImage {
    pub fn generate(seed: u64, layers: usize, layer_bytes: usize) -> MultiArchImage {
        let mut rng = Rng::new(seed);
        let images: Vec<PlatformImage> = [("linux", "amd64"), ("linux", "arm64")]
            .iter()
            .map(|(os, arch)| PlatformImage::generate(&mut rng, os, arch, layers, layer_bytes))
            .collect();
        let index = json!({
            "schemaVersion": 2,
            "mediaType": MT_INDEX,
            "manifests": images.iter().map(|img| {
                let mut d = img.manifest.descriptor();
                d["platform"] = json!({"architecture": img.arch, "os": img.os});
                d
            }).collect::<Vec<_>>(),
        });
        MultiArchImage { index: Blob::new(MT_INDEX, serde_json::to_vec(&index).unwrap()), images }
    }

    pub fn image(&self, arch: &str) -> &PlatformImage {
        self.images.iter().find(|i| i.arch == arch).unwrap_or_else(|| panic!("no {arch} image"))
    }

    /// Every blob: index, manifests, configs, layers.
    pub fn all_blobs(&self) -> Vec<&Blob> {
        let mut v = vec![&self.index];
        for img in &self.images {
            v.push(&img.manifest);
            v.extend(img.blobs());
        }
        v
    }

    /// An OCI layout whose index.json names the index as `ref_name`.
    pub fn write_layout(&self, dir: &Path, ref_name: &str) {
        let mut desc = self.index.descriptor();
        desc["annotations"] = json!({"org.opencontainers.image.ref.name": ref_name});
        write_layout(dir, &self.all_blobs(), desc);
    }
}

fn write_layout(dir: &Path, blobs: &[&Blob], top: Value) {
    let blob_dir = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blob_dir).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    for b in blobs {
        std::fs::write(blob_dir.join(b.hex()), &b.bytes).unwrap();
    }
    let index = json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [top]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// A tar stream with the given regular files (and their parent directories).
pub fn tar_bytes(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs = BTreeSet::new();
    for (path, _) in entries {
        let mut p = Path::new(path).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(format!("{}/", d.display()));
            p = d.parent();
        }
    }
    for d in &dirs {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, d, std::io::empty()).unwrap();
    }
    for (path, content) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(content.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, content.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Reads an OCI layout: the top descriptor named `ref_name` (or the only
/// one) and the digest of every blob file (verified against its name).
pub fn read_layout(dir: &Path, ref_name: Option<&str>) -> (Value, BTreeSet<String>) {
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    let top = match ref_name {
        Some(r) => manifests
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == r)
            .unwrap_or_else(|| panic!("no {r} in {index}")),
        None => {
            assert_eq!(manifests.len(), 1, "{index}");
            &manifests[0]
        }
    };
    let mut blobs = BTreeSet::new();
    for e in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let got = file_digest(&e.path());
        assert_eq!(got, format!("sha256:{name}"), "blob file {} does not hash to its name", e.path().display());
        blobs.insert(got);
    }
    (top.clone(), blobs)
}

// ---------------------------------------------------------------- storage tree

/// Every file under `root`, relative, sorted.
pub fn files_under(root: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.map_while(Result::ok) {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

/// The shape of a registry:2 storage path: repository names, tags, hex
/// digests and their two-character prefixes replaced by placeholders.
pub fn path_pattern(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    let is_hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    while i < parts.len() {
        let p = parts[i];
        if p == "repositories" {
            out.push(p.into());
            // The repository name runs up to the first `_layers`, `_manifests` or `_uploads`.
            let mut j = i + 1;
            while j < parts.len() && !parts[j].starts_with('_') {
                j += 1;
            }
            out.push("<repo>".into());
            i = j;
            continue;
        }
        if p == "tags" && out.last().is_some_and(|l| l == "_manifests") && i + 1 < parts.len() {
            out.push("tags".into());
            out.push("<tag>".into());
            i += 2;
            continue;
        }
        if p == "_uploads" && i + 1 < parts.len() {
            out.push("_uploads".into());
            out.push("<uuid>".into());
            i += 2;
            continue;
        }
        if is_hex64(p) {
            out.push("<hex>".into());
        } else if p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()) && out.last().is_some_and(|l| l == "sha256")
        {
            out.push("<xx>".into());
        } else {
            out.push(p.into());
        }
        i += 1;
    }
    out.join("/")
}

// ---------------------------------------------------------------- skopeo / crane

pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

pub fn skopeo() -> Command {
    let mut c = Command::new(tool("skopeo"));
    // A policy that accepts everything, kept in the tool cache, so no
    // /etc/containers configuration is needed or used.
    let policy = cache_dir().join("skopeo-policy.json");
    if std::fs::read(&policy).ok().as_deref() != Some(SKOPEO_POLICY) {
        std::fs::create_dir_all(cache_dir()).unwrap();
        let tmp = policy.with_extension(format!("{}.tmp", std::process::id()));
        std::fs::write(&tmp, SKOPEO_POLICY).unwrap();
        std::fs::rename(&tmp, &policy).unwrap();
    }
    c.arg("--policy").arg(policy).arg("--insecure-policy");
    // No registries.conf or auth files from the machine.
    c.env("REGISTRY_AUTH_FILE", cache_dir().join("empty-auth.json"));
    c
}

const SKOPEO_POLICY: &[u8] = br#"{"default":[{"type":"insecureAcceptAnything"}]}"#;

pub fn crane() -> Command {
    let mut c = Command::new(tool("crane"));
    // No credential helpers or docker config from the environment (the directory need not exist).
    c.env("DOCKER_CONFIG", cache_dir().join("empty-docker-config"));
    c
}

/// `skopeo copy --all --preserve-digests oci:<layout>:<tag> docker://<addr>/<repo>:<tag>`.
pub fn skopeo_push(layout: &Path, tag: &str, addr: &str, repo: &str) -> Output {
    run_ok(
        skopeo()
            .args(["copy", "--all", "--preserve-digests", "--retry-times", "0", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{addr}/{repo}:{tag}")),
        CLIENT_TIMEOUT,
    )
}

/// `skopeo copy --all docker://<addr>/<repo>:<tag> oci:<out>:<tag>`.
pub fn skopeo_pull(addr: &str, repo: &str, tag: &str, out: &Path) -> Output {
    run_ok(
        skopeo()
            .args(["copy", "--all", "--preserve-digests", "--retry-times", "0", "--src-tls-verify=false"])
            .arg(format!("docker://{addr}/{repo}:{tag}"))
            .arg(format!("oci:{}:{tag}", out.display())),
        CLIENT_TIMEOUT,
    )
}

/// Pulls `repo:tag` with skopeo into a fresh layout and asserts the index
/// digest and the set of blobs equal `img`'s.
pub fn assert_pull_matches(addr: &str, repo: &str, tag: &str, img: &MultiArchImage, scratch: &Path) {
    let out = scratch.join(format!("pull-{}-{tag}", repo.replace('/', "_")));
    let _ = std::fs::remove_dir_all(&out);
    skopeo_pull(addr, repo, tag, &out);
    let (top, blobs) = read_layout(&out, Some(tag));
    assert_eq!(top["digest"], img.index.digest.as_str(), "index digest of {repo}:{tag} changed: {top}");
    assert_eq!(top["mediaType"], MT_INDEX, "{top}");
    let want: BTreeSet<String> = img.all_blobs().iter().map(|b| b.digest.clone()).collect();
    assert_eq!(blobs, want, "blobs pulled from {repo}:{tag} differ from those pushed");
}
