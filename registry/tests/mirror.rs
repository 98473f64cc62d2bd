//! The pull-through cache (issue 4) against real upstreams on 127.0.0.1: a
//! second wharf-registry with the built-in token service and a private
//! repository, and the reference distribution registry (v3) as a
//! third-party upstream. Upstream requests are counted from wharf's
//! `/metrics` and from distribution's access log; nothing sleeps.

mod common;
mod mirror_support;

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use common::*;
use mirror_support::*;

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
