//! A real S3 server for the tests: versitygw (`scripts/tools.sh` installs
//! it), serving the directories of a temporary directory as buckets on a
//! loopback port. Killed by PID on drop.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{ChildLog, tool};

pub const ACCESS: &str = "wharf-test-access";
pub const SECRET: &str = "wharf-test-secret-key";

pub struct S3Server {
    child: Option<Child>,
    pub log: Option<ChildLog>,
    dir: tempfile::TempDir,
    pub port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

impl S3Server {
    /// Starts versitygw with one bucket, `bucket`.
    pub fn start(bucket: &str) -> S3Server {
        S3Server::start_in(bucket, &std::env::temp_dir())
    }

    /// The same with the buckets under `base` (tests that make thousands of
    /// small objects use /dev/shm: this disk takes seconds to remove them).
    pub fn start_in(bucket: &str, base: &Path) -> S3Server {
        let dir = tempfile::Builder::new().prefix("wharf-s3.").tempdir_in(base).unwrap();
        std::fs::create_dir(dir.path().join(bucket)).unwrap();
        let mut s = S3Server { child: None, log: None, dir, port: free_port() };
        s.restart();
        s
    }

    /// The directory whose subdirectories are the buckets.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.dir.path().join(bucket)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and directory.
    pub fn restart(&mut self) {
        self.stop();
        let mut cmd = Command::new(tool("versitygw"));
        cmd.args(["--access", ACCESS, "--secret", SECRET, "--port", &format!("127.0.0.1:{}", self.port), "posix"])
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start versitygw");
        self.log = Some(ChildLog::attach(&mut child));
        self.child = Some(child);
        // Up once it accepts connections (bounded; it binds within a second).
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "versitygw did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server: S3 is down until `restart`.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `storage.s3` for a registry:2 config.yml (wharf or distribution).
    pub fn storage_yaml(&self, bucket: &str, root: &str) -> String {
        format!(
            "  s3:\n    accesskey: {ACCESS}\n    secretkey: {SECRET}\n    region: us-east-1\n    regionendpoint: {}\n    \
             forcepathstyle: true\n    secure: false\n    bucket: {bucket}\n    rootdirectory: {root}\n",
            self.endpoint()
        )
    }

    /// A whole registry config on this bucket (redirects off unless asked).
    pub fn registry_config(&self, bucket: &str, root: &str, extra_storage: &str, secret: &str) -> String {
        format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n{}{extra_storage}  delete:\n    enabled: true\n  \
             redirect:\n    disable: true\nhttp:\n  addr: 127.0.0.1:0\n  secret: {secret}\n",
            self.storage_yaml(bucket, root)
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
