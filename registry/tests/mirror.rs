//! The pull-through cache (issue 4) against real upstreams on 127.0.0.1: a
//! second wharf-registry with the built-in token service and a private
//! repository, and the reference distribution registry (v3) as a
//! third-party upstream. Upstream requests are counted from wharf's
//! `/metrics` and from distribution's access log; nothing sleeps.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use reqwest::blocking::Response;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use common::*;

// ---------------------------------------------------------------- clients

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// A registry client that answers Bearer challenges with the realm (the
/// docker token dance), as docker and containerd do.
struct Session {
    base: String,
    creds: Option<(String, String)>,
    token: Option<String>,
}

fn challenge_params(h: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let rest = h.split_once(' ').map_or("", |(_, r)| r);
    for part in rest.split("\",") {
        if let Some((k, v)) = part.split_once('=') {
            out.insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
        }
    }
    out
}

impl Session {
    fn new(base: &str, creds: Option<(&str, &str)>) -> Session {
        Session { base: base.into(), creds: creds.map(|(u, p)| (u.into(), p.into())), token: None }
    }

    fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Response {
        for attempt in 0..2 {
            let mut req = http().request(method.parse().unwrap(), format!("{}{path}", self.base));
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(t) = &self.token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            let resp = req.body(body.clone()).send().unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            let challenge = header(&resp, "www-authenticate");
            if resp.status().as_u16() != 401 || attempt == 1 || !challenge.starts_with("Bearer") {
                return resp;
            }
            let p = challenge_params(&challenge);
            let enc = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
            let mut url = format!("{}?service={}", p["realm"], enc(&p["service"]));
            if let Some(scope) = p.get("scope") {
                url.push_str(&format!("&scope={}", enc(scope)));
            }
            let mut req = http().get(url);
            if let Some((u, pw)) = &self.creds {
                req = req.header("authorization", basic(u, pw));
            }
            let t = req.send().unwrap();
            assert_eq!(t.status().as_u16(), 200, "token for {path}");
            let v: Value = serde_json::from_slice(&t.bytes().unwrap()).unwrap();
            self.token = Some(v["token"].as_str().unwrap().to_string());
        }
        unreachable!()
    }

    fn get(&mut self, path: &str) -> Response {
        self.send("GET", path, &[("accept", ACCEPT_ALL)], Vec::new())
    }

    /// Pushes blobs (monolithic) and a manifest under `tag`.
    fn push(&mut self, repo: &str, tag: &str, blobs: &[&Blob], manifest: &Blob) {
        self.token = None; // tokens are scoped to one repository
        for b in blobs {
            let r = self.send("POST", &format!("/v2/{repo}/blobs/uploads/?digest={}", b.digest), &[], b.bytes.clone());
            let status = r.status().as_u16();
            if status == 202 {
                let loc = header(&r, "location");
                let sep = if loc.contains('?') { '&' } else { '?' };
                let url = format!("{loc}{sep}digest={}", b.digest);
                let path = url.strip_prefix(&self.base).unwrap_or(&url).to_string();
                let r = self.send("PUT", &path, &[("content-type", "application/octet-stream")], b.bytes.clone());
                assert_eq!(r.status().as_u16(), 201, "PUT blob {}: {}", b.digest, r.text().unwrap());
            } else {
                assert_eq!(status, 201, "POST blob {}: {}", b.digest, r.text().unwrap());
            }
        }
        let r = self.send(
            "PUT",
            &format!("/v2/{repo}/manifests/{tag}"),
            &[("content-type", manifest.media_type.as_str())],
            manifest.bytes.clone(),
        );
        assert_eq!(r.status().as_u16(), 201, "PUT manifest {repo}:{tag}: {}", r.text().unwrap());
    }

    /// Pulls `repo:reference` and every blob of the manifest; checks digests.
    fn pull(&mut self, repo: &str, reference: &str, query: &str) -> (Vec<u8>, HeaderMap) {
        self.token = None;
        let r = self.get(&format!("/v2/{repo}/manifests/{reference}{query}"));
        let headers = r.headers().clone();
        let status = r.status().as_u16();
        let body = r.bytes().unwrap().to_vec();
        assert_eq!(status, 200, "pull {repo}:{reference}: {}", String::from_utf8_lossy(&body));
        let m: Value = serde_json::from_slice(&body).unwrap();
        let mut digests = vec![m["config"]["digest"].as_str().unwrap().to_string()];
        digests.extend(m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()));
        for d in digests {
            let r = self.get(&format!("/v2/{repo}/blobs/{d}{query}"));
            assert_eq!(r.status().as_u16(), 200, "blob {d} of {repo}");
            assert_eq!(sha256_digest(&r.bytes().unwrap()), d, "blob {d} of {repo} arrived intact");
        }
        (body, headers)
    }
}

