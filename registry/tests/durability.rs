//! Commits are durable (issue 12 §5, issue 18). `kill -9` keeps the page
//! cache, so a crash test cannot see a missing fsync: these tests run the
//! filesystem backend with a [`Syncer`] that records every flush, and check
//! that a blob's bytes and its directory entry are flushed before the
//! registry makes it visible (the repository link) and answers. They also
//! check that a blob or manifest damaged by a power loss is replaced when it
//! is pushed again.

mod inproc;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use bytes::Bytes;
use futures::StreamExt;

use inproc::*;
use wharf_registry::registry::digest::Digest;
use wharf_registry::registry::reference::{Reference, RepoName};
use wharf_registry::registry::{Options, Registry};
use wharf_registry::storage::fs::Filesystem;
use wharf_registry::storage::sync::{Fsync, Syncer};

/// One flush, with what was visible on disk when it happened.
#[derive(Debug, Clone)]
struct Event {
    dir: bool,
    path: PathBuf,
    /// The size of a flushed file.
    size: u64,
    /// Which watched paths existed at that moment.
    visible: Vec<bool>,
}

/// Flushes for real and records each flush.
struct Recorder {
    watched: Vec<PathBuf>,
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    fn record(&self, dir: bool, path: &Path, size: u64) {
        let visible = self.watched.iter().map(|p| p.exists()).collect();
        self.events.lock().unwrap().push(Event { dir, path: path.to_path_buf(), size, visible });
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
}

impl Syncer for Recorder {
    fn sync_file(&self, file: &File, path: &Path) -> io::Result<()> {
        Fsync.sync_file(file, path)?;
        self.record(false, path, file.metadata()?.len());
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        Fsync.sync_dir(dir)?;
        self.record(true, dir, 0);
        Ok(())
    }
}

fn hex_of(d: &Digest) -> String {
    d.to_string().trim_start_matches("sha256:").to_string()
}

fn stream(data: Vec<u8>) -> wharf_registry::storage::ByteStream {
    futures::stream::iter(data.chunks(300_000).map(|c| Ok(Bytes::copy_from_slice(c))).collect::<Vec<_>>()).boxed()
}

/// Index of the first event matching `f`, with a readable failure.
fn find(events: &[Event], what: &str, f: impl Fn(&Event) -> bool) -> usize {
    events.iter().position(f).unwrap_or_else(|| panic!("no flush of {what}; flushes: {events:#?}"))
}

#[tokio::test]
async fn a_blob_is_flushed_before_it_becomes_visible() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let digest = Digest::sha256_of(&data);
    let hex = hex_of(&digest);
    let v2 = root.join("docker/registry/v2");
    let blob = v2.join(format!("blobs/sha256/{}/{hex}/data", &hex[..2]));
    let link = v2.join(format!("repositories/r/_layers/sha256/{hex}/link"));
    let rec = Arc::new(Recorder { watched: vec![blob.clone(), link.clone()], events: Mutex::new(Vec::new()) });
    let backend = Arc::new(Filesystem::with_syncer(&root, rec.clone()));
    let reg = Registry::new(backend, Options { upload_secret: b"k".to_vec(), ..Default::default() });
    let repo = RepoName::parse("r").unwrap();

    let s = reg.upload_start(&repo).await.unwrap();
    reg.upload_append(&repo, &s.id, None, stream(data.clone())).await.unwrap();
    // Session state is scratch: nothing is flushed before the commit.
    let before_commit = rec.events().len();
    assert_eq!(before_commit, 0, "flushes before the commit: {:#?}", rec.events());
    reg.upload_complete(&repo, &s.id, &digest, None, None).await.unwrap();
    let events = rec.events()[before_commit..].to_vec();
    const BLOB: usize = 0;
    const LINK: usize = 1;

    // 1. The uploaded bytes, all of them, are flushed before the blob has its name.
    let file = find(&events, "the blob's bytes", |e| !e.dir && e.size == data.len() as u64 && !e.visible[BLOB]);
    // 2. Directories created for the blob are flushed in their parents before the rename.
    let created = find(&events, "the new blob directory's parent", |e| {
        e.dir && e.path == blob.parent().unwrap().parent().unwrap() && !e.visible[BLOB]
    });
    // 3. The rename itself is flushed (the blob directory) before the
    //    repository link makes the blob visible to clients.
    let entry = find(&events, "the blob's directory entry", |e| {
        e.dir && e.path == blob.parent().unwrap() && e.visible[BLOB] && !e.visible[LINK]
    });
    // 4. The link is flushed before it gets its name, and its directory after.
    let link_file = find(&events, "the link's bytes", |e| {
        !e.dir && e.path.parent() == link.parent() && e.size == digest.to_string().len() as u64 && !e.visible[LINK]
    });
    let link_entry = find(&events, "the link's directory entry", |e| e.dir && e.path == link.parent().unwrap());
    assert!(file < entry && created < entry, "flush order: {events:#?}");
    assert!(entry < link_file && link_file < link_entry, "flush order: {events:#?}");
    assert!(events[link_entry].visible[LINK]);
    assert_eq!(std::fs::read(&blob).unwrap(), data);
}

