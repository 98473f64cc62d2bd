//! The UI of a pull-through mirror (issue 14): the mirror's page in a real
//! browser (upstreams, cache size against `maxsize`, hits and misses, the
//! cached repositories) after skopeo pulled an image through it twice; and a
//! pass-through mirror's UI, which never names what a client pulled with
//! its own upstream credentials.

mod browser;
mod common;
mod mirror_support;

use std::path::Path;

use browser::Browser;
use common::*;
use mirror_support::*;

/// A one-platform image (config and two layers) pushed by skopeo to `repo:v1`.
fn push_image(dir: &Path, reg: &RegistryProcess, repo: &str, creds: Option<&str>) -> PlatformImage {
    let img = PlatformImage::generate(&mut Rng::new(4242), "linux", "amd64", 2, 48 << 10);
    let layout = dir.join("layout");
    img.write_layout(&layout, "v1");
    let mut cmd = skopeo();
    cmd.args(["copy", "--preserve-digests", "--retry-times", "0", "--dest-tls-verify=false"]);
    if let Some(c) = creds {
        cmd.args(["--dest-creds", c]);
    }
    run_ok(
        cmd.arg(format!("oci:{}:v1", layout.display())).arg(format!("docker://{}/{repo}:v1", reg.addr)),
        CLIENT_TIMEOUT,
    );
    img
}

/// skopeo pulls `repo:v1` through the mirror into a fresh layout (so it reuses nothing).
fn pull(dir: &Path, mirror: &RegistryProcess, repo: &str, creds: Option<&str>, n: u32) {
    let mut cmd = skopeo();
    cmd.args(["copy", "--retry-times", "0", "--src-tls-verify=false"]);
    if let Some(c) = creds {
        cmd.args(["--src-creds", c]);
    }
    let out = dir.join(format!("pulled-{n}"));
    run_ok(
        cmd.arg(format!("docker://{}/{repo}:v1", mirror.addr)).arg(format!("oci:{}:v1", out.display())),
        CLIENT_TIMEOUT,
    );
}

fn numbers(b: &Browser) -> [u64; 4] {
    ["#manifest-hits", "#manifest-misses", "#blob-hits", "#blob-misses"]
        .map(|id| b.text(id).parse().unwrap_or_else(|e| panic!("{id}: {e}\n{}", b.source())))
}

#[test]
fn the_mirror_page_shows_upstreams_cache_use_and_hits_in_a_browser() {
    let dir = tempfile::Builder::new().prefix("wharf-ui-mirror.").tempdir().unwrap();
    let (up, _) = wharf(&dir.path().join("up"), "", 200);
    let img = push_image(dir.path(), &up, "tools/app", None);
    let config = format!(
        "{}proxy:\n  remoteurl: {}\n  maxsize: 64MiB\nui:\n  enabled: true\n",
        minimal_config(&dir.path().join("mirror")),
        up.url("")
    );
    let mirror = RegistryProcess::start(Kind::Wharf, &config);
    let b = Browser::start(&dir.path().join("profile"));
    let page = mirror.url("/ui/mirror");

    // Before any pull: the upstream, an empty cache, no requests.
    b.goto(&mirror.url("/ui/"));
    b.click("#mirror-link");
    assert_eq!(b.text("h1"), "Mirror");
    let upstreams = b.text("#upstreams tbody");
    assert!(upstreams.contains(&up.url("")) && upstreams.contains("anonymous"), "{upstreams}");
    assert_eq!(b.text("#cache-max"), "64 MiB", "{}", b.source());
    assert_eq!(numbers(&b), [0, 0, 0, 0]);
    assert!(b.text("#cached-empty").contains("No cached repositories"));

    // A cold pull: every request a miss. A warm one: every request a hit.
    pull(dir.path(), &mirror, "tools/app", None, 1);
    b.goto(&page);
    assert_eq!(numbers(&b), [0, 1, 0, 3], "cold: one manifest and three blobs fetched upstream");
    pull(dir.path(), &mirror, "tools/app", None, 2);
    b.goto(&page);
    assert_eq!(numbers(&b), [1, 1, 3, 3], "warm: all from the cache");

    // The cache holds the image's blobs, and says so against maxsize.
    let blob_bytes: usize = img.blobs().iter().map(|b| b.bytes.len()).sum();
    b.expect_count("#cached tbody tr", 1);
    let row = b.text("#cached tbody tr");
    assert!(row.starts_with("tools/app"), "{row}");
    let used = b.text("#cache-used");
    assert!(used.ends_with("KiB") && used != "0 B", "{used}");
    let meter: u64 =
        b.script("return +document.querySelector('#cache-meter').value;", serde_json::json!([])).as_u64().unwrap();
    assert!(meter as usize >= blob_bytes - img.config.bytes.len(), "meter {meter} < the layers' {blob_bytes} bytes");
    b.shots("mirror");

    // The cached repository is listed and searchable at once, and links to its tags.
    b.goto(&mirror.url("/ui/?q=app"));
    b.expect_count("#repositories tbody tr", 1);
    assert_eq!(b.text("#repositories tbody th a"), "tools/app");
    b.goto(&page);
    b.click("#cached tbody th a");
    b.expect_count("#tags tr[data-tag=v1]", 1);
}

const UPSTREAM_RULES: &str = r#"
rules:
  - { repository: "private/**", users: [alice], actions: [pull] }
  - { repository: "**", users: [admin], actions: ["*"] }
"#;

#[test]
fn a_passthrough_mirror_ui_never_names_what_a_client_pulled_with_its_own_credentials() {
    let dir = tempfile::Builder::new().prefix("wharf-ui-passthrough.").tempdir().unwrap();
    let up_dir = dir.path().join("up");
    std::fs::create_dir_all(&up_dir).unwrap();
    let auth = token_auth(&up_dir, &[("admin", "admin-pass"), ("alice", "alice-pass")], UPSTREAM_RULES);
    let (up, _) = wharf(&up_dir.join("data"), &auth, 401);
    push_image(dir.path(), &up, "private/app", Some("admin:admin-pass"));
    let config = format!(
        "{}proxy:\n  remoteurl: {}\n  passthrough: true\n  localprefix: local\nui:\n  enabled: true\n",
        minimal_config(&dir.path().join("mirror")),
        up.url("")
    );
    let mirror = RegistryProcess::start_expecting(Kind::Wharf, &config, 401);
    pull(dir.path(), &mirror, "private/app", Some("alice:alice-pass"), 1);

    // Open UI (no auth on the mirror): the cached private image is not
    // listed, not searchable, and not shown by its URL.
    for path in ["/ui/", "/ui/?q=app", "/ui/mirror"] {
        let body = http().get(mirror.url(path)).send().unwrap().text().unwrap();
        assert!(!body.contains("private/app"), "{path} names the private repository:\n{body}");
    }
    let mirror_page = http().get(mirror.url("/ui/mirror")).send().unwrap().text().unwrap();
    assert!(mirror_page.contains("passthrough-note") && mirror_page.contains("each client's own"), "{mirror_page}");
    for path in ["/ui/tags?repo=private/app", "/ui/manifest?repo=private/app&digest=sha256:00"] {
        let r = http().get(mirror.url(path)).send().unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
        assert!(!r.text().unwrap().contains("private/app"), "{path}");
    }
}
