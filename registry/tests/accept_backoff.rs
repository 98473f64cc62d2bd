//! Out of file descriptors, `accept()` fails until a connection closes.
//! Old code retried at once, for ever: a busy loop on one core that logged
//! a warning per attempt. The registry must back off (5 ms doubling to 1 s)
//! and serve again once descriptors are free. A real process with a low
//! `ulimit -n`, so the limit is its own.

mod common;

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ChildLog, Kind, http, minimal_config, parse_listen_addr};

#[test]
fn accept_errors_back_off_instead_of_spinning() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(&config, minimal_config(&dir.path().join("data"))).unwrap();
    let mut cmd = Command::new("bash");
    cmd.args(["-c", "ulimit -Sn 64 && exec \"$0\" serve \"$1\""])
        .arg(Kind::Wharf.binary())
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("REGISTRY_") {
            cmd.env_remove(&k);
        }
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let stop = || {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    };
    let log = ChildLog::attach(&mut child);
    let line = log.wait_for("listening on", Duration::from_secs(30)).unwrap_or_else(|e| {
        stop();
        panic!("{e}\n{}", log.text())
    });
    let addr = parse_listen_addr(&line).unwrap();

    // More connections than the registry has descriptors for; they sit in the backlog.
    let held: Vec<TcpStream> = (0..120).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    if let Err(e) = log.wait_for("accept failed", Duration::from_secs(20)) {
        stop();
        panic!("the registry never ran out of descriptors: {e}\n{}", log.tail(20));
    }
    // A measurement window, not synchronisation: count the retries in it.
    let count = || log.text().matches("accept failed").count();
    let before = count();
    std::thread::sleep(Duration::from_secs(2));
    let retries = count() - before;
    if retries > 25 {
        stop();
        panic!("{retries} accept retries in 2 s: a busy loop");
    }

    // Descriptors free again: the registry serves.
    drop(held);
    let status = http().get(format!("http://{addr}/v2/")).timeout(Duration::from_secs(20)).send().map(|r| r.status());
    stop();
    let _ = child.wait();
    assert_eq!(status.map(|s| s.as_u16()).ok(), Some(200), "serving again after descriptors were freed");
}
