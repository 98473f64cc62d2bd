//! Notifications (issue 16): a real HTTP receiver on loopback gets
//! registry:2's events for what skopeo and a delete did, with the fields of
//! the content; the same as CloudEvents; ignore rules and pull sampling
//! keep events out; a full queue drops its oldest events and says so.

mod common;
mod notify_support;

use std::time::Duration;

use common::*;
use notify_support::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

fn config(root: &std::path::Path, events: &str, endpoint: &str) -> String {
    format!(
        "{}notifications:\n  events: {events}\n  endpoints:\n    - {endpoint}\n",
        minimal_config(&root.join("data"))
    )
}

fn blob_event_ok(e: &Value, action: &str, repo: &str, b: &Blob, addr: &str) {
    assert_eq!(e["target"]["mediaType"], "application/octet-stream", "{e:#}");
    assert_eq!(e["target"]["size"], b.bytes.len(), "{e:#}");
    assert_eq!(e["target"]["length"], b.bytes.len(), "{e:#}");
    assert_eq!(e["target"]["repository"], repo, "{e:#}");
    assert_eq!(e["target"]["url"], format!("http://{addr}/v2/{repo}/blobs/{}", b.digest), "{e:#}");
    assert_eq!(e["action"], action, "{e:#}");
    request_ok(e, addr);
}

fn request_ok(e: &Value, addr: &str) {
    let r = &e["request"];
    assert!(r["id"].as_str().is_some_and(|s| !s.is_empty()), "{e:#}");
    assert!(r["addr"].as_str().is_some_and(|a| a.starts_with("127.0.0.1")), "{e:#}");
    assert_eq!(r["host"], addr, "{e:#}");
    assert!(r["useragent"].as_str().is_some_and(|s| !s.is_empty()), "{e:#}");
    assert!(e["source"]["instanceID"].as_str().is_some_and(|s| !s.is_empty()), "{e:#}");
    assert!(e["source"]["addr"].as_str().is_some_and(|s| !s.is_empty()), "{e:#}");
    assert!(e["id"].as_str().is_some_and(|s| !s.is_empty()) && e["timestamp"].is_string(), "{e:#}");
}