#[tokio::test]
async fn a_manifest_and_its_tag_are_flushed_before_the_put_returns() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let rec = Arc::new(Recorder { watched: Vec::new(), events: Mutex::new(Vec::new()) });
    let reg = Registry::new(
        Arc::new(Filesystem::with_syncer(&root, rec.clone())),
        Options { upload_secret: b"k".to_vec(), ..Default::default() },
    );
    let repo = RepoName::parse("r").unwrap();
    let body = Bytes::from_static(
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
    );
    let put = reg.manifest_put(&repo, &Reference::parse("v1").unwrap(), Some(OCI_INDEX), body.clone()).await.unwrap();
    let hex = hex_of(&put.digest);
    let v2 = root.join("docker/registry/v2");
    let r = v2.join("repositories/r/_manifests");
    let events = rec.events();
    for (what, path, size) in [
        ("manifest", v2.join(format!("blobs/sha256/{}/{hex}/data", &hex[..2])), body.len()),
        ("revision link", r.join(format!("revisions/sha256/{hex}/link")), 71),
        ("tag index link", r.join(format!("tags/v1/index/sha256/{hex}/link")), 71),
        ("tag link", r.join("tags/v1/current/link"), 71),
    ] {
        let parent = path.parent().unwrap();
        let file = find(&events, what, |e| !e.dir && e.path.parent() == Some(parent) && e.size == size as u64);
        let entry = find(&events, &format!("{what}'s directory"), |e| e.dir && e.path == parent);
        assert!(file < entry, "{what}: flush order {events:#?}");
        assert!(path.exists(), "{what}");
    }
}

/// Simulates what a power loss did before commits were flushed: the blob's
/// name exists but its bytes are short.
fn damage(path: &Path, keep: usize) {
    let data = std::fs::read(path).unwrap();
    std::fs::write(path, &data[..keep]).unwrap();
}

#[tokio::test]
async fn a_damaged_blob_is_replaced_by_the_next_push() {
    let reg = Reg::new();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 249) as u8).collect();
    let d = reg.push_blob("r", &data).await;
    let hex = d.trim_start_matches("sha256:");
    let path = reg.dir.path().join(format!("data/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]));
    for keep in [0, 1000] {
        damage(&path, keep);
        // Pushed again, monolithically and then in a chunked session.
        reg.push_blob("r", &data).await;
        assert_eq!(std::fs::read(&path).unwrap(), data, "monolithic push after truncation to {keep}");
        damage(&path, keep);
        let r = reg.req(Method::POST, "/v2/r/blobs/uploads/", &[], vec![]).await;
        let loc = r.header("location").trim_start_matches("http://reg.test:5000").to_string();
        let r = reg.req(Method::PATCH, &loc, &[], data.clone()).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        let loc = r.header("location").trim_start_matches("http://reg.test:5000").to_string();
        let r = reg.req(Method::PUT, &format!("{loc}&digest={d}"), &[], vec![]).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(reg.get(&format!("/v2/r/blobs/{d}")).await.body, data, "chunked push after truncation to {keep}");
    }
}

#[tokio::test]
async fn a_damaged_manifest_is_replaced_by_the_next_push() {
    let reg = Reg::new();
    let (d, manifest) = reg.push_image("r", "v1", "s").await;
    let hex = d.trim_start_matches("sha256:");
    let path = reg.dir.path().join(format!("data/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]));
    // Same size, zeroed (XFS after a crash), then truncated (ext4).
    for damaged in [vec![0u8; manifest.len()], Vec::new()] {
        std::fs::write(&path, &damaged).unwrap();
        let r = reg.req(Method::PUT, "/v2/r/manifests/v1", &[("content-type", OCI_MANIFEST)], manifest.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(std::fs::read(&path).unwrap(), manifest);
        let r = reg.get("/v2/r/manifests/v1").await;
        assert_eq!((r.status, r.body.clone()), (StatusCode::OK, manifest.clone()));
    }
}

#[tokio::test]
async fn a_tag_cut_short_by_a_crash_is_not_listed() {
    let reg = Reg::new();
    let (d, _) = reg.push_image("r", "v1", "s").await;
    // A tag PUT killed after its index entry, before its `current` link
    // (the order registry:2 writes them in): the directory exists, the tag
    // names nothing.
    let hex = d.trim_start_matches("sha256:");
    let ghost =
        reg.dir.path().join(format!("data/docker/registry/v2/repositories/r/_manifests/tags/ghost/index/sha256/{hex}"));
    std::fs::create_dir_all(&ghost).unwrap();
    std::fs::write(ghost.join("link"), &d).unwrap();
    let r = reg.get("/v2/r/tags/list").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["v1"]), "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(reg.get("/v2/r/manifests/ghost").await.status, StatusCode::NOT_FOUND);
}
