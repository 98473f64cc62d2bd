//! Drop-in compatibility with the reference registry (distribution v3) on
//! the same storage directory, both ways: what one writes the other serves
//! (catalog, tags, every manifest and blob by digest, real-client pulls), and
//! both lay the same pushes out on disk as the same files.
//!
//! The "other" registry is wharf-registry (or, with
//! WHARF_TEST_REGISTRY=distribution, the reference registry itself, which
//! checks these tests).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::*;

const REPO_MULTI: &str = "compat/multi";
const REPO_SINGLE: &str = "compat/single";

struct Fixtures {
    multi: MultiArchImage,
    single: PlatformImage,
}

/// Pushes with real clients: a multi-arch index with skopeo (tag v1), a
/// second tag on it with crane copy (v2), a single-platform image with crane.
fn push_fixtures(reg: &RegistryProcess, scratch: &Path) -> Fixtures {
    let multi = MultiArchImage::generate(10, 3, 256 << 10);
    let mut rng = Rng::new(11);
    let single = PlatformImage::generate(&mut rng, "linux", "amd64", 3, 256 << 10);
    let ml = scratch.join("layout-multi");
    let sl = scratch.join("layout-single");
    if !ml.exists() {
        multi.write_layout(&ml, "v1");
        single.write_layout(&sl, "latest");
    }
    skopeo_push(&ml, "v1", &reg.addr, REPO_MULTI);
    run_ok(
        crane().args([
            "copy",
            "--insecure",
            &format!("{}/{REPO_MULTI}:v1", reg.addr),
            &format!("{}/{REPO_MULTI}:v2", reg.addr),
        ]),
        CLIENT_TIMEOUT,
    );
    run_ok(
        crane().args(["push", "--insecure"]).arg(&sl).arg(format!("{}/{REPO_SINGLE}:latest", reg.addr)),
        CLIENT_TIMEOUT,
    );
    Fixtures { multi, single }
}

/// Everything pushed is served, byte for byte.
fn assert_serves(reg: &RegistryProcess, f: &Fixtures, scratch: &Path) {
    let who = reg.kind.name();
    assert_eq!(catalog(reg), BTreeSet::from([REPO_MULTI.to_string(), REPO_SINGLE.to_string()]), "{who}: catalog");
    assert_eq!(
        tags(reg, REPO_MULTI),
        BTreeSet::from(["v1".to_string(), "v2".to_string()]),
        "{who}: tags of {REPO_MULTI}"
    );
    assert_eq!(tags(reg, REPO_SINGLE), BTreeSet::from(["latest".to_string()]), "{who}: tags of {REPO_SINGLE}");

    // Manifests by tag and by digest: same bytes, same digest, right type.
    for tag in ["v1", "v2"] {
        let (ct, digest, body) = get_manifest(reg, REPO_MULTI, tag);
        assert_eq!(
            (ct.as_str(), digest.as_str()),
            (MT_INDEX, f.multi.index.digest.as_str()),
            "{who}: {REPO_MULTI}:{tag}"
        );
        assert_eq!(body, f.multi.index.bytes, "{who}: {REPO_MULTI}:{tag} body");
    }
    for img in &f.multi.images {
        let (ct, _, body) = get_manifest(reg, REPO_MULTI, &img.manifest.digest);
        assert_eq!(ct, MT_MANIFEST, "{who}");
        assert_eq!(body, img.manifest.bytes, "{who}: {} manifest", img.platform());
    }
    let (_, digest, body) = get_manifest(reg, REPO_SINGLE, "latest");
    assert_eq!(digest, f.single.manifest.digest, "{who}: {REPO_SINGLE}:latest");
    assert_eq!(body, f.single.manifest.bytes, "{who}");

    // Every blob, by digest, verified.
    let client = http();
    let blobs = f.multi.images.iter().flat_map(|i| i.blobs()).map(|b| (REPO_MULTI, b));
    for (repo, b) in blobs.chain(f.single.blobs().into_iter().map(|b| (REPO_SINGLE, b))) {
        let head = client.head(reg.url(&format!("/v2/{repo}/blobs/{}", b.digest))).send().unwrap();
        assert_eq!(head.status().as_u16(), 200, "{who}: HEAD {repo} blob {}", b.digest);
        assert_eq!(
            header_len(&head),
            Some(b.bytes.len() as u64),
            "{who}: HEAD {repo} blob {} Content-Length",
            b.digest
        );
        let resp = client.get(reg.url(&format!("/v2/{repo}/blobs/{}", b.digest))).send().unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{who}: GET {repo} blob {}", b.digest);
        assert_eq!(sha256_digest(&resp.bytes().unwrap()), b.digest, "{who}: {repo} blob {} content", b.digest);
    }

    // Real clients pull it all back with the digests unchanged.
    let out = scratch.join(format!("pulled-by-{who}"));
    std::fs::create_dir_all(&out).unwrap();
    assert_pull_matches(&reg.addr, REPO_MULTI, "v1", &f.multi, &out);
    assert_pull_matches(&reg.addr, REPO_MULTI, "v2", &f.multi, &out);
    let d =
        run_ok(crane().args(["digest", "--insecure", &format!("{}/{REPO_SINGLE}:latest", reg.addr)]), CLIENT_TIMEOUT);
    assert_eq!(d.stdout.trim(), f.single.manifest.digest, "{who}: crane digest");
    let pulled = out.join("crane-single");
    let _ = std::fs::remove_dir_all(&pulled);
    run_ok(
        crane()
            .args(["pull", "--insecure", "--format=oci", &format!("{}/{REPO_SINGLE}:latest", reg.addr)])
            .arg(&pulled),
        CLIENT_TIMEOUT,
    );
    let (top, got) = read_layout(&pulled, None);
    assert_eq!(top["digest"], f.single.manifest.digest.as_str(), "{who}");
    let mut want: BTreeSet<String> = f.single.blobs().iter().map(|b| b.digest.clone()).collect();
    want.insert(f.single.manifest.digest.clone());
    assert_eq!(got, want, "{who}: blobs crane pulled");
}

