//! The mirror's cache against real upstreams on 127.0.0.1: one upstream GET
//! for many cold pulls (on a filesystem and on S3), the size bound, and the
//! cache's storage going down. Upstream requests are counted from
//! distribution's access log; nothing sleeps.

mod common;
mod mirror_support;

use std::time::Duration;

use serde_json::json;

use common::*;
use mirror_support::*;

#[test]
fn twenty_concurrent_cold_pulls_of_a_50_mib_layer_make_one_upstream_get() {
    twenty_cold_pulls(None);
}

/// The same with the mirror's cache on S3 (versitygw): readers take the
/// bytes from the flight's memory, never from an object still being written.
#[test]
fn twenty_concurrent_cold_pulls_with_the_cache_on_s3() {
    let s3 = common::s3::S3Server::start("mirror-cache");
    twenty_cold_pulls(Some(&s3));
}

fn twenty_cold_pulls(s3: Option<&common::s3::S3Server>) {
    let dir = tempfile::tempdir().unwrap();
    let d = distribution(&dir.path().join("up"));
    let mut rng = Rng::new(50);
    let layer = Blob::new(MT_LAYER_GZIP, rng.bytes(50 << 20));
    let (blobs, manifest) = {
        let config = Blob::new(MT_CONFIG, br#"{"architecture":"amd64","os":"linux"}"#.to_vec());
        let m = json!({"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": config.descriptor(), "layers": [layer.descriptor()]});
        (vec![config, layer.clone()], Blob::new(MT_MANIFEST, serde_json::to_vec(&m).unwrap()))
    };
    Session::new(&d.url(""), None).push("big/layer", "v1", &blobs.iter().collect::<Vec<_>>(), &manifest);
    let proxy = format!("proxy:\n  remoteurl: {}\n", d.url(""));
    let mirror = match s3 {
        None => wharf(&dir.path().join("mirror"), &proxy, 200).0,
        Some(s3) => RegistryProcess::start(Kind::Wharf, &(s3.registry_config("mirror-cache", "/", "", "m") + &proxy)),
    };

    let path = format!("/v2/big/layer/blobs/{}", layer.digest);
    let url = mirror.url(&path);
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let r = http().get(&url).send().unwrap();
                let status = r.status().as_u16();
                let len = header(&r, "content-length");
                (status, len, sha256_digest(&r.bytes().unwrap()))
            })
        })
        .collect();
    for t in threads {
        let (status, len, digest) = t.join().unwrap();
        assert_eq!(status, 200);
        assert_eq!(len, (50u64 << 20).to_string());
        assert_eq!(digest, layer.digest, "every client got the whole layer");
    }
    assert_eq!(access_log_count(&d, "GET", &path), 1, "exactly one upstream GET for 20 cold pulls");
    // Warm: served from the cache.
    let r = http().get(&url).send().unwrap();
    assert_eq!(sha256_digest(&r.bytes().unwrap()), layer.digest);
    // A range of a cached blob.
    let r = http().get(&url).header("range", "bytes=10-19").send().unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(r.bytes().unwrap().as_ref(), &layer.bytes[10..20]);
    assert_eq!(access_log_count(&d, "GET", &path), 1);
}

#[test]
fn the_size_bound_evicts_the_least_recently_used_blob_and_refetches_it_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let d = distribution(&dir.path().join("up"));
    let mut rng = Rng::new(9);
    let blobs: Vec<Blob> =
        [2 << 20, 2 << 20, 64 << 10].iter().map(|n| Blob::new(MT_LAYER_GZIP, rng.bytes(*n))).collect();
    let mut up = Session::new(&d.url(""), None);
    for (i, b) in blobs.iter().enumerate() {
        let config = Blob::new(MT_CONFIG, format!("{{\"n\":{i}}}").into_bytes());
        let m = json!({"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": config.descriptor(), "layers": [b.descriptor()]});
        up.push(&format!("bound/r{i}"), "v1", &[&config, b], &Blob::new(MT_MANIFEST, serde_json::to_vec(&m).unwrap()));
    }
    let root = dir.path().join("mirror");
    let (mirror, _) = wharf(&root, &format!("proxy:\n  remoteurl: {}\n  maxsize: 3Mi\n", d.url("")), 200);
    let data = |b: &Blob| root.join(format!("docker/registry/v2/blobs/sha256/{}/{}/data", &b.hex()[..2], b.hex()));
    let pull = |i: usize| {
        let r = http().get(mirror.url(&format!("/v2/bound/r{i}/blobs/{}", blobs[i].digest))).send().unwrap();
        assert_eq!(sha256_digest(&r.bytes().unwrap()), blobs[i].digest);
    };
    // The client has the last byte before the mirror's commit (flushed to disk) is done.
    let committed = |b: &Blob| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !data(b).exists() {
            assert!(std::time::Instant::now() < deadline, "{} never committed to the cache", b.digest);
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    pull(0);
    committed(&blobs[0]);
    pull(1);
    committed(&blobs[1]);
    // 4 MiB cached, 3 MiB allowed: the next fetch first evicts the least recently used blob.
    pull(2);
    assert!(!data(&blobs[0]).exists(), "the least recently used blob was evicted");
    committed(&blobs[2]);
    assert!(data(&blobs[1]).exists());
    // Evicted content is fetched again on demand.
    pull(0);
    let path = format!("/v2/bound/r0/blobs/{}", blobs[0].digest);
    assert_eq!(access_log_count(&d, "GET", &path), 2);
}

/// With the cache's storage down, a cold pull is answered 503 `UNAVAILABLE`
/// with Retry-After (the spec's code for a store that may come back), never
/// a 500; once S3 is back the same pull succeeds and fills the cache.
#[test]
fn a_cold_pull_while_the_caches_s3_is_down_is_503_then_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let d = distribution(&dir.path().join("up"));
    let (blobs, manifest) = image(60, 256 << 10);
    Session::new(&d.url(""), None).push("lib/app", "v1", &blobs.iter().collect::<Vec<_>>(), &manifest);
    let mut s3 = common::s3::S3Server::start("cache-down");
    let proxy = format!("proxy:\n  remoteurl: {}\n", d.url(""));
    let mirror = RegistryProcess::start(Kind::Wharf, &(s3.registry_config("cache-down", "/", "", "m") + &proxy));
    let layer = &blobs[1];
    let url = mirror.url(&format!("/v2/lib/app/blobs/{}", layer.digest));

    s3.stop();
    let r = http().get(&url).send().unwrap();
    assert_eq!(r.status().as_u16(), 503, "storage down is 503, not 500");
    assert_eq!(header(&r, "retry-after"), "5");
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE", "{body}");

    s3.restart();
    let r = http().get(&url).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(sha256_digest(&r.bytes().unwrap()), layer.digest);
}