#[test]
fn skopeo_copy_pull_and_delete_send_registry2_events() {
    let dir = tempfile::Builder::new().prefix("wharf-notify.").tempdir().unwrap();
    let receiver = Receiver::start(0);
    let token = dir.path().join("token");
    std::fs::write(&token, "Bearer from-a-file\n").unwrap();
    let endpoint = format!(
        "{{name: hook, url: '{}', headers: {{X-Test: ['yes']}}, headerfiles: {{Authorization: '{}'}}, timeout: 2s, \
         threshold: 3, backoff: 100ms}}",
        receiver.url(),
        token.display()
    );
    let reg = RegistryProcess::start(Kind::Wharf, &config(dir.path(), "{includereferences: true}", &endpoint));
    let img = PlatformImage::generate(&mut Rng::new(16), "linux", "amd64", 2, 2048);
    let layout = dir.path().join("layout");
    img.write_layout(&layout, "v1");

    // Push.
    skopeo_push(&layout, "v1", &reg.addr, "notify/app");
    let events = receiver.wait_events(WAIT, |ev| !find(ev, "push", &img.manifest.digest).is_empty());
    for b in img.blobs() {
        let pushed = find(&events, "push", &b.digest);
        assert_eq!(pushed.len(), 1, "one push event for {}: {events:#?}", b.digest);
        blob_event_ok(pushed[0], "push", "notify/app", b, &reg.addr);
        assert_eq!(pushed[0]["request"]["method"], "PUT", "{:#}", pushed[0]);
    }
    let m = find(&events, "push", &img.manifest.digest)[0];
    assert_eq!(m["target"]["mediaType"], MT_MANIFEST, "{m:#}");
    assert_eq!(m["target"]["size"], img.manifest.bytes.len(), "{m:#}");
    assert_eq!(m["target"]["tag"], "v1", "{m:#}");
    assert_eq!(m["target"]["url"], format!("http://{}/v2/notify/app/manifests/{}", reg.addr, img.manifest.digest));
    let refs: Vec<&str> =
        m["target"]["references"].as_array().unwrap().iter().map(|r| r["digest"].as_str().unwrap()).collect();
    let want: Vec<&str> = img.blobs().iter().map(|b| b.digest.as_str()).collect();
    assert_eq!(refs, want, "includereferences: config and layers, in order: {m:#}");
    request_ok(m, &reg.addr);
    // The envelope and the configured headers, one from a file.
    let first = &receiver.requests()[0];
    assert_eq!(first.header("content-type"), Some(MT_EVENTS));
    assert_eq!(first.header("x-test"), Some("yes"));
    assert_eq!(first.header("authorization"), Some("Bearer from-a-file"));

    // A copy within the registry mounts the blobs into the new repository.
    run_ok(
        skopeo()
            .args(["copy", "--retry-times", "0", "--src-tls-verify=false", "--dest-tls-verify=false"])
            .arg(format!("docker://{}/notify/app:v1", reg.addr))
            .arg(format!("docker://{}/notify/copy:v1", reg.addr)),
        CLIENT_TIMEOUT,
    );
    let events = receiver.wait_events(WAIT, |ev| {
        ev.iter()
            .any(|e| e["action"] == "push" && e["target"]["repository"] == "notify/copy" && e["target"]["tag"] == "v1")
    });
    // skopeo mounts the layers (it reads the config, and uploads it again).
    for b in &img.layers {
        let mounted: Vec<&Value> = find(&events, "mount", &b.digest)
            .into_iter()
            .filter(|e| e["target"]["repository"] == "notify/copy")
            .collect();
        assert_eq!(mounted.len(), 1, "one mount of {} into notify/copy: {events:#?}", b.digest);
        blob_event_ok(mounted[0], "mount", "notify/copy", b, &reg.addr);
        assert_eq!(mounted[0]["target"]["fromRepository"], "notify/app", "{:#}", mounted[0]);
    }
    let config_copy = find(&events, "push", &img.config.digest);
    assert!(config_copy.iter().any(|e| e["target"]["repository"] == "notify/copy"), "{events:#?}");
    // Reading the source of the copy was a pull, by tag.
    let pulls = find(&events, "pull", &img.manifest.digest);
    assert!(
        pulls.iter().any(|p| p["target"]["repository"] == "notify/app" && p["target"]["tag"] == "v1"),
        "{events:#?}"
    );

    // A pull reads the layers: a pull event each.
    let before = events.len();
    skopeo_pull(&reg.addr, "notify/app", "v1", &dir.path().join("pulled"));
    let events = receiver.wait_events(WAIT, |ev| {
        img.layers
            .iter()
            .all(|l| ev[before..].iter().any(|e| e["action"] == "pull" && e["target"]["digest"] == l.digest))
    });
    for l in &img.layers {
        let p = events[before..].iter().find(|e| e["action"] == "pull" && e["target"]["digest"] == l.digest).unwrap();
        blob_event_ok(p, "pull", "notify/app", l, &reg.addr);
        assert_eq!(p["request"]["method"], "GET", "{p:#}");
    }

    // Delete by digest.
    let resp = http()
        .delete(reg.url(&format!("/v2/notify/app/manifests/{}", img.manifest.digest)))
        .header("user-agent", "wharf-test")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let events = receiver.wait_events(WAIT, |ev| !find(ev, "delete", &img.manifest.digest).is_empty());
    let d = find(&events, "delete", &img.manifest.digest)[0];
    assert_eq!(d["target"]["repository"], "notify/app", "{d:#}");
    assert_eq!(d["request"]["method"], "DELETE", "{d:#}");
    assert_eq!(d["request"]["useragent"], "wharf-test", "{d:#}");
    // Nothing was delivered twice here (no failure, no restart).
    let mut ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "duplicate event ids");
}

#[test]
fn cloudevents_carry_the_same_events() {
    let dir = tempfile::Builder::new().prefix("wharf-notify.").tempdir().unwrap();
    let receiver = Receiver::start(0);
    let endpoint = format!("{{name: knative, url: '{}', format: cloudevents, backoff: 100ms}}", receiver.url());
    let reg = RegistryProcess::start(Kind::Wharf, &config(dir.path(), "{}", &endpoint));
    let img = PlatformImage::generate(&mut Rng::new(17), "linux", "amd64", 2, 1024);
    let layout = dir.path().join("layout");
    img.write_layout(&layout, "v1");
    skopeo_push(&layout, "v1", &reg.addr, "notify/ce");
    let resp = http().delete(reg.url(&format!("/v2/notify/ce/manifests/{}", img.manifest.digest))).send().unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let events = receiver.wait_events(WAIT, |ev| {
        ev.iter().any(|e| e["type"] == "wharf.registry.delete" && e["data"]["target"]["digest"] == img.manifest.digest)
    });
    for r in receiver.requests() {
        assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/cloudevents+json")), "{r:?}");
    }
    for e in &events {
        assert_eq!(e["specversion"], "1.0", "{e:#}");
        assert_eq!(e["id"], e["data"]["id"], "{e:#}");
        assert_eq!(e["type"], format!("wharf.registry.{}", e["data"]["action"].as_str().unwrap()), "{e:#}");
        assert!(e["source"].as_str().is_some_and(|s| !s.is_empty()) && e["time"] == e["data"]["timestamp"], "{e:#}");
    }
    let data: Vec<Value> = events.iter().map(|e| e["data"].clone()).collect();
    for b in img.blobs() {
        let pushed = find(&data, "push", &b.digest);
        assert_eq!(pushed.len(), 1, "{data:#?}");
        blob_event_ok(pushed[0], "push", "notify/ce", b, &reg.addr);
    }
    let m = events
        .iter()
        .find(|e| e["type"] == "wharf.registry.push" && e["data"]["target"]["digest"] == img.manifest.digest);
    let m = m.unwrap_or_else(|| panic!("no manifest push: {events:#?}"));
    assert_eq!(m["subject"], "notify/ce:v1", "{m:#}");
    assert_eq!(m["data"]["target"]["mediaType"], MT_MANIFEST, "{m:#}");
}