fn header_len(resp: &reqwest::blocking::Response) -> Option<u64> {
    header(resp, "content-length").parse().ok()
}

/// Writer pushes into a fresh root and stops; reader serves the same root.
fn writer_then_reader(writer: Kind, reader: Kind) {
    let dir = tempfile::Builder::new().prefix("wharf-compat.").tempdir().unwrap();
    let root = dir.path().join("data");
    writer_then_reader_on(writer, reader, &minimal_config(&root), dir.path());
}

/// The same on one S3 bucket (versitygw), distribution with its s3 driver.
fn writer_then_reader_on_s3(writer: Kind, reader: Kind) {
    let dir = tempfile::Builder::new().prefix("wharf-compat.").tempdir().unwrap();
    let s3 = common::s3::S3Server::start("compat");
    let config = s3.registry_config("compat", "/shared", "", "compat-secret");
    writer_then_reader_on(writer, reader, &config, dir.path());
    // The bucket holds registry:2's layout under the root directory.
    let tree = files_under(&s3.bucket_dir("compat").join("shared"));
    let patterns: BTreeSet<String> = tree.iter().map(|p| path_pattern(p)).collect();
    for want in REQUIRED_PATTERNS {
        assert!(patterns.contains(*want), "no {want} in the bucket:\n{patterns:#?}");
    }
}

fn writer_then_reader_on(writer: Kind, reader: Kind, config: &str, scratch: &Path) {
    let config = config.to_string();
    let dir = scratch;

    let mut w = RegistryProcess::start(writer, &config);
    let f = push_fixtures(&w, dir);
    assert_serves(&w, &f, dir);
    assert!(w.terminate(Duration::from_secs(30)), "{} did not stop on SIGTERM", writer.name());

    let r = RegistryProcess::start(reader, &config);
    assert_serves(&r, &f, dir);

    // The reader can add to what the writer left: a new tag on the old content.
    run_ok(
        crane().args([
            "copy",
            "--insecure",
            &format!("{}/{REPO_SINGLE}:latest", r.addr),
            &format!("{}/{REPO_SINGLE}:again", r.addr),
        ]),
        CLIENT_TIMEOUT,
    );
    assert_eq!(tags(&r, REPO_SINGLE), BTreeSet::from(["again".to_string(), "latest".to_string()]));
}

#[test]
fn distribution_writes_wharf_serves() {
    writer_then_reader(Kind::Distribution, registry_under_test());
}

#[test]
fn wharf_writes_distribution_serves() {
    writer_then_reader(registry_under_test(), Kind::Distribution);
}

#[test]
fn on_s3_distribution_writes_wharf_serves() {
    writer_then_reader_on_s3(Kind::Distribution, registry_under_test());
}

#[test]
fn on_s3_wharf_writes_distribution_serves() {
    writer_then_reader_on_s3(registry_under_test(), Kind::Distribution);
}

