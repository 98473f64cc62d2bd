//! Real clients through the built-in token service: skopeo (`--creds`,
//! `--dest-creds`, `--src-creds`, and crane's config.json via `--authfile`), crane (`crane auth login`) and containerd's
//! `ctr --user` go through the whole dance (401, token from the realm,
//! retry) against a wharf-registry process, and the access rules hold.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use p256::pkcs8::{EncodePrivateKey, LineEnding};

const RULES: &str = r#"
groups:
  team-a: [alice]
rules:
  - { repository: "team-a/**", groups: [team-a], actions: [pull, push] }
  - { repository: "public/**", anonymous: true, actions: [pull] }
  - { repository: "public/**", users: [alice], actions: [push] }
"#;

fn line(user: &str, password: &str) -> String {
    format!("{user}:{}\n", bcrypt::hash(password, 4).unwrap())
}

/// A wharf-registry with the built-in token service and an automatic realm.
fn start(dir: &Path) -> RegistryProcess {
    let key = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    std::fs::write(dir.join("signing.pem"), key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    std::fs::write(dir.join("users"), line("alice", "alice-pw") + &line("carol", "carol-pw")).unwrap();
    std::fs::write(dir.join("access.yml"), RULES).unwrap();
    let d = dir.display();
    let config = format!(
        "{}auth:\n  token:\n    realm: auto\n    service: wharf-test\n    issuer: wharf\n    builtin:\n      signingkey: {d}/signing.pem\n      users: {d}/users\n      access: {d}/access.yml\n",
        minimal_config(&dir.join("data"))
    );
    RegistryProcess::start_expecting(Kind::Wharf, &config, 401)
}

/// `skopeo copy --all` from an OCI layout or registry to another, with extra flags.
fn skopeo_copy(flags: &[&str], from: String, to: String) -> Output {
    let mut cmd = skopeo();
    cmd.args(["copy", "--all", "--preserve-digests", "--retry-times", "0"]).args(flags).arg(from).arg(to);
    run(&mut cmd, CLIENT_TIMEOUT)
}

fn layout_ref(layout: &Path) -> String {
    format!("oci:{}:v1", layout.display())
}

/// The client failed, and because the registry refused it: its message shows
/// a 401 or an access denial. A 500, a crash or a refused connection is not a
/// refusal and does not pass.
fn fails(out: &Output, why: &str) {
    assert!(!out.ok(), "{why} should have failed:\n{}", out.describe());
    let text = format!("{}\n{}", out.stdout, out.stderr).to_lowercase();
    assert!(
        ["401", "unauthorized", "access to the resource is denied", "access denied"].iter().any(|w| text.contains(w)),
        "{why} failed, but not with a refusal (no 401, unauthorized or denied):\n{}",
        out.describe()
    );
    assert!(
        !["500 internal", "internal server error", "connection refused", "panic"].iter().any(|w| text.contains(w)),
        "{why}: the failure is the server's, not a refusal:\n{}",
        out.describe()
    );
}

#[test]
fn skopeo_with_creds_goes_through_the_token_dance() {
    let dir = tempfile::Builder::new().prefix("wharf-auth-clients.").tempdir().unwrap();
    let reg = start(dir.path());
    let img = MultiArchImage::generate(11, 2, 64 << 10);
    let layout = dir.path().join("layout");
    img.write_layout(&layout, "v1");
    let dest = format!("docker://{}/team-a/app:v1", reg.addr);

    fails(&skopeo_copy(&["--dest-tls-verify=false"], layout_ref(&layout), dest.clone()), "an anonymous push");
    fails(
        &skopeo_copy(&["--dest-tls-verify=false", "--dest-creds", "carol:carol-pw"], layout_ref(&layout), dest.clone()),
        "a push by a user outside team-a",
    );
    let pushed =
        skopeo_copy(&["--dest-tls-verify=false", "--dest-creds", "alice:alice-pw"], layout_ref(&layout), dest.clone());
    assert!(pushed.ok(), "{}", pushed.describe());
    let raw = run_ok(
        skopeo().args(["inspect", "--raw", "--tls-verify=false", "--creds", "alice:alice-pw"]).arg(&dest),
        CLIENT_TIMEOUT,
    );
    assert_eq!(raw.stdout.as_bytes(), img.index.bytes.as_slice(), "the index comes back byte for byte");
    let out = dir.path().join("out");
    let pulled =
        skopeo_copy(&["--src-tls-verify=false", "--src-creds", "alice:alice-pw"], dest.clone(), layout_ref(&out));
    assert!(pulled.ok(), "{}", pulled.describe());
    for b in img.all_blobs() {
        assert!(out.join("blobs/sha256").join(b.hex()).exists(), "{} pulled", b.digest);
    }
    fails(
        &run(
            skopeo().args(["inspect", "--raw", "--tls-verify=false", "--creds", "carol:carol-pw"]).arg(&dest),
            CLIENT_TIMEOUT,
        ),
        "a pull by a user outside team-a",
    );
    fails(
        &run(
            skopeo().args(["inspect", "--raw", "--tls-verify=false", "--creds", "alice:wrong"]).arg(&dest),
            CLIENT_TIMEOUT,
        ),
        "a wrong password",
    );
    let log = reg.log.text();
    assert!(log.contains("issued token"), "the clients used the token service");
    for secret in ["alice-pw", "carol-pw", "Bearer ", "Basic ", "eyJ"] {
        assert!(!log.contains(secret), "the log never holds credentials or tokens ({secret:?}):\n{log}");
    }
}

#[test]
fn crane_auth_login_then_push_pull_and_anonymous_public_pull() {
    let dir = tempfile::Builder::new().prefix("wharf-auth-crane.").tempdir().unwrap();
    let reg = start(dir.path());
    let config_dir = dir.path().join("docker-config");
    let crane_as = |cfg: &Path| {
        let mut c = crane();
        c.env("DOCKER_CONFIG", cfg);
        c
    };
    let img = MultiArchImage::generate(12, 2, 64 << 10);
    let layout = dir.path().join("layout");
    img.write_layout(&layout, "v1");

    run_ok(crane_as(&config_dir).args(["auth", "login", &reg.addr, "-u", "alice", "-p", "alice-pw"]), CLIENT_TIMEOUT);
    let cfg = std::fs::read_to_string(config_dir.join("config.json")).unwrap();
    assert!(cfg.contains(&reg.addr), "the docker config.json auths entry is keyed by the registry host: {cfg}");

    let reference = format!("{}/public/base:v1", reg.addr);
    let authfile = config_dir.join("config.json").display().to_string();
    let pushed = skopeo_copy(
        &["--dest-tls-verify=false", "--authfile", &authfile],
        layout_ref(&layout),
        format!("docker://{reference}"),
    );
    assert!(pushed.ok(), "{}", pushed.describe());
    let digest = run_ok(crane_as(&config_dir).args(["digest", "--insecure", &reference]), CLIENT_TIMEOUT);
    assert_eq!(digest.stdout.trim(), img.index.digest);

    // Anonymous pull works where the rules allow it, and only there.
    let anon_dir = dir.path().join("anonymous");
    let anon = run_ok(crane_as(&anon_dir).args(["manifest", "--insecure", &reference]), CLIENT_TIMEOUT);
    assert_eq!(sha256_digest(anon.stdout.as_bytes()), img.index.digest);
    run_ok(
        crane_as(&config_dir).args(["copy", "--insecure", &reference, &format!("{}/team-a/copy:v1", reg.addr)]),
        CLIENT_TIMEOUT,
    );
    fails(
        &run(
            crane_as(&anon_dir).args(["manifest", "--insecure", &format!("{}/team-a/copy:v1", reg.addr)]),
            CLIENT_TIMEOUT,
        ),
        "an anonymous pull from team-a",
    );
    fails(
        &run(
            crane_as(&anon_dir).args(["copy", "--insecure", &reference, &format!("{}/public/other:v1", reg.addr)]),
            CLIENT_TIMEOUT,
        ),
        "an anonymous push to public",
    );
    // The catalog shows each caller what it may pull.
    let mine = run_ok(crane_as(&config_dir).args(["catalog", "--insecure", &reg.addr]), CLIENT_TIMEOUT);
    assert_eq!(mine.stdout.lines().collect::<Vec<_>>(), vec!["public/base", "team-a/copy"]);
    let anon_catalog = run_ok(crane_as(&anon_dir).args(["catalog", "--insecure", &reg.addr]), CLIENT_TIMEOUT);
    assert_eq!(anon_catalog.stdout.lines().collect::<Vec<_>>(), vec!["public/base"]);
}

#[test]
fn containerd_pulls_with_user_credentials() {
    let dir = tempfile::Builder::new().prefix("wharf-auth-ctr.").tempdir().unwrap();
    let reg = start(dir.path());
    let img = MultiArchImage::generate(13, 2, 64 << 10);
    let layout = dir.path().join("layout");
    img.write_layout(&layout, "v1");
    let pushed = skopeo_copy(
        &["--dest-tls-verify=false", "--dest-creds", "alice:alice-pw"],
        layout_ref(&layout),
        format!("docker://{}/team-a/app:v1", reg.addr),
    );
    assert!(pushed.ok(), "{}", pushed.describe());
    let reference = format!("{}/team-a/app:v1", reg.addr);
    let ctrd = Containerd::start();
    fails(
        &run(ctrd.ctr("anon").args(["images", "pull", "--plain-http", &reference]), Duration::from_secs(120)),
        "an anonymous containerd pull",
    );
    fails(
        &run(
            ctrd.ctr("carol").args(["images", "pull", "--plain-http", "--user", "carol:carol-pw", &reference]),
            Duration::from_secs(120),
        ),
        "a containerd pull by carol",
    );
    run_ok(
        ctrd.ctr("alice").args(["images", "pull", "--plain-http", "--user", "alice:alice-pw", &reference]),
        Duration::from_secs(180),
    );
    let check = run_ok(ctrd.ctr("alice").args(["images", "check"]), Duration::from_secs(30));
    assert!(
        check.stdout.lines().any(|l| l.starts_with(&reference) && l.contains("complete")),
        "ctr images check:\n{}",
        check.stdout
    );
}