/// Ignored media types and actions, and pulls sampled at 0, never arrive.
/// Delivery is in order, so once a later marker event arrives, everything
/// queued before it has been sent.
#[test]
fn ignored_media_types_actions_and_unsampled_pulls_never_arrive() {
    let dir = tempfile::Builder::new().prefix("wharf-notify.").tempdir().unwrap();
    let receiver = Receiver::start(0);
    let endpoint = format!(
        "{{name: ci, url: '{}', backoff: 100ms, ignoredmediatypes: [application/octet-stream], \
         ignore: {{actions: [delete]}}}}",
        receiver.url()
    );
    let reg = RegistryProcess::start(Kind::Wharf, &config(dir.path(), "{pullsample: 0}", &endpoint));
    let a = push_tiny(&reg.addr, "notify/ignore", "a", 1);
    // Pulls of the manifest, by tag and by digest, and of a blob.
    for path in [
        "/v2/notify/ignore/manifests/a".to_string(),
        format!("/v2/notify/ignore/manifests/{}", a.manifest.digest),
        format!("/v2/notify/ignore/blobs/{}", a.layer.digest),
    ] {
        let resp = http().get(reg.url(&path)).header("accept", MT_MANIFEST).send().unwrap();
        assert_eq!(resp.status().as_u16(), 200, "GET {path}");
    }
    let resp = http().delete(reg.url("/v2/notify/ignore/manifests/a")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let marker = push_tiny(&reg.addr, "notify/ignore", "marker", 2);
    let events = receiver.wait_events(WAIT, |ev| !find(ev, "push", &marker.manifest.digest).is_empty());
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_string(), e["target"]["digest"].as_str().unwrap_or("").to_string()))
        .collect();
    assert_eq!(
        seen,
        vec![("push".to_string(), a.manifest.digest.clone()), ("push".to_string(), marker.manifest.digest.clone())],
        "only the manifest pushes arrive: blobs (ignored media type), the delete (ignored action) and pulls \
         (pullsample 0) do not"
    );
}

/// A receiver that stays down: past maxpending the oldest events go, the
/// dropped metric counts them, and the newest are delivered once it is up.
#[test]
fn a_full_queue_drops_the_oldest_and_the_metric_says_so() {
    let dir = tempfile::Builder::new().prefix("wharf-notify.").tempdir().unwrap();
    let port = free_port();
    let debug_port = free_port();
    let endpoint = format!(
        "{{name: slow, url: 'http://127.0.0.1:{port}/events', backoff: 50ms, threshold: 1, maxpending: 5, timeout: 1s}}"
    );
    let mut yaml = config(dir.path(), "{}", &endpoint);
    yaml = yaml.replace(
        "http:\n  addr: 127.0.0.1:0\n",
        &format!("http:\n  addr: 127.0.0.1:0\n  debug:\n    addr: 127.0.0.1:{debug_port}\n    prometheus:\n      enabled: true\n"),
    );
    let reg = RegistryProcess::start(Kind::Wharf, &yaml);
    let pushed: Vec<Pushed> = (0..10).map(|i| push_tiny(&reg.addr, "notify/full", &format!("t{i}"), i)).collect();
    // 30 events (two blobs and a manifest each), 5 kept.
    let metrics_url = format!("http://127.0.0.1:{debug_port}/metrics");
    let deadline = std::time::Instant::now() + WAIT;
    let text = loop {
        let text = http().get(&metrics_url).send().unwrap().text().unwrap();
        if metric(&text, "wharf_registry_notifications_dropped_total", "slow") == Some(25.0) {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "dropped never reached 25:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(metric(&text, "wharf_registry_notifications_pending", "slow"), Some(5.0), "{text}");
    assert!(metric(&text, "wharf_registry_notifications_failed_total", "slow").is_some_and(|f| f >= 1.0), "{text}");
    assert!(reg.log.text().contains("dropped the oldest events"), "a log line says so");

    let receiver = Receiver::start(port);
    let last = &pushed[9];
    let events = receiver.wait_events(WAIT, |ev| !find(ev, "push", &last.manifest.digest).is_empty());
    let mut got: Vec<&str> = events.iter().map(|e| e["target"]["digest"].as_str().unwrap()).collect();
    got.dedup();
    let want = vec![
        pushed[8].layer.digest.as_str(),
        pushed[8].manifest.digest.as_str(),
        last.config.digest.as_str(),
        last.layer.digest.as_str(),
        last.manifest.digest.as_str(),
    ];
    assert_eq!(got, want, "the newest five events, in order");
}