/// The path shapes registry:2 storage is made of.
const REQUIRED_PATTERNS: &[&str] = &[
    "docker/registry/v2/blobs/sha256/<xx>/<hex>/data",
    "docker/registry/v2/repositories/<repo>/_layers/sha256/<hex>/link",
    "docker/registry/v2/repositories/<repo>/_manifests/revisions/sha256/<hex>/link",
    "docker/registry/v2/repositories/<repo>/_manifests/tags/<tag>/current/link",
    "docker/registry/v2/repositories/<repo>/_manifests/tags/<tag>/index/sha256/<hex>/link",
];

#[test]
fn on_disk_tree_matches_distribution() {
    let dir = tempfile::Builder::new().prefix("wharf-tree.").tempdir().unwrap();
    let mut roots = Vec::new();
    for (name, kind) in [("reference", Kind::Distribution), ("test", registry_under_test())] {
        let root = dir.path().join(name);
        let mut reg = RegistryProcess::start(kind, &minimal_config(&root));
        push_fixtures(&reg, dir.path());
        assert!(reg.terminate(Duration::from_secs(30)), "{} did not stop on SIGTERM", kind.name());
        roots.push((kind, root));
    }
    let (ref_kind, ref_root) = &roots[0];
    let (test_kind, test_root) = &roots[1];
    let ref_files = files_under(ref_root);
    // wharf keeps its own state beside registry:2's tree, where distribution
    // never looks: the GC's reference markers (docs/gc.md), and nothing else.
    let (own, test_files): (BTreeSet<String>, BTreeSet<String>) =
        files_under(test_root).into_iter().partition(|p| p.starts_with("wharf/"));
    if *test_kind == Kind::Wharf {
        assert!(!own.is_empty(), "a push wrote no reference markers");
    }
    assert!(own.iter().all(|p| path_pattern(p) == "wharf/gc/refs/sha256/<hex>"), "{own:#?}");
    let patterns = |files: &BTreeSet<String>| files.iter().map(|p| path_pattern(p)).collect::<BTreeSet<String>>();
    let (ref_patterns, test_patterns) = (patterns(&ref_files), patterns(&test_files));

    for p in REQUIRED_PATTERNS {
        assert!(ref_patterns.contains(*p), "{} wrote no {p}: {ref_patterns:#?}", ref_kind.name());
    }
    assert_eq!(
        test_patterns,
        ref_patterns,
        "{} and {} lay storage out differently (path patterns)",
        test_kind.name(),
        ref_kind.name()
    );
    let only_ref: Vec<_> = ref_files.difference(&test_files).collect();
    let only_test: Vec<_> = test_files.difference(&ref_files).collect();
    assert!(
        only_ref.is_empty() && only_test.is_empty(),
        "the same pushes left different files\nonly {}: {only_ref:#?}\nonly {}: {only_test:#?}",
        ref_kind.name(),
        test_kind.name()
    );
    // Same files, same contents (links hold digests; blobs their bytes).
    for f in &ref_files {
        let a = std::fs::read(ref_root.join(f)).unwrap();
        let b = std::fs::read(test_root.join(f)).unwrap();
        assert!(
            a == b,
            "{f} differs: {} has {:?}, {} has {:?}",
            ref_kind.name(),
            String::from_utf8_lossy(&a[..a.len().min(200)]),
            test_kind.name(),
            String::from_utf8_lossy(&b[..b.len().min(200)])
        );
    }
}

#[test]
fn path_patterns_name_the_registry2_shapes() {
    // The pattern function itself, on paths as registry:2 writes them.
    let cases = [
        ("docker/registry/v2/blobs/sha256/ab/ab3f".to_string() + &"0".repeat(60) + "/data", REQUIRED_PATTERNS[0]),
        (format!("docker/registry/v2/repositories/a/b/c/_layers/sha256/{}/link", "1".repeat(64)), REQUIRED_PATTERNS[1]),
        (
            format!("docker/registry/v2/repositories/x/_manifests/revisions/sha256/{}/link", "2".repeat(64)),
            REQUIRED_PATTERNS[2],
        ),
        ("docker/registry/v2/repositories/x/y/_manifests/tags/v1.0/current/link".to_string(), REQUIRED_PATTERNS[3]),
        (
            format!("docker/registry/v2/repositories/x/_manifests/tags/latest/index/sha256/{}/link", "3".repeat(64)),
            REQUIRED_PATTERNS[4],
        ),
    ];
    for (path, want) in cases {
        assert_eq!(path_pattern(&path), want, "{path}");
    }
}