/// A small image: a config and two layers of `layer_bytes`.
fn image(seed: u64, layer_bytes: usize) -> (Vec<Blob>, Blob) {
    let mut rng = Rng::new(seed);
    let layers: Vec<Blob> = (0..2).map(|_| Blob::new(MT_LAYER_GZIP, rng.bytes(layer_bytes))).collect();
    let config = Blob::new(
        MT_CONFIG,
        serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "seed": seed})).unwrap(),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
    });
    let manifest = Blob::new(MT_MANIFEST, serde_json::to_vec(&manifest).unwrap());
    let mut blobs = vec![config];
    blobs.extend(layers);
    (blobs, manifest)
}

// ---------------------------------------------------------------- upstreams

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// An `auth:` section with the built-in token service over `users` and `rules`.
fn token_auth(dir: &Path, users: &[(&str, &str)], rules: &str) -> String {
    let secret = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let key = write(dir, "signing.pem", &secret.to_pkcs8_pem(LineEnding::LF).unwrap());
    let htpasswd: String = users.iter().map(|(u, p)| format!("{u}:{}\n", bcrypt::hash(p, 4).unwrap())).collect();
    let users = write(dir, "users", &htpasswd);
    let access = write(dir, "access.yml", rules);
    format!(
        "auth:\n  token:\n    realm: auto\n    service: wharf-test\n    issuer: wharf-test\n    builtin:\n      signingkey: {key}\n      users: {users}\n      access: {access}\n"
    )
}

/// A wharf-registry with `extra` appended to a minimal config and metrics on a debug port.
fn wharf(root: &Path, extra: &str, base_status: u16) -> (RegistryProcess, String) {
    let config = format!(
        "{}  debug:\n    addr: 127.0.0.1:0\n    prometheus:\n      enabled: true\n{extra}",
        minimal_config(root)
    );
    let p = RegistryProcess::start_expecting(Kind::Wharf, &config, base_status);
    let line = p.log.text().lines().find(|l| l.contains("debug server listening")).map(str::to_string);
    let line = line.unwrap_or_else(|| panic!("no debug listener line:\n{}", p.log.text()));
    let debug = line.split("addr=").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    (p, debug)
}

/// `wharf_registry_http_requests_total` by (route, method, status).
fn request_counts(debug_addr: &str) -> BTreeMap<(String, String, String), u64> {
    let text = http().get(format!("http://{debug_addr}/metrics")).send().unwrap().text().unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("wharf_registry_http_requests_total{")) {
        let label = |k: &str| line.split(&format!("{k}=\"")).nth(1).unwrap().split('"').next().unwrap().to_string();
        let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        *out.entry((label("route"), label("method"), label("status"))).or_default() += n;
    }
    out
}

/// Every request for `route` and `method`, whatever its status: refused ones
/// and HEADs reached the upstream too.
fn count(counts: &BTreeMap<(String, String, String), u64>, route: &str, method: &str) -> u64 {
    counts.iter().filter(|((r, m, _), _)| r == route && m == method).map(|(_, n)| n).sum()
}

/// Every request the upstream saw, of any route, method and status.
fn total(counts: &BTreeMap<(String, String, String), u64>) -> u64 {
    counts.values().sum()
}

fn distribution(root: &Path) -> RegistryProcess {
    RegistryProcess::start(Kind::Distribution, &minimal_config(root))
}

/// Lines of distribution's access log for `method path`, after a marker
/// request (sent last) has been logged, so earlier lines are all in.
fn access_log_count(d: &RegistryProcess, method: &str, path: &str) -> usize {
    let marker = format!("/v2/wharf-marker-{}/tags/list", rand_suffix());
    let _ = http().get(d.url(&marker)).send();
    d.log.wait_for(&marker, Duration::from_secs(20)).unwrap_or_else(|e| panic!("distribution log: {e}"));
    let needle = format!("\"{method} {path} HTTP/1.1\"");
    d.log.text().lines().filter(|l| l.contains(&needle)).count()
}

