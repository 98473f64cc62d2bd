//! A private containerd for the tests that pull with ctr.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::*;

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
