//! wharf-registry on a real S3 server (versitygw): three replicas sharing one
//! bucket and one `http.secret` behave as one registry. An upload whose
//! every request lands on another replica completes with the right digest
//! (1 MiB chunks, smaller than S3's 5 MiB part minimum, included); real
//! clients push and pull through a balancer that spreads connections over
//! the replicas; and readiness says why when the store cannot be used.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::s3::S3Server;
use common::*;

const BUCKET: &str = "registry";
const SECRET: &str = "one-secret-for-every-replica";

fn replica(s3: &S3Server, extra: &str) -> RegistryProcess {
    let mut config = s3.registry_config(BUCKET, "/wharf", "    chunksize: 5242880\n", SECRET);
    config.push_str(extra);
    RegistryProcess::start(Kind::Wharf, &config)
}

fn location(resp: &reqwest::blocking::Response) -> String {
    let loc = header(resp, "location");
    // Relative or absolute: keep the path and query.
    match loc.find("/v2/") {
        Some(at) => loc[at..].to_string(),
        None => panic!("no /v2/ in Location {loc:?}"),
    }
}

#[test]
fn every_chunk_on_another_replica_completes_with_the_right_digest() {
    let s3 = S3Server::start(BUCKET);
    let replicas = [replica(&s3, ""), replica(&s3, ""), replica(&s3, "")];
    let client = http();
    let mut rng = Rng::new(11);
    // 1 MiB chunks (what clients send) and one of 6 MiB, which fills a
    // part and leaves a remainder: 14 MiB + 77 bytes, over three parts.
    let sizes = [1 << 20, 1 << 20, 6 << 20, 1 << 20, 1 << 20, 1 << 20, 1 << 20, (2 << 20) + 77];
    let chunks: Vec<Vec<u8>> = sizes.iter().map(|&n| rng.bytes(n)).collect();
    let whole = chunks.concat();
    let digest = sha256_digest(&whole);

    let resp = client.post(replicas[0].url("/v2/team/app/blobs/uploads/")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 202, "{:?}", resp.text());
    let mut next = location(&resp);
    let mut offset = 0usize;
    for (i, chunk) in chunks.iter().enumerate() {
        let r = &replicas[(i + 1) % 3];
        let resp = client
            .patch(r.url(&next))
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{}-{}", offset, offset + chunk.len() - 1))
            .body(chunk.clone())
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202, "chunk {i} on replica {}: {:?}", (i + 1) % 3, resp.text());
        offset += chunk.len();
        assert_eq!(header(&resp, "range"), format!("0-{}", offset - 1), "chunk {i}");
        next = location(&resp);
        // Any replica reports the same progress.
        let status = client.get(replicas[(i + 2) % 3].url(&next)).send().unwrap();
        assert_eq!(status.status().as_u16(), 204);
        assert_eq!(header(&status, "range"), format!("0-{}", offset - 1));
    }
    // A chunk that does not continue the upload is refused by any replica.
    let stale = client.patch(replicas[2].url(&next)).header("content-range", "0-9").body(vec![0u8; 10]).send().unwrap();
    assert_eq!(stale.status().as_u16(), 416);

    let sep = if next.contains('?') { '&' } else { '?' };
    let resp = client.put(replicas[1].url(&format!("{next}{sep}digest={digest}"))).send().unwrap();
    assert_eq!(resp.status().as_u16(), 201, "{:?}", resp.text());
    for r in &replicas {
        let got = client.get(r.url(&format!("/v2/team/app/blobs/{digest}"))).send().unwrap();
        assert_eq!(got.status().as_u16(), 200);
        assert_eq!(sha256_digest(&got.bytes().unwrap()), digest);
    }
    // The bucket holds the blob where distribution's s3 driver puts it, and
    // nothing of the session is left.
    let hex = digest.trim_start_matches("sha256:");
    let blob = s3.bucket_dir(BUCKET).join(format!("wharf/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]));
    assert_eq!(std::fs::metadata(&blob).map(|m| m.len()).ok(), Some(whole.len() as u64), "{}", blob.display());
    let uploads = s3.bucket_dir(BUCKET).join("wharf/docker/registry/v2/repositories/team/app/_uploads");
    let left: Vec<_> = std::fs::read_dir(&uploads).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "upload session left behind: {left:?}");
}