fn rand_suffix() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

// ---------------------------------------------------------------- tests

#[test]
fn an_upstream_account_without_client_auth_refuses_to_start_and_explains_the_leak() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}proxy:\n  remoteurl: https://registry-1.docker.io\n  username: someone\n  password: secret-password\n",
        minimal_config(&dir.path().join("data"))
    );
    let path = write(dir.path(), "config.yml", &config);
    let out = run(Command::new(env!("CARGO_BIN_EXE_wharf-registry")).arg("serve").arg(&path), Duration::from_secs(30));
    assert!(!out.ok(), "it must not start: {}", out.describe());
    for needle in ["proxy.username", "private images", "auth", "passthrough", "exposeupstreamaccount"] {
        assert!(out.stderr.contains(needle), "the refusal mentions {needle}: {}", out.stderr);
    }
    assert!(!out.stderr.contains("secret-password"), "{}", out.stderr);
    assert!(!dir.path().join("data").exists(), "nothing was served or stored");
}

const UPSTREAM_RULES: &str = r#"
rules:
  - { repository: "private/**", users: [mirror-account, alice], actions: [pull] }
  - { repository: "**", users: [admin], actions: ["*"] }
  - { repository: "public/**", anonymous: true, actions: [pull] }
"#;

const MIRROR_RULES: &str = r#"
rules:
  - { repository: "upstream.test/private/**", users: [alice], actions: [pull] }
  - { repository: "upstream.test/public/**", anonymous: true, actions: [pull] }
  - { repository: "local/**", users: [alice], actions: [pull, push] }
"#;

