//! Pass-through mirrors (issue 12, section 2) with real clients: skopeo
//! (`--src-creds`), crane (`crane auth login`) and containerd (`ctr --user`)
//! pull a private image through a `passthrough: true` mirror of a
//! wharf-registry upstream with the built-in token service (the Docker Hub
//! shape: Bearer upstream, Basic towards the mirror). Cached content, stale
//! or not, referrers, mounts and the catalog reach only clients the upstream
//! has confirmed.

mod common;

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use reqwest::blocking::Response;
use serde_json::{Value, json};

use common::*;

const UPSTREAM_RULES: &str = r#"
rules:
  - { repository: "private/**", users: [alice, bob], actions: [pull] }
  - { repository: "**", users: [admin], actions: ["*"] }
"#;

const USERS: &[(&str, &str)] =
    &[("admin", "admin-pass"), ("alice", "alice-pass"), ("bob", "bob-pass"), ("carol", "carol-pass")];

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// An upstream wharf-registry with the built-in token service, holding
/// `private/app:v1` (a two-platform index), and a pass-through mirror of it.
struct Setup {
    dir: tempfile::TempDir,
    up: RegistryProcess,
    mirror: RegistryProcess,
    img: MultiArchImage,
}

fn setup(seed: u64) -> Setup {
    let dir = tempfile::Builder::new().prefix("wharf-passthrough.").tempdir().unwrap();
    let up_dir = dir.path().join("up");
    std::fs::create_dir_all(&up_dir).unwrap();
    let key = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    std::fs::write(up_dir.join("signing.pem"), key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    let users: String = USERS.iter().map(|(u, p)| format!("{u}:{}\n", bcrypt::hash(p, 4).unwrap())).collect();
    std::fs::write(up_dir.join("users"), users).unwrap();
    std::fs::write(up_dir.join("access.yml"), UPSTREAM_RULES).unwrap();
    let d = up_dir.display();
    let up = RegistryProcess::start_expecting(
        Kind::Wharf,
        &format!(
            "{}auth:\n  token:\n    realm: auto\n    service: wharf-test\n    issuer: wharf-test\n    builtin:\n      signingkey: {d}/signing.pem\n      users: {d}/users\n      access: {d}/access.yml\n",
            minimal_config(&up_dir.join("data"))
        ),
        401,
    );
    let img = MultiArchImage::generate(seed, 2, 64 << 10);
    let layout = dir.path().join("layout");
    img.write_layout(&layout, "v1");
    run_ok(
        skopeo()
            .args(["copy", "--all", "--preserve-digests", "--retry-times", "0", "--dest-tls-verify=false"])
            .args(["--dest-creds", "admin:admin-pass"])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{}/private/app:v1", up.addr)),
        CLIENT_TIMEOUT,
    );
    // tagttl 0s: every pull by tag revalidates, so the stale path is one upstream stop away.
    let mirror = RegistryProcess::start_expecting(
        Kind::Wharf,
        &format!(
            "{}proxy:\n  remoteurl: {}\n  passthrough: true\n  localprefix: local\n  tagttl: 0s\n",
            minimal_config(&dir.path().join("mirror")),
            up.url("")
        ),
        401,
    );
    Setup { dir, up, mirror, img }
}

impl Setup {
    fn get(&self, creds: Option<(&str, &str)>, path: &str) -> Response {
        let mut r = http().get(self.mirror.url(path)).header("accept", ACCEPT_ALL);
        if let Some((u, p)) = creds {
            r = r.header("authorization", basic(u, p));
        }
        r.send().unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `private/app` as alice, byte for byte: the index, one platform's manifest and blobs.
    fn pull_as_alice(&self) {
        let alice = Some(("alice", "alice-pass"));
        let r = self.get(alice, "/v2/private/app/manifests/v1");
        assert_eq!(r.status().as_u16(), 200, "{r:?}");
        assert_eq!(r.bytes().unwrap().as_ref(), self.img.index.bytes.as_slice());
        let amd64 = self.img.image("amd64");
        let r = self.get(alice, &format!("/v2/private/app/manifests/{}", amd64.manifest.digest));
        assert_eq!(r.bytes().unwrap().as_ref(), amd64.manifest.bytes.as_slice());
        for b in amd64.blobs() {
            let r = self.get(alice, &format!("/v2/private/app/blobs/{}", b.digest));
            assert_eq!(sha256_digest(&r.bytes().unwrap()), b.digest);
        }
    }
}

/// 401 with a Basic challenge, and none of the private content in the body.
fn refused(r: Response, what: &str, secret: &[u8]) {
    let status = r.status().as_u16();
    let challenge = header(&r, "www-authenticate");
    let body = r.bytes().unwrap();
    assert_eq!(status, 401, "{what}: {}", String::from_utf8_lossy(&body));
    assert!(challenge.starts_with("Basic "), "{what}: challenge {challenge:?}");
    assert!(!contains(&body, secret), "{what} leaked content");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn fails(out: &Output, why: &str) {
    assert!(!out.ok(), "{why} should have failed:\n{}", out.describe());
}

#[test]
fn skopeo_crane_and_ctr_pull_a_private_image_with_their_own_credentials() {
    let s = setup(21);
    let addr = &s.mirror.addr;
    let src = format!("docker://{addr}/private/app:v1");
    let amd64 = s.img.image("amd64");

    // /v2/ challenges, so clients that ping it know to send credentials.
    let r = http().get(s.mirror.url("/v2/")).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(header(&r, "www-authenticate").starts_with("Basic realm="), "{r:?}");
    let r = http().get(s.mirror.url("/v2/")).header("authorization", "Basic Og==").send().unwrap();
    assert_eq!(r.status().as_u16(), 401, "skopeo's empty credentials are no credentials");
    assert_eq!(s.get(Some(("alice", "alice-pass")), "/v2/").status().as_u16(), 200);

    // skopeo --src-creds: the first (cold) pull.
    let out = s.dir.path().join("skopeo-out");
    let mut cmd = skopeo();
    cmd.args(["copy", "--all", "--preserve-digests", "--retry-times", "0", "--src-tls-verify=false"])
        .args(["--src-creds", "alice:alice-pass"])
        .arg(&src)
        .arg(format!("oci:{}:v1", out.display()));
    run_ok(&mut cmd, CLIENT_TIMEOUT);
    let (top, blobs) = read_layout(&out, Some("v1"));
    assert_eq!(top["digest"], s.img.index.digest.as_str());
    assert_eq!(blobs.len(), s.img.all_blobs().len(), "every blob of the index came through");

    // Without credentials, or with wrong ones, skopeo gets nothing, cached or not.
    let inspect = |creds: Option<&str>| {
        let mut c = skopeo();
        c.args(["inspect", "--raw", "--tls-verify=false", "--retry-times", "0"]);
        if let Some(creds) = creds {
            c.args(["--creds", creds]);
        }
        run(c.arg(&src), CLIENT_TIMEOUT)
    };
    fails(&inspect(None), "an anonymous skopeo inspect");
    fails(&inspect(Some("alice:wrong")), "skopeo with a wrong password");
    fails(&inspect(Some("carol:carol-pass")), "skopeo as a user the upstream refuses");
    let raw = run_ok(
        skopeo().args(["inspect", "--raw", "--tls-verify=false", "--creds", "bob:bob-pass"]).arg(&src),
        CLIENT_TIMEOUT,
    );
    assert_eq!(raw.stdout.as_bytes(), s.img.index.bytes.as_slice(), "bob, whom the upstream allows, is served");

    // crane with `crane auth login` (a docker config.json).
    let config = s.dir.path().join("docker-config");
    let crane_as = |cfg: &Path| {
        let mut c = crane();
        c.env("DOCKER_CONFIG", cfg);
        c
    };
    let reference = format!("{addr}/private/app:v1");
    fails(&run(crane().args(["manifest", "--insecure", &reference]), CLIENT_TIMEOUT), "crane without a login");
    run_ok(crane_as(&config).args(["auth", "login", addr, "-u", "alice", "-p", "alice-pass"]), CLIENT_TIMEOUT);
    let m = run_ok(crane_as(&config).args(["manifest", "--insecure", &reference]), CLIENT_TIMEOUT);
    assert_eq!(m.stdout.as_bytes(), s.img.index.bytes.as_slice());
    let crane_out = s.dir.path().join("crane-out");
    run_ok(
        crane_as(&config)
            .args(["pull", "--insecure", "--format=oci", "--platform", "linux/amd64", &reference])
            .arg(&crane_out),
        CLIENT_TIMEOUT,
    );
    let (top, blobs) = read_layout(&crane_out, None);
    assert_eq!(top["digest"], amd64.manifest.digest.as_str(), "{top}");
    for b in amd64.blobs() {
        assert!(blobs.contains(&b.digest), "crane pulled {}", b.digest);
    }

    // containerd: `ctr --user`, as a CRI pull secret ends up; it sends credentials only after a 401.
    let ctrd = Containerd::start();
    let pull = |user: Option<&str>| {
        let mut c = ctrd.ctr("pt");
        c.args(["images", "pull", "--plain-http"]);
        if let Some(u) = user {
            c.args(["--user", u]);
        }
        run(c.arg(&reference), Duration::from_secs(180))
    };
    fails(&pull(None), "ctr without --user");
    fails(&pull(Some("alice:wrong")), "ctr with a wrong password");
    let ok = pull(Some("alice:alice-pass"));
    assert!(ok.ok(), "{}", ok.describe());
    let ls = run_ok(ctrd.ctr("pt").args(["images", "ls"]), Duration::from_secs(30));
    assert!(ls.stdout.lines().any(|l| l.starts_with(&reference) && l.contains(&s.img.index.digest)), "{}", ls.stdout);
    drop(ctrd);

    // Raw: the cached content goes to nobody the upstream has not confirmed.
    let layer = &amd64.layers[0];
    for creds in [None, Some(("alice", "wrong")), Some(("carol", "carol-pass"))] {
        let what = format!("{creds:?}");
        refused(s.get(creds, "/v2/private/app/manifests/v1"), &what, &s.img.index.bytes);
        refused(s.get(creds, &format!("/v2/private/app/manifests/{}", amd64.manifest.digest)), &what, b"layers");
        refused(s.get(creds, &format!("/v2/private/app/blobs/{}", layer.digest)), &what, &layer.bytes[..64]);
    }
    let log = s.mirror.log.text();
    for secret in ["alice-pass", "bob-pass", "Basic "] {
        assert!(!log.contains(secret), "the mirror's log holds no credentials ({secret:?})");
    }
}

#[test]
fn with_the_upstream_down_stale_content_goes_only_to_clients_it_confirmed() {
    let mut s = setup(22);
    s.pull_as_alice();
    let path = "/v2/private/app/manifests/v1";
    let amd64 = s.img.image("amd64");
    let layer = format!("/v2/private/app/blobs/{}", amd64.layers[0].digest);
    s.up.kill();

    // Alice was confirmed a moment ago: tagttl has passed, the tag is served stale with a Warning.
    let r = s.get(Some(("alice", "alice-pass")), path);
    assert_eq!(r.status().as_u16(), 200);
    let warning = header(&r, "warning");
    assert!(warning.starts_with("110 ") && warning.contains("Stale"), "{warning}");
    assert_eq!(r.bytes().unwrap().as_ref(), s.img.index.bytes.as_slice());
    let r = s.get(Some(("alice", "alice-pass")), &layer);
    assert_eq!(sha256_digest(&r.bytes().unwrap()), amd64.layers[0].digest);

    // Bob may read it upstream, but nobody could ask: no content, 503 and why.
    for p in [path, &format!("/v2/private/app/manifests/{}", amd64.manifest.digest), &layer] {
        let r = s.get(Some(("bob", "bob-pass")), p);
        assert_eq!(r.status().as_u16(), 503, "{p}");
        let text = r.text().unwrap();
        assert!(text.contains("confirm") && !text.contains("layers"), "{p}: {text}");
        // Anonymous and unknown clients are asked to log in; nothing else.
        refused(s.get(None, p), &format!("anonymous {p}"), b"\"layers\"");
        let r = s.get(Some(("mallory", "guess")), p);
        assert!([401, 503].contains(&r.status().as_u16()), "{p}: {r:?}");
    }
}

#[test]
fn a_mount_from_a_mirrored_repository_needs_confirmed_access() {
    let s = setup(23);
    s.pull_as_alice();
    let layer = &s.img.image("amd64").layers[0];
    let mount = format!("/v2/local/copy/blobs/uploads/?mount={}&from=private/app", layer.digest);
    let local_blob = format!("/v2/local/copy/blobs/{}", layer.digest);
    for (who, creds) in
        [("anonymous", None), ("carol", Some(("carol", "carol-pass"))), ("a wrong password", Some(("alice", "x")))]
    {
        let mut r = http().post(s.mirror.url(&mount));
        if let Some((u, p)) = creds {
            r = r.header("authorization", basic(u, p));
        }
        let r = r.send().unwrap();
        assert_eq!(r.status().as_u16(), 202, "{who}: an upload session, not a mount: {r:?}");
        assert!(header(&r, "location").contains("/v2/local/copy/blobs/uploads/"), "{r:?}");
        let r = http().head(s.mirror.url(&local_blob)).send().unwrap();
        assert_eq!(r.status().as_u16(), 404, "after {who}'s mount the blob is not linked");
    }
    // A client the upstream confirms mounts it.
    let r = http().post(s.mirror.url(&mount)).header("authorization", basic("bob", "bob-pass")).send().unwrap();
    assert_eq!(r.status().as_u16(), 201, "{r:?}");
    let r = http().get(s.mirror.url(&local_blob)).send().unwrap();
    assert_eq!(sha256_digest(&r.bytes().unwrap()), layer.digest);
}

#[test]
fn referrers_reveal_nothing_unconfirmed() {
    let s = setup(24);
    let amd64 = s.img.image("amd64");
    // A signature-like artifact upstream whose subject is the amd64 manifest.
    let referrer = push_referrer(&s.up, "private/app", &amd64.manifest);
    s.pull_as_alice();
    let alice = Some(("alice", "alice-pass"));
    let r = s.get(alice, &format!("/v2/private/app/manifests/{}", referrer.digest));
    assert_eq!(r.status().as_u16(), 200, "alice caches the referrer");
    let referrers = format!("/v2/private/app/referrers/{}", amd64.manifest.digest);

    for creds in [None, Some(("carol", "carol-pass")), Some(("alice", "wrong"))] {
        refused(s.get(creds, &referrers), &format!("referrers for {creds:?}"), referrer.digest.as_bytes());
    }
    let r = s.get(Some(("bob", "bob-pass")), &referrers);
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
    assert_eq!(v["manifests"][0]["digest"], referrer.digest.as_str(), "{v}");
    // An unknown subject: the spec's empty list, never a 404.
    let unknown = format!("/v2/private/app/referrers/{}", sha256_digest(b"nothing"));
    let r = s.get(alice, &unknown);
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
    assert_eq!(v["manifests"], json!([]), "{v}");
}

#[test]
fn the_catalog_names_no_mirrored_repository() {
    let s = setup(25);
    s.pull_as_alice();
    let alice = Some(("alice", "alice-pass"));
    let config = Blob::new(MT_CONFIG, b"{}".to_vec());
    let r = http()
        .post(s.mirror.url(&format!("/v2/local/tools/blobs/uploads/?digest={}", config.digest)))
        .body(config.bytes.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let m = json!({"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": config.descriptor(), "layers": []});
    let r = http()
        .put(s.mirror.url("/v2/local/tools/manifests/v1"))
        .header("content-type", MT_MANIFEST)
        .body(serde_json::to_vec(&m).unwrap())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert!(s.mirror.log.text().contains("private/app"), "the mirror did serve private/app");
    for creds in [None, alice] {
        let r = s.get(creds, "/v2/_catalog");
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
        assert_eq!(v["repositories"], json!(["local/tools"]), "{creds:?}: {v}");
    }
}

/// Pushes an artifact manifest whose subject is `subject` to `repo` as admin
/// (the token dance by hand: this is the upstream, not the mirror).
fn push_referrer(up: &RegistryProcess, repo: &str, subject: &Blob) -> Blob {
    let t = http()
        .get(up.url(&format!("/auth/token?service=wharf-test&scope=repository:{repo}:pull,push")))
        .header("authorization", basic("admin", "admin-pass"))
        .send()
        .unwrap();
    assert_eq!(t.status().as_u16(), 200);
    let v: Value = serde_json::from_slice(&t.bytes().unwrap()).unwrap();
    let bearer = format!("Bearer {}", v["token"].as_str().unwrap());
    let empty = Blob::new("application/vnd.oci.empty.v1+json", b"{}".to_vec());
    let sig = Blob::new("application/vnd.example.signature", b"signed, the upstream".to_vec());
    for b in [&empty, &sig] {
        let r = http()
            .post(up.url(&format!("/v2/{repo}/blobs/uploads/?digest={}", b.digest)))
            .header("authorization", &bearer)
            .body(b.bytes.clone())
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{r:?}");
    }
    let m = json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": empty.descriptor(),
        "layers": [sig.descriptor()],
        "subject": subject.descriptor(),
    });
    let manifest = Blob::new(MT_MANIFEST, serde_json::to_vec(&m).unwrap());
    let r = http()
        .put(up.url(&format!("/v2/{repo}/manifests/{}", manifest.digest)))
        .header("authorization", &bearer)
        .header("content-type", MT_MANIFEST)
        .body(manifest.bytes.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{r:?}");
    manifest
}

#[test]
fn a_client_retrying_a_wrong_password_does_not_get_the_mirror_locked_out_upstream() {
    // The upstream blocks an address after a few failed logins, and every
    // client's login reaches it from the mirror's address.
    let s = setup(26);
    for i in 0..8 {
        refused(s.get(Some(("alice", "wrong")), "/v2/private/app/manifests/v1"), &format!("attempt {i}"), b"layers");
    }
    s.pull_as_alice();
}

#[test]
fn a_basic_auth_upstream_works_the_same_for_skopeo_and_ctr() {
    // The reference registry with htpasswd: the upstream asks for Basic, not tokens.
    let dir = tempfile::Builder::new().prefix("wharf-passthrough-basic.").tempdir().unwrap();
    let users = dir.path().join("htpasswd");
    std::fs::write(&users, format!("alice:{}\n", bcrypt::hash("alice-pass", 4).unwrap())).unwrap();
    let up = RegistryProcess::start_expecting(
        Kind::Distribution,
        &format!(
            "{}auth:\n  htpasswd:\n    realm: upstream\n    path: {}\n",
            minimal_config(&dir.path().join("up")),
            users.display()
        ),
        401,
    );
    let img = MultiArchImage::generate(27, 2, 32 << 10);
    let layout = dir.path().join("layout");
    img.write_layout(&layout, "v1");
    run_ok(
        skopeo()
            .args(["copy", "--all", "--preserve-digests", "--retry-times", "0", "--dest-tls-verify=false"])
            .args(["--dest-creds", "alice:alice-pass"])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{}/team/app:v1", up.addr)),
        CLIENT_TIMEOUT,
    );
    let mirror = RegistryProcess::start_expecting(
        Kind::Wharf,
        &format!("{}proxy:\n  remoteurl: {}\n  passthrough: true\n", minimal_config(&dir.path().join("m")), up.url("")),
        401,
    );
    let src = format!("docker://{}/team/app:v1", mirror.addr);
    let copy = |creds: Option<&str>, out: &str| {
        let mut c = skopeo();
        c.args(["copy", "--all", "--preserve-digests", "--retry-times", "0", "--src-tls-verify=false"]);
        if let Some(creds) = creds {
            c.args(["--src-creds", creds]);
        }
        run(c.arg(&src).arg(format!("oci:{}:v1", dir.path().join(out).display())), CLIENT_TIMEOUT)
    };
    let ok = copy(Some("alice:alice-pass"), "alice");
    assert!(ok.ok(), "{}", ok.describe());
    let (top, _) = read_layout(&dir.path().join("alice"), Some("v1"));
    assert_eq!(top["digest"], img.index.digest.as_str());
    fails(&copy(None, "anonymous"), "an anonymous skopeo copy of cached content");
    fails(&copy(Some("alice:wrong"), "wrong"), "skopeo with a wrong password");

    let ctrd = Containerd::start();
    let reference = format!("{}/team/app:v1", mirror.addr);
    let pulled = run(
        ctrd.ctr("basic").args(["images", "pull", "--plain-http", "--user", "alice:alice-pass", &reference]),
        Duration::from_secs(180),
    );
    assert!(pulled.ok(), "{}", pulled.describe());
    let ls = run_ok(ctrd.ctr("basic").args(["images", "ls"]), Duration::from_secs(30));
    assert!(ls.stdout.lines().any(|l| l.starts_with(&reference) && l.contains(&img.index.digest)), "{}", ls.stdout);
}