#[test]
fn a_wrong_digest_commits_nothing_and_a_cancelled_session_is_gone_everywhere() {
    let s3 = S3Server::start(BUCKET);
    let (a, b) = (replica(&s3, ""), replica(&s3, ""));
    let client = http();
    let data = Rng::new(3).bytes(7 << 20);
    let resp = client.post(a.url("/v2/r/blobs/uploads/")).send().unwrap();
    let next = location(&resp);
    let resp = client.patch(b.url(&next)).body(data.clone()).send().unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let next = location(&resp);
    let wrong = sha256_digest(b"something else");
    let sep = if next.contains('?') { '&' } else { '?' };
    let resp = client.put(a.url(&format!("{next}{sep}digest={wrong}"))).send().unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().unwrap().contains("DIGEST_INVALID"));
    let right = sha256_digest(&data);
    assert_eq!(client.head(b.url(&format!("/v2/r/blobs/{right}"))).send().unwrap().status().as_u16(), 404);
    assert_eq!(client.head(b.url(&format!("/v2/r/blobs/{wrong}"))).send().unwrap().status().as_u16(), 404);

    let resp = client.post(b.url("/v2/r/blobs/uploads/")).send().unwrap();
    let next = location(&resp);
    assert_eq!(client.delete(a.url(&next)).send().unwrap().status().as_u16(), 204);
    assert_eq!(client.get(b.url(&next)).send().unwrap().status().as_u16(), 404);
}

/// Spreads connections over `backends` in turn: a client's parallel
/// requests (skopeo pushes layers at once) land on different replicas.
struct Balancer {
    pub addr: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Balancer {
    fn start(backends: Vec<String>) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let turn = Arc::new(AtomicUsize::new(0));
        let s = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let backend = &backends[turn.fetch_add(1, Ordering::Relaxed) % backends.len()];
                let Ok(server) = TcpStream::connect(backend) else { continue };
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Balancer { addr, stop }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
    }
}

#[test]
fn real_clients_push_and_pull_through_three_replicas() {
    let s3 = S3Server::start(BUCKET);
    let replicas = [replica(&s3, ""), replica(&s3, ""), replica(&s3, "")];
    let lb = Balancer::start(replicas.iter().map(|r| r.addr.clone()).collect());
    let work = tempfile::tempdir().unwrap();
    // Three layers of 6 MiB each: more than one S3 part per layer.
    let image = MultiArchImage::generate(21, 3, 6 << 20);
    let layout = work.path().join("layout");
    image.write_layout(&layout, "v1");
    skopeo_push(&layout, "v1", &lb.addr, "team/app");
    // crane pulls the amd64 image through the balancer, skopeo everything.
    let out = work.path().join("pulled");
    skopeo_pull(&lb.addr, "team/app", "v1", &out);
    let (_, pulled) = read_layout(&out, Some("v1"));
    for blob in image.all_blobs() {
        assert!(pulled.contains(&blob.digest), "skopeo did not pull {}", blob.digest);
    }
    let tar = work.path().join("img.tar");
    run_ok(
        crane()
            .args(["pull", "--insecure", "--platform", "linux/amd64", &format!("{}/team/app:v1", lb.addr)])
            .arg(&tar),
        CLIENT_TIMEOUT,
    );
    assert!(std::fs::metadata(&tar).unwrap().len() > 18 << 20);
    // containerd pulls from a third replica directly.
    let ctrd = Containerd::start();
    let reference = format!("{}/team/app:v1", replicas[2].addr);
    run_ok(ctrd.ctr("s3").args(["images", "pull", "--plain-http", "--all-platforms", &reference]), CLIENT_TIMEOUT);
    // The push really spread: skopeo's parallel layer uploads went to at
    // least two of the replicas behind the balancer (the third is pulled from
    // directly above, so a GET there proves nothing).
    let uploading = replicas
        .iter()
        .filter(|r| {
            r.log
                .text()
                .lines()
                .any(|l| (l.contains("method=PATCH") || l.contains("method=PUT")) && l.contains("status=20"))
        })
        .count();
    assert!(uploading >= 2, "only {uploading} replica(s) took part in the push");
}