#[test]
fn a_private_wharf_upstream_cold_then_warm_with_access_rules_and_refused_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let up_dir = dir.path().join("up");
    std::fs::create_dir_all(&up_dir).unwrap();
    let up_auth = token_auth(
        &up_dir,
        &[("admin", "admin-pass"), ("mirror-account", "mirror-pass"), ("alice", "alice-up")],
        UPSTREAM_RULES,
    );
    let (up, up_debug) = wharf(&up_dir.join("data"), &up_auth, 401);
    let (blobs, manifest) = image(1, 1 << 20);
    let mut admin = Session::new(&up.url(""), Some(("admin", "admin-pass")));
    admin.push("private/app", "v1", &blobs.iter().collect::<Vec<_>>(), &manifest);
    let (pub_blobs, pub_manifest) = image(2, 64 << 10);
    admin.push("public/base", "v1", &pub_blobs.iter().collect::<Vec<_>>(), &pub_manifest);

    let m_dir = dir.path().join("mirror");
    std::fs::create_dir_all(&m_dir).unwrap();
    let m_auth = token_auth(&m_dir, &[("alice", "alice-pass"), ("carol", "carol-pass")], MIRROR_RULES);
    let user_file = write(&m_dir, "username", "mirror-account\n");
    let password_file = write(&m_dir, "password", "mirror-pass\n");
    let proxy = format!(
        "proxy:\n  localprefix: local\n  upstreams:\n    - name: upstream.test\n      url: {}\n      usernamefile: {user_file}\n      passwordfile: {password_file}\n",
        up.url("")
    );
    let (mirror, _) = wharf(&m_dir.join("data"), &format!("{m_auth}{proxy}"), 401);
    let private = "/v2/upstream.test/private/app/manifests/v1";
    let seeded = request_counts(&up_debug);

    // Anonymous: 401, with a challenge naming the repository as the access rules know it.
    let r = http().get(mirror.url(private)).header("accept", ACCEPT_ALL).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(header(&r, "www-authenticate").contains("repository:upstream.test/private/app:pull"), "{r:?}");
    let r = http().get(mirror.url("/v2/private/app/manifests/v1?ns=upstream.test")).send().unwrap();
    assert_eq!(r.status().as_u16(), 401, "the ns form is the same repository");
    let mut anonymous = Session::new(&mirror.url(""), None);
    assert_eq!(anonymous.get(private).status().as_u16(), 401, "an anonymous token grants nothing on it");
    // Carol is authenticated but no rule lets her pull it: 401 insufficient_scope, as registry:2 answers.
    let mut carol = Session::new(&mirror.url(""), Some(("carol", "carol-pass")));
    let r = carol.get(private);
    assert_eq!(r.status().as_u16(), 401);
    assert!(header(&r, "www-authenticate").contains("insufficient_scope"), "{r:?}");
    // The upstream's own metrics requests are on its debug listener, not counted here.
    assert_eq!(total(&request_counts(&up_debug)), total(&seeded), "refused clients caused no upstream request");

    // Alice: cold pull through the mirror's account.
    let before = request_counts(&up_debug);
    let mut alice = Session::new(&mirror.url(""), Some(("alice", "alice-pass")));
    let (body, headers) = alice.pull("upstream.test/private/app", "v1", "");
    assert_eq!(body, manifest.bytes, "the upstream's manifest, byte for byte");
    assert_eq!(headers["docker-content-digest"], manifest.digest.as_str());
    let cold = request_counts(&up_debug);
    // One manifest GET answered 401 with the challenge, then one with the mirror account's token.
    assert_eq!(count(&cold, "manifest", "GET") - count(&before, "manifest", "GET"), 2, "{cold:?}");
    assert_eq!(count(&cold, "blob", "GET") - count(&before, "blob", "GET"), 3, "{cold:?}");

    // Warm, both forms (path prefix and containerd's ns): no upstream request at all.
    alice.pull("upstream.test/private/app", "v1", "");
    let mut alice_ns = Session::new(&mirror.url(""), Some(("alice", "alice-pass")));
    alice_ns.pull("private/app", "v1", "?ns=upstream.test");
    alice.pull("upstream.test/private/app", &manifest.digest, "");
    assert_eq!(request_counts(&up_debug), cold, "a warm pull makes no upstream request");

    // Anyone may pull the public repository through the mirror.
    let (body, _) = anonymous.pull("upstream.test/public/base", "v1", "");
    assert_eq!(body, pub_manifest.bytes);
    // An upstream 404 is the spec's code.
    let r = alice.get("/v2/upstream.test/private/app/manifests/nope");
    assert_eq!(r.status().as_u16(), 404);
    assert!(r.text().unwrap().contains("MANIFEST_UNKNOWN"));
    let r = alice.get(&format!("/v2/upstream.test/private/app/blobs/{}", pub_manifest.digest));
    assert_eq!(r.status().as_u16(), 404);
    assert!(r.text().unwrap().contains("BLOB_UNKNOWN"));

    // Pushes into a mirrored repository: refused before auth, with the reason.
    let r = http()
        .put(mirror.url("/v2/upstream.test/private/app/manifests/v2"))
        .header("content-type", MT_MANIFEST)
        .body(manifest.bytes.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let text = r.text().unwrap();
    assert!(text.contains("UNSUPPORTED") && text.contains("pull-through cache") && text.contains("local/"), "{text}");
    let r = http().post(mirror.url("/v2/private/app/blobs/uploads/?ns=upstream.test")).send().unwrap();
    assert_eq!(r.status().as_u16(), 405);
    // Local repositories under localprefix work as in any registry.
    alice.push("local/tools", "v1", &blobs.iter().collect::<Vec<_>>(), &manifest);
    let (body, _) = alice.pull("local/tools", "v1", "");
    assert_eq!(body, manifest.bytes);
    let after = request_counts(&up_debug);
    for (route, method) in [("upload", "POST"), ("upload", "PATCH"), ("upload", "PUT"), ("manifest", "PUT")] {
        assert_eq!(count(&after, route, method), count(&before, route, method), "{route} {method} forwarded upstream");
    }
    drop(mirror);
    drop(up);
}

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
fn a_client_that_disconnects_does_not_abort_the_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let d = distribution(&dir.path().join("up"));
    let layer = Blob::new(MT_LAYER_GZIP, Rng::new(7).bytes(8 << 20));
    let config = Blob::new(MT_CONFIG, br#"{"os":"linux"}"#.to_vec());
    let m = json!({"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": config.descriptor(), "layers": [layer.descriptor()]});
    let manifest = Blob::new(MT_MANIFEST, serde_json::to_vec(&m).unwrap());
    Session::new(&d.url(""), None).push("drop/me", "v1", &[&config, &layer], &manifest);
    let (mirror, _) = wharf(&dir.path().join("mirror"), &format!("proxy:\n  remoteurl: {}\n", d.url("")), 200);
    let path = format!("/v2/drop/me/blobs/{}", layer.digest);
    {
        // Read the headers and a little of the body, then hang up.
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&mirror.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", mirror.addr).unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
    let r = http().get(mirror.url(&path)).send().unwrap();
    assert_eq!(sha256_digest(&r.bytes().unwrap()), layer.digest);
    assert_eq!(access_log_count(&d, "GET", &path), 1, "the second client followed the first fetch");
}

#[test]
fn tags_revalidate_with_head_and_a_stopped_upstream_serves_stale_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = distribution(&dir.path().join("up"));
    let (blobs, v1) = image(3, 32 << 10);
    let mut up = Session::new(&d.url(""), None);
    up.push("lib/app", "v1", &blobs.iter().collect::<Vec<_>>(), &v1);
    let (mirror, _) =
        wharf(&dir.path().join("mirror"), &format!("proxy:\n  remoteurl: {}\n  tagttl: 0s\n", d.url("")), 200);
    let mut client = Session::new(&mirror.url(""), None);
    let tag_path = "/v2/lib/app/manifests/v1";

    let (body, h) = client.pull("lib/app", "v1", "");
    assert_eq!(body, v1.bytes);
    assert!(h.get("warning").is_none());
    assert_eq!(access_log_count(&d, "GET", tag_path), 1);
    // tagttl 0: every pull revalidates with HEAD; the unchanged tag is not fetched again.
    client.pull("lib/app", "v1", "");
    assert_eq!(access_log_count(&d, "HEAD", tag_path), 1);
    assert_eq!(access_log_count(&d, "GET", tag_path), 1, "an unchanged tag needs no manifest GET");
    // Content by digest is immutable: no upstream request at all.
    client.pull("lib/app", &v1.digest, "");
    assert_eq!(access_log_count(&d, "HEAD", &format!("/v2/lib/app/manifests/{}", v1.digest)), 0);
    assert_eq!(access_log_count(&d, "HEAD", tag_path), 1);

    // The tag moves upstream: the mirror follows.
    let (blobs2, v2) = image(4, 32 << 10);
    up.push("lib/app", "v1", &blobs2.iter().collect::<Vec<_>>(), &v2);
    let (body, _) = client.pull("lib/app", "v1", "");
    assert_eq!(body, v2.bytes, "the moved tag is served");

    // Upstream gone: the cached tag still pulls, with a Warning; unknown content is a clear error.
    d.kill();
    let (body, h) = client.pull("lib/app", "v1", "");
    assert_eq!(body, v2.bytes);
    let warning = h.get("warning").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    assert!(warning.starts_with("110 ") && warning.contains("Stale") && warning.contains("unreachable"), "{warning}");
    let r = client.get("/v2/lib/app/manifests/never-cached");
    assert_eq!(r.status().as_u16(), 502);
    let text = r.text().unwrap();
    assert!(text.contains("unreachable"), "a readable error: {text}");
    let r = client.get("/v2/lib/other/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000");
    assert_eq!(r.status().as_u16(), 502);
    assert!(!mirror.log.text().contains("panicked"));
}

