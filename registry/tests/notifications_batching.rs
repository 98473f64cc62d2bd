//! A backlog is delivered in few requests and removed in bulk: events
//! queued while the receiver is down (one object each) arrive complete, in
//! order per repository, up to 100 to an envelope, and every delivered
//! object leaves the queue.

mod common;
mod notify_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use notify_support::*;

const REPOS: usize = 4;
const PER_REPO: usize = 10;

#[test]
fn a_backlog_goes_out_in_few_requests_and_leaves_the_queue() {
    let dir = tempfile::Builder::new().prefix("wharf-notify-batch.").tempdir().unwrap();
    let port = free_port();
    let yaml = format!(
        "{}notifications:\n  endpoints:\n    - name: bulk\n      url: http://127.0.0.1:{port}/events\n      \
         backoff: 100ms\n      threshold: 100\n      timeout: 2s\n",
        minimal_config(&dir.path().join("data"))
    );
    let reg = RegistryProcess::start(Kind::Wharf, &yaml);
    // Interleaved across repositories, so order per repository is not
    // the queue's order by accident.
    let mut pushed = Vec::new();
    for t in 0..PER_REPO {
        for r in 0..REPOS {
            pushed.push(push_tiny(&reg.addr, &format!("bulk/r{r}"), &format!("t{t:02}"), (r * 100 + t) as u64));
        }
    }
    let total = pushed.len() * 3;

    // The receiver is down: every event waits in the queue, one object each.
    let queue = dir.path().join("data/wharf/notifications/bulk/queue");
    let queued = std::fs::read_dir(&queue)
        .unwrap()
        .filter(|e| !e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(queued, total, "one queued object per event under {}", queue.display());

    let receiver = Receiver::start(port);
    let events = receiver.wait_events(Duration::from_secs(60), |ev| {
        let ids: BTreeSet<&str> = ev.iter().filter_map(|e| e["id"].as_str()).collect();
        ids.len() >= total
    });
    let ids: BTreeSet<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), total, "each event once (by id)");
    for p in &pushed {
        for b in [&p.config, &p.layer, &p.manifest] {
            assert!(
                !find(&events, "push", &b.digest).is_empty(),
                "no push event for {} of {}:{}",
                b.digest,
                p.repo,
                p.tag
            );
        }
    }
    // In order per repository: each image's blobs before its manifest, and
    // the tags in push order.
    let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &events {
        if e["target"]["mediaType"] == MT_MANIFEST {
            tags.entry(e["target"]["repository"].as_str().unwrap().to_string())
                .or_default()
                .push(e["target"]["tag"].as_str().unwrap().to_string());
        }
    }
    let want: Vec<String> = (0..PER_REPO).map(|t| format!("t{t:02}")).collect();
    assert_eq!(tags.len(), REPOS);
    for (repo, got) in &tags {
        assert_eq!(got, &want, "manifest push events of {repo} out of order");
    }
    let at = |digest: &str| events.iter().position(|e| e["target"]["digest"] == digest).unwrap();
    for p in &pushed {
        assert!(at(&p.layer.digest) < at(&p.manifest.digest) && at(&p.config.digest) < at(&p.manifest.digest));
    }
    // 120 events: two envelopes (100 and 20), a third if a listing raced
    // the last pushes' wake-ups; never one request per event.
    let posts = receiver.requests().len();
    assert!(posts <= 3, "{total} events took {posts} requests");

    // Every delivered object is removed (in bulk).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = std::fs::read_dir(&queue).map(|d| d.count()).unwrap_or(0);
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{left} delivered objects still queued");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(reg);
}