/// The debug listener's address, from its log line.
fn debug_addr(p: &RegistryProcess) -> String {
    let line = p.log.text().lines().find(|l| l.contains("debug server listening")).map(str::to_string);
    let line = line.unwrap_or_else(|| panic!("no debug listener line:\n{}", p.log.text()));
    line.split("addr=").nth(1).unwrap().split_whitespace().next().unwrap().to_string()
}

/// `/debug/ready`'s status and body once it has settled on `want`.
fn ready_becomes(addr: &str, want: u16) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = http().get(format!("http://{addr}/debug/ready")).send().unwrap();
        let status = r.status().as_u16();
        let body = r.text().unwrap();
        // The first check may still be under way.
        if status == want && !body.contains("not been checked yet") {
            return body;
        }
        assert!(std::time::Instant::now() < deadline, "/debug/ready stayed {status}: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn readiness_names_what_is_wrong_with_the_store_and_recovers() {
    let debug = "  debug:\n    addr: 127.0.0.1:0\n";
    let mut s3 = S3Server::start(BUCKET);
    // A missing bucket.
    let config = s3.registry_config("no-such-bucket", "/", "", SECRET) + debug;
    let p = RegistryProcess::start(Kind::Wharf, &config);
    let body = ready_becomes(&debug_addr(&p), 503);
    assert!(body.contains("no-such-bucket") && body.contains("does not exist"), "{body}");
    assert!(p.log.text().contains("not ready"), "the log says it too");
    drop(p);
    // Wrong credentials.
    let config = s3.registry_config(BUCKET, "/", "", SECRET).replace(common::s3::SECRET, "not-the-secret") + debug;
    let p = RegistryProcess::start(Kind::Wharf, &config);
    let body = ready_becomes(&debug_addr(&p), 503);
    assert!(body.contains("credentials") || body.contains("403") || body.contains("Signature"), "{body}");
    drop(p);
    // The store is down at start-up: the registry starts, unready, and
    // becomes ready once the store is back.
    s3.stop();
    let config = s3.registry_config(BUCKET, "/", "", SECRET) + debug;
    let p = RegistryProcess::start(Kind::Wharf, &config);
    let addr = debug_addr(&p);
    let body = ready_becomes(&addr, 503);
    assert!(body.contains(&format!("127.0.0.1:{}", s3.port)), "{body}");
    s3.restart();
    assert_eq!(ready_becomes(&addr, 200), "ok\n");
}

#[test]
fn s3_down_mid_push_is_a_503_and_the_retry_succeeds() {
    let mut s3 = S3Server::start(BUCKET);
    let reg = replica(&s3, "");
    let client = http();
    let data = Rng::new(5).bytes(12 << 20);
    let (first, second) = data.split_at(6 << 20);
    let resp = client.post(reg.url("/v2/r/blobs/uploads/")).send().unwrap();
    let next = location(&resp);
    let resp = client
        .patch(reg.url(&next))
        .header("content-range", format!("0-{}", first.len() - 1))
        .body(first.to_vec())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let next = location(&resp);
    s3.stop();
    let end = data.len() - 1;
    let resp = client
        .patch(reg.url(&next))
        .header("content-range", format!("{}-{end}", first.len()))
        .body(second.to_vec())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let text = resp.text().unwrap();
    assert!(text.contains("UNAVAILABLE") && text.contains("retry"), "{text}");
    s3.restart();
    // The session is where it was before the failed chunk.
    let status = client.get(reg.url(&next)).send().unwrap();
    assert_eq!(header(&status, "range"), format!("0-{}", first.len() - 1));
    let resp = client
        .patch(reg.url(&next))
        .header("content-range", format!("{}-{end}", first.len()))
        .body(second.to_vec())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202, "{:?}", resp.text());
    let next = location(&resp);
    let digest = sha256_digest(&data);
    let sep = if next.contains('?') { '&' } else { '?' };
    assert_eq!(client.put(reg.url(&format!("{next}{sep}digest={digest}"))).send().unwrap().status().as_u16(), 201);
    let got = client.get(reg.url(&format!("/v2/r/blobs/{digest}"))).send().unwrap().bytes().unwrap();
    assert_eq!(sha256_digest(&got), digest);
}