#[test]
fn pass_through_uses_each_clients_credentials_and_confirms_before_sharing() {
    let dir = tempfile::tempdir().unwrap();
    let up_dir = dir.path().join("up");
    std::fs::create_dir_all(&up_dir).unwrap();
    let rules = r#"
rules:
  - { repository: "private/**", users: [alice, bob], actions: [pull] }
  - { repository: "**", users: [admin], actions: ["*"] }
"#;
    let up_auth = token_auth(
        &up_dir,
        &[("admin", "admin-pass"), ("alice", "alice-pass"), ("bob", "bob-pass"), ("carol", "carol-pass")],
        rules,
    );
    let (up, up_debug) = wharf(&up_dir.join("data"), &up_auth, 401);
    let (blobs, manifest) = image(5, 256 << 10);
    Session::new(&up.url(""), Some(("admin", "admin-pass"))).push(
        "private/app",
        "v1",
        &blobs.iter().collect::<Vec<_>>(),
        &manifest,
    );
    let (mirror, _) =
        wharf(&dir.path().join("mirror"), &format!("proxy:\n  remoteurl: {}\n  passthrough: true\n", up.url("")), 401);
    let path = "/v2/private/app/manifests/v1";
    let get = |creds: Option<(&str, &str)>, path: &str| {
        let mut r = http().get(mirror.url(path)).header("accept", ACCEPT_ALL);
        if let Some((u, p)) = creds {
            r = r.header("authorization", basic(u, p));
        }
        r.send().unwrap()
    };

    let r = get(None, path);
    assert_eq!(r.status().as_u16(), 401, "anonymous clients are asked for their own credentials");
    assert!(header(&r, "www-authenticate").starts_with("Basic "), "{r:?}");
    let r = get(Some(("alice", "alice-pass")), path);
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().unwrap().as_ref(), manifest.bytes.as_slice());
    for b in &blobs {
        let r = get(Some(("alice", "alice-pass")), &format!("/v2/private/app/blobs/{}", b.digest));
        assert_eq!(sha256_digest(&r.bytes().unwrap()), b.digest);
    }
    // Cached now, but carol may not read it upstream: the upstream is asked, and says no.
    let r = get(Some(("carol", "carol-pass")), path);
    assert_eq!(r.status().as_u16(), 401, "cached content is not served to carol");
    let r = get(Some(("carol", "carol-pass")), &format!("/v2/private/app/blobs/{}", blobs[1].digest));
    assert_eq!(r.status().as_u16(), 401, "nor its blobs");
    let r = get(Some(("alice", "wrong")), path);
    assert_eq!(r.status().as_u16(), 401);
    // Bob may: one HEAD confirms, then the cache serves him without fetching again.
    let before = request_counts(&up_debug);
    let r = get(Some(("bob", "bob-pass")), path);
    assert_eq!(r.status().as_u16(), 200);
    for b in &blobs {
        let r = get(Some(("bob", "bob-pass")), &format!("/v2/private/app/blobs/{}", b.digest));
        assert_eq!(sha256_digest(&r.bytes().unwrap()), b.digest);
    }
    let after = request_counts(&up_debug);
    assert_eq!(count(&after, "manifest", "HEAD"), count(&before, "manifest", "HEAD") + 1, "{after:?}");
    assert_eq!(count(&after, "manifest", "GET"), count(&before, "manifest", "GET"));
    assert_eq!(count(&after, "blob", "GET"), count(&before, "blob", "GET"), "bob's blobs came from the cache");
}

