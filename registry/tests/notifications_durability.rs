//! Notifications survive what registry:2's in-memory queue does not: a
//! receiver that is down while 200 images are pushed, then `kill -9` of the
//! registry and a restart. Every push event arrives at least once, in
//! order per repository, duplicates countable by event id. And the queue
//! lives in the registry's storage on S3 too.

mod common;
mod notify_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use notify_support::*;
use serde_json::Value;

const REPOS: usize = 8;
const PER_REPO: usize = 25;

fn endpoint(port: u16) -> String {
    format!(
        "notifications:\n  endpoints:\n    - name: durable\n      url: http://127.0.0.1:{port}/events\n      \
         backoff: 100ms\n      threshold: 2\n      timeout: 2s\n"
    )
}

/// Per repository, the tags of its manifest pushes in order of first arrival.
fn manifest_pushes(events: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events {
        if e["action"] == "push" && e["target"]["mediaType"] == MT_MANIFEST && seen.insert(e["id"].to_string()) {
            let repo = e["target"]["repository"].as_str().unwrap().to_string();
            out.entry(repo).or_default().push(e["target"]["tag"].as_str().unwrap().to_string());
        }
    }
    out
}

#[test]
fn kill_9_and_a_receiver_down_lose_no_push_event() {
    let dir = tempfile::Builder::new().prefix("wharf-notify-durable.").tempdir().unwrap();
    let port = free_port();
    let yaml = format!("{}{}", minimal_config(&dir.path().join("data")), endpoint(port));
    let mut reg = RegistryProcess::start(Kind::Wharf, &yaml);

    // 200 images into 8 repositories, 4 clients at once; each repository's
    // tags are pushed in order by one client.
    let addr = reg.addr.clone();
    let pushed: Vec<Pushed> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|c| {
                let addr = addr.clone();
                s.spawn(move || {
                    let mut out = Vec::new();
                    for r in (c..REPOS).step_by(4) {
                        for t in 0..PER_REPO {
                            out.push(push_tiny(
                                &addr,
                                &format!("durable/r{r}"),
                                &format!("t{t:02}"),
                                (r * 1000 + t) as u64,
                            ));
                        }
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(pushed.len(), REPOS * PER_REPO);

    // Every push was answered; the receiver has been down all along.
    reg.kill();
    let reg2 = RegistryProcess::start(Kind::Wharf, &yaml);
    let receiver = Receiver::start(port);
    let want_manifests: BTreeSet<String> = pushed.iter().map(|p| p.manifest.digest.clone()).collect();
    let events = receiver.wait_events(Duration::from_secs(180), |ev| {
        let got: BTreeSet<&str> =
            ev.iter().filter(|e| e["action"] == "push").filter_map(|e| e["target"]["digest"].as_str()).collect();
        want_manifests.iter().all(|d| got.contains(d.as_str()))
    });
    drop(reg2);

    // Every blob push too.
    let got: BTreeSet<&str> =
        events.iter().filter(|e| e["action"] == "push").filter_map(|e| e["target"]["digest"].as_str()).collect();
    for p in &pushed {
        for b in [&p.config, &p.layer] {
            assert!(got.contains(b.digest.as_str()), "no push event for blob {} of {}:{}", b.digest, p.repo, p.tag);
        }
    }
    // In order per repository.
    let order = manifest_pushes(&events);
    assert_eq!(order.len(), REPOS);
    let tags: Vec<String> = (0..PER_REPO).map(|t| format!("t{t:02}")).collect();
    for (repo, got) in &order {
        assert_eq!(got, &tags, "manifest push events of {repo} out of order");
    }
    // Duplicates are the same event sent again: same id, same content.
    let mut by_id: BTreeMap<&str, &Value> = BTreeMap::new();
    let mut duplicates = 0;
    for e in &events {
        let id = e["id"].as_str().unwrap();
        if let Some(first) = by_id.insert(id, e) {
            assert_eq!(first, e, "two different events share id {id}");
            duplicates += 1;
        }
    }
    eprintln!("{} events received, {} distinct, {duplicates} duplicates", events.len(), by_id.len());
    assert_eq!(by_id.len(), REPOS * PER_REPO * 3, "each push made exactly one event (blobs and manifest)");
}

/// Two replicas on one bucket queue into the same place; whichever holds
/// the endpoint's lease delivers the events of both.
#[test]
fn events_queue_and_deliver_on_s3() {
    let s3 = common::s3::S3Server::start("notify");
    let port = free_port();
    let yaml = format!("{}{}", s3.registry_config("notify", "/root", "", "s3-notify-secret"), endpoint(port));
    let reg = RegistryProcess::start(Kind::Wharf, &yaml);
    let reg2 = RegistryProcess::start(Kind::Wharf, &yaml);
    let mut pushed: Vec<Pushed> = (0..3).map(|i| push_tiny(&reg.addr, "notify/s3", &format!("v{i}"), i)).collect();
    pushed.extend((0..3).map(|i| push_tiny(&reg2.addr, "notify/s3b", &format!("v{i}"), 10 + i)));

    // Queued as objects in the bucket while the receiver is down.
    let queue = s3.bucket_dir("notify").join("root/wharf/notifications/durable/queue");
    let queued = std::fs::read_dir(&queue).map(|d| d.count()).unwrap_or(0);
    assert!(queued >= 1, "no queued batch under {}", queue.display());

    let receiver = Receiver::start(port);
    let events = receiver.wait_events(Duration::from_secs(60), |ev| {
        pushed.iter().all(|p| !find(ev, "push", &p.manifest.digest).is_empty())
    });
    let order = manifest_pushes(&events);
    assert_eq!(order["notify/s3"], vec!["v0", "v1", "v2"]);
    assert_eq!(order["notify/s3b"], vec!["v0", "v1", "v2"], "the other replica's events, in order");
    // Delivered batches leave the bucket.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&queue).map(|d| d.count()).unwrap_or(0) > 0 {
        assert!(std::time::Instant::now() < deadline, "the queue in the bucket did not empty");
        std::thread::sleep(Duration::from_millis(100));
    }
}