#[test]
fn blob_gets_redirect_to_the_store_unless_disabled_and_heads_never_do() {
    let s3 = S3Server::start(BUCKET);
    let config = s3.registry_config(BUCKET, "/", "", SECRET).replace("  redirect:\n    disable: true\n", "");
    let reg = RegistryProcess::start(Kind::Wharf, &config);
    let data = Rng::new(8).bytes(3 << 20);
    let digest = sha256_digest(&data);
    let client = http();
    let resp =
        client.post(reg.url(&format!("/v2/r/blobs/uploads/?digest={digest}"))).body(data.clone()).send().unwrap();
    assert_eq!(resp.status().as_u16(), 201, "{:?}", resp.text());
    let no_follow =
        reqwest::blocking::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = no_follow.get(reg.url(&format!("/v2/r/blobs/{digest}"))).send().unwrap();
    assert_eq!(resp.status().as_u16(), 307);
    let to = header(&resp, "location");
    assert!(to.starts_with(&s3.endpoint()) && to.contains("X-Amz-Signature"), "{to}");
    let got = no_follow.get(&to).send().unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(sha256_digest(&got.bytes().unwrap()), digest, "the presigned URL serves the blob");
    let head = no_follow.head(reg.url(&format!("/v2/r/blobs/{digest}"))).send().unwrap();
    assert_eq!(head.status().as_u16(), 200, "HEAD is answered here");
    assert_eq!(header(&head, "content-length"), data.len().to_string());
    // An unknown blob is a 404 here, not a redirect to a missing object.
    let missing = sha256_digest(b"missing");
    assert_eq!(no_follow.get(reg.url(&format!("/v2/r/blobs/{missing}"))).send().unwrap().status().as_u16(), 404);
}

/// Follows `Link: <...>; rel="next"` pages of a list endpoint, `n` at a time.
fn all_pages(reg: &RegistryProcess, first: &str, field: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = Some(first.to_string());
    let mut pages = 0;
    while let Some(path) = next.take() {
        pages += 1;
        assert!(pages < 100, "too many pages");
        let resp = http().get(reg.url(&path)).send().unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let link = header(&resp, "link");
        let v: serde_json::Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
        out.extend(v[field].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()));
        if !link.is_empty() {
            let at = link.find("</v2/").map(|i| i + 1).unwrap_or_else(|| panic!("{link}"));
            next = Some(link[at..].split('>').next().unwrap().to_string());
        }
    }
    out
}

#[test]
fn catalog_and_tag_lists_see_past_s3s_1000_key_pages() {
    let shm = std::path::Path::new("/dev/shm");
    let s3 = if shm.is_dir() { S3Server::start_in(BUCKET, shm) } else { S3Server::start(BUCKET) };
    let digest = sha256_digest(b"manifest");
    let repos = s3.bucket_dir(BUCKET).join("wharf/docker/registry/v2/repositories");
    // Written straight into the bucket's directory: 1,100 repositories and
    // one with 1,200 tags, as distribution would lay them out.
    let link = |dir: std::path::PathBuf| {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("link"), &digest).unwrap();
    };
    for i in 0..1_100 {
        link(repos.join(format!("team/r{i:04}/_manifests/tags/v1/current")));
    }
    for i in 0..1_200 {
        link(repos.join(format!("many/_manifests/tags/t{i:04}/current")));
    }
    let reg = replica(&s3, "");
    let names = all_pages(&reg, "/v2/_catalog?n=1000", "repositories");
    assert_eq!(names.len(), 1_101, "every repository across pages");
    assert_eq!(names.first().map(String::as_str), Some("many"));
    assert_eq!(names.last().map(String::as_str), Some("team/r1099"));
    let tags = all_pages(&reg, "/v2/many/tags/list", "tags");
    assert_eq!(tags.len(), 1_200, "every tag in one answer");
    assert_eq!(tags.last().map(String::as_str), Some("t1199"));
}