#[test]
fn containerd_pulls_through_a_hosts_toml_mirror_that_sends_ns_with_a_port() {
    let dir = tempfile::tempdir().unwrap();
    let d = distribution(&dir.path().join("up"));
    let img = MultiArchImage::generate(11, 2, 64 << 10);
    let layout = dir.path().join("layout");
    img.write_layout(&layout, "v1");
    skopeo_push(&layout, "v1", &d.addr, "lib/app");
    let (mirror, _) = wharf(
        &dir.path().join("mirror"),
        &format!("proxy:\n  upstreams:\n    - name: upstream.test:5000\n      url: {}\n", d.url("")),
        200,
    );
    // containerd's mirror config: the mirror first; the "server" is a closed loopback port. The
    // upstream carries a port, as every in-cluster registry does.
    let hosts = dir.path().join("hosts.d");
    std::fs::create_dir_all(hosts.join("upstream.test:5000")).unwrap();
    std::fs::write(
        hosts.join("upstream.test:5000/hosts.toml"),
        format!(
            "server = \"http://127.0.0.1:9\"\n\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            mirror.addr
        ),
    )
    .unwrap();
    let ctrd = Containerd::start();
    let reference = "upstream.test:5000/lib/app:v1";
    let pull = run_ok(
        ctrd.ctr("mirror").args(["images", "pull", "--hosts-dir"]).arg(&hosts).arg(reference),
        Duration::from_secs(180),
    );
    let ls = run_ok(ctrd.ctr("mirror").args(["images", "ls"]), Duration::from_secs(30));
    assert!(
        ls.stdout.lines().any(|l| l.starts_with(reference) && l.contains(&img.index.digest)),
        "{}\n{}",
        pull.describe(),
        ls.stdout
    );
    assert!(
        dir.path().join("mirror/docker/registry/v2/repositories/upstream.test_5000/lib/app/_manifests").exists(),
        "cached as upstream.test_5000/lib/app"
    );
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
