//! Search (issue 14): the JSON API `/v2/_wharf/search`, the docker search
//! protocol `/v1/search`, who sees what, paging, hostile input, how the
//! index follows pushes, deletes and other replicas, and a real client:
//! `podman search` finds a pushed repository by a partial name.

mod common;
mod inproc;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::Value;

use inproc::*;
use wharf_registry::config::Config;

fn names(v: &Value, list: &str) -> Vec<String> {
    v[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {v}"))
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------- shape

#[tokio::test]
async fn v1_search_answers_in_the_shape_the_docker_cli_parses() {
    let reg = Reg::new();
    reg.push_image("team-a/web-app", "1.0", "a").await;
    reg.push_image("tools/db", "pg16", "b").await;

    let r = reg.get("/v1/_ping").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-docker-registry-standalone"), "true", "the daemon reads this before searching");

    let r = reg.get("/v1/search?q=web&n=25").await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), "application/json");
    let v = r.json();
    // github.com/docker/docker/api/types/registry.SearchResults and containers/image's V1Results.
    assert_eq!(v["query"], "web");
    assert_eq!(v["num_results"], 1);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    let hit = &results[0];
    assert_eq!(hit["name"], "team-a/web-app");
    assert!(hit["description"].is_string(), "{hit}");
    assert!(hit["star_count"].is_u64(), "{hit}");
    assert_eq!(hit["is_official"], false);
    assert_eq!(hit["is_automated"], false);

    // A tag matches too, and the JSON API says which tags.
    let v = reg.get("/v1/search?q=pg1").await.json();
    assert_eq!(names(&v, "results"), ["tools/db"]);
    let v = reg.get("/v2/_wharf/search?q=pg1").await.json();
    assert_eq!(v["repositories"], serde_json::json!([{"name": "tools/db", "tagCount": 1, "tags": ["pg16"]}]));
    // Case does not matter.
    assert_eq!(names(&reg.get("/v2/_wharf/search?q=WEB-App").await.json(), "repositories"), ["team-a/web-app"]);
    // `name:tag`: both parts must match.
    assert_eq!(names(&reg.get("/v2/_wharf/search?q=db:pg").await.json(), "repositories"), ["tools/db"]);
    assert!(names(&reg.get("/v2/_wharf/search?q=db:1.0").await.json(), "repositories").is_empty());
    // The catalog is untouched.
    assert_eq!(reg.get("/v2/_catalog").await.json()["repositories"], serde_json::json!(["team-a/web-app", "tools/db"]));
}

// ---------------------------------------------------------------- access

const RULES: &str = r#"
groups:
  team-a: [alice]
  team-b: [dave]
rules:
  - { repository: "team-a/**", groups: [team-a], actions: [pull, push, delete] }
  - { repository: "team-b/**", groups: [team-b], actions: [pull, push] }
  - { repository: "public/**", anonymous: true, actions: [pull] }
  - { repository: "**", users: [root], actions: ["*"] }
"#;

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn token_service(keys: &Path) -> Reg {
    let secret = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let key = write(keys, "signing.pem", &secret.to_pkcs8_pem(LineEnding::LF).unwrap());
    let users: String = ["alice", "dave", "root"]
        .iter()
        .map(|u| format!("{u}:{}\n", bcrypt::hash(format!("{u}-pass"), 4).unwrap()))
        .collect();
    let users = write(keys, "users", &users);
    let access = write(keys, "access.yml", RULES);
    Reg::with_config(
        "  delete:\n    enabled: true",
        &format!(
            "auth:\n  token:\n    realm: auto\n    service: reg.test:5000\n    issuer: wharf\n    builtin:\n      signingkey: {key}\n      users: {users}\n      access: {access}\n"
        ),
    )
}

async fn token(reg: &Reg, user: Option<&str>, scopes: &[&str]) -> String {
    let mut uri = "/auth/token?service=reg.test:5000".to_string();
    for s in scopes {
        uri.push_str(&format!("&scope={s}"));
    }
    let auth = user.map(|u| basic(u, &format!("{u}-pass")));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let r = reg.req(Method::GET, &uri, &headers, vec![]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    r.json()["token"].as_str().unwrap().to_string()
}

async fn push_as(reg: &Reg, token: &str, repo: &str, tag: &str) {
    let bearer = format!("Bearer {token}");
    let h = [("authorization", bearer.as_str()), ("content-type", OCI_MANIFEST)];
    let (layer, cfg) = (format!("layer of {repo}").into_bytes(), b"{}".to_vec());
    for blob in [&layer, &cfg] {
        let r = reg
            .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={}", digest(blob)), &h, blob.clone())
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));
    }
    let m = image_manifest(&digest(&cfg), cfg.len(), &digest(&layer), layer.len(), None);
    let r = reg.req(Method::PUT, &format!("/v2/{repo}/manifests/{tag}"), &h, m).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));
}

async fn search(reg: &Reg, uri: &str, auth: Option<&str>) -> (StatusCode, Value) {
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", *a)).collect();
    let r = reg.req(Method::GET, uri, &headers, vec![]).await;
    (r.status, r.json())
}

#[tokio::test]
async fn search_shows_only_what_the_caller_may_pull() {
    let keys = tempfile::tempdir().unwrap();
    let reg = token_service(keys.path());
    let repos = ["team-a/app", "team-a/tools/app-builder", "team-b/app", "team-b/secret-app", "public/app-base"];
    let scopes: Vec<String> = repos.iter().map(|r| format!("repository:{r}:pull,push")).collect();
    let root = token(&reg, Some("root"), &scopes.iter().map(String::as_str).collect::<Vec<_>>()).await;
    for r in repos {
        push_as(&reg, &root, r, "1.0").await;
    }

    // alice, with the token the docker daemon asks for (registry:catalog:search).
    let alice = format!("Bearer {}", token(&reg, Some("alice"), &["registry:catalog:search"]).await);
    let (status, v) = search(&reg, "/v2/_wharf/search?q=app", Some(&alice)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(names(&v, "repositories"), ["public/app-base", "team-a/app", "team-a/tools/app-builder"]);
    // A query naming team-b finds nothing of it, by name or by tag.
    for q in ["team-b", "secret", "team-b/app:1.0", "1.0"] {
        let (_, v) = search(&reg, &format!("/v2/_wharf/search?q={q}"), Some(&alice)).await;
        assert!(!v["repositories"].to_string().contains("team-b"), "alice searched {q:?} and saw team-b: {v}");
    }
    // The docker daemon sends Basic credentials to /v1/search: the same answer.
    let (status, v) = search(&reg, "/v1/search?q=app", Some(&basic("alice", "alice-pass"))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(names(&v, "results"), ["public/app-base", "team-a/app", "team-a/tools/app-builder"]);
    // dave is team-b's.
    let (_, v) = search(&reg, "/v1/search?q=app", Some(&basic("dave", "dave-pass"))).await;
    assert_eq!(names(&v, "results"), ["public/app-base", "team-b/app", "team-b/secret-app"]);

    // Anonymous callers (podman's first /v1/search carries no credentials): anonymous rules apply.
    let (status, v) = search(&reg, "/v1/search?q=app", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(names(&v, "results"), ["public/app-base"]);
    let (_, v) = search(&reg, "/v2/_wharf/search?q=", None).await;
    assert_eq!(names(&v, "repositories"), ["public/app-base"]);
    let anon = format!("Bearer {}", token(&reg, None, &["registry:catalog:search"]).await);
    let (_, v) = search(&reg, "/v2/_wharf/search?q=", Some(&anon)).await;
    assert_eq!(names(&v, "repositories"), ["public/app-base"]);

    // Wrong credentials are refused, not treated as anonymous.
    let (status, v) = search(&reg, "/v1/search?q=app", Some(&basic("alice", "nope"))).await;
    assert_eq!((status, v["errors"][0]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHORIZED")));
    let (status, _) = search(&reg, "/v2/_wharf/search?q=app", Some("Bearer not.a.token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A token for one repository is not a search token: 401 naming the scope to ask for.
    let narrow = format!("Bearer {}", token(&reg, Some("alice"), &["repository:team-a/app:pull"]).await);
    let r = reg.req(Method::GET, "/v2/_wharf/search?q=app", &[("authorization", &narrow)], vec![]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.header("www-authenticate").contains("scope=\"registry:catalog:search\""),
        "{}",
        r.header("www-authenticate")
    );

    // The catalog keeps its registry:2 behaviour: a token is required.
    assert_eq!(reg.get("/v2/_catalog").await.status, StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------- paging

#[tokio::test]
async fn pages_follow_the_link_header_to_the_end() {
    let reg = Reg::new();
    let mut pushed = BTreeSet::new();
    for i in 0..7 {
        let repo = format!("svc/api-{i}");
        reg.push_image(&repo, "v1", &repo).await;
        pushed.insert(repo);
    }
    reg.push_image("other/thing", "v1", "other").await;

    let mut seen = Vec::new();
    let mut uri = "/v2/_wharf/search?q=api&n=3".to_string();
    let mut pages = 0;
    loop {
        let r = reg.get(&uri).await;
        assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
        let page = names(&r.json(), "repositories");
        assert!(page.len() <= 3, "{page:?}");
        seen.extend(page);
        pages += 1;
        let link = r.header("link");
        if link.is_empty() {
            break;
        }
        // `</v2/_wharf/search?q=api&n=3&last=svc%2Fapi-2>; rel="next"`
        assert!(link.ends_with(">; rel=\"next\""), "{link}");
        uri = link.trim_start_matches('<').split('>').next().unwrap().to_string();
        assert!(uri.starts_with("/v2/_wharf/search?") && uri.contains("q=api"), "{uri}");
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), pushed);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in name order, each once: {seen:?}");
    // `last` need not be a repository that exists.
    assert_eq!(
        names(&reg.get("/v2/_wharf/search?q=api&last=svc/api-4x").await.json(), "repositories"),
        ["svc/api-5", "svc/api-6"]
    );
}

// ---------------------------------------------------------------- hostile input

#[tokio::test]
async fn hostile_input_gets_400_with_the_spec_error_shape() {
    let reg = Reg::new();
    reg.push_image("a/b", "1", "x").await;
    let long_q = "a".repeat(10_000);
    let long_last = "a".repeat(10_000);
    let cases: Vec<(String, &str)> = vec![
        ("/v2/_wharf/search?n=0".into(), "PAGINATION_NUMBER_INVALID"),
        ("/v2/_wharf/search?n=1001".into(), "PAGINATION_NUMBER_INVALID"),
        ("/v2/_wharf/search?n=99999999999999999999999999".into(), "PAGINATION_NUMBER_INVALID"),
        ("/v2/_wharf/search?n=-1".into(), "PAGINATION_NUMBER_INVALID"),
        ("/v2/_wharf/search?n=ten".into(), "PAGINATION_NUMBER_INVALID"),
        ("/v1/search?q=a&n=101".into(), "PAGINATION_NUMBER_INVALID"),
        (format!("/v2/_wharf/search?q={long_q}"), "UNSUPPORTED"),
        (format!("/v1/search?q={long_q}"), "UNSUPPORTED"),
        ("/v2/_wharf/search?q=a%00b".into(), "UNSUPPORTED"),
        ("/v2/_wharf/search?last=..%2F..%2Fetc".into(), "NAME_INVALID"),
        ("/v2/_wharf/search?last=UPPER".into(), "NAME_INVALID"),
        (format!("/v2/_wharf/search?last={long_last}"), "NAME_INVALID"),
    ];
    for (uri, code) in cases {
        let r = reg.get(&uri).await;
        let shown: String = uri.chars().take(60).collect();
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{shown}: {}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        assert_eq!(v["errors"][0]["code"], code, "{shown}: {v}");
        let message = v["errors"][0]["message"].as_str().unwrap_or("");
        assert!(!message.is_empty() && message.len() < 200, "{shown}: a short readable message: {message}");
    }
    let r = reg.req(Method::POST, "/v1/search?q=a", &[], vec![]).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"));
    // Still answering.
    assert_eq!(names(&reg.get("/v2/_wharf/search?q=a").await.json(), "repositories"), ["a/b"]);
}

// ---------------------------------------------------------------- freshness

/// Two replicas over one storage directory, each with its own index.
fn replicas(root: &Path) -> (Reg, Reg) {
    let make = || {
        let yaml = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  secret: test\nsearch:\n  refresh: 1s\n",
            root.display()
        );
        let app = wharf_registry::build(&Config::from_yaml(&yaml, std::iter::empty()).unwrap()).unwrap();
        Reg { router: app.router, dir: tempfile::tempdir().unwrap() }
    };
    (make(), make())
}

async fn found(reg: &Reg, q: &str) -> Vec<String> {
    let r = reg.get(&format!("/v2/_wharf/search?q={q}")).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    v["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            let name = r["name"].as_str().unwrap().to_string();
            let tags: Vec<String> =
                r["tags"].as_array().unwrap().iter().map(|t| format!("{name}:{}", t.as_str().unwrap())).collect();
            if tags.is_empty() { vec![name] } else { tags }
        })
        .collect()
}

#[tokio::test]
async fn pushes_and_deletes_show_at_once_here_and_within_the_refresh_on_other_replicas() {
    let storage = tempfile::tempdir().unwrap();
    let (a, b) = replicas(storage.path());
    a.push_image("shop/cart", "v1", "1").await;
    // Both indexes are built now, from the same storage.
    assert_eq!(found(&a, "cart").await, ["shop/cart"]);
    assert_eq!(found(&b, "cart").await, ["shop/cart"]);

    // A push through `a`: `a` answers with it at once, without a walk.
    a.push_image("shop/checkout", "rc-7", "2").await;
    assert_eq!(found(&a, "rc-7").await, ["shop/checkout:rc-7"]);
    // `b` learns of it from storage within its refresh interval (1s here).
    let deadline = Instant::now() + Duration::from_secs(15);
    while found(&b, "rc-7").await.is_empty() {
        assert!(Instant::now() < deadline, "replica b never saw the push through a");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A tag deleted through `a` is gone from `a` at once.
    let r = a.req(Method::DELETE, "/v2/shop/checkout/manifests/rc-7", &[], vec![]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&r.body));
    assert!(found(&a, "rc-7").await.is_empty());
    let deadline = Instant::now() + Duration::from_secs(15);
    while !found(&b, "rc-7").await.is_empty() {
        assert!(Instant::now() < deadline, "replica b kept a tag deleted through a");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------- podman

/// `podman search <host>/<partial>`: Debian's podman, daemonless, with its
/// own HOME, registries.conf (plain http on loopback), storage and run
/// directories, so nothing of the machine's configuration is read or written.
#[test]
fn podman_search_finds_a_pushed_repository_by_a_partial_name() {
    use common::*;
    let dir = tempfile::Builder::new().prefix("wharf-search.").tempdir().unwrap();
    let reg = RegistryProcess::start(Kind::Wharf, &minimal_config(&dir.path().join("data")));
    let img = MultiArchImage::generate(14, 2, 1024);
    let layout = dir.path().join("layout");
    img.write_layout(&layout, "v1");
    skopeo_push(&layout, "v1", &reg.addr, "search/podman-demo");
    skopeo_push(&layout, "v1", &reg.addr, "search/unrelated");

    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let conf =
        write(&home, "registries.conf", &format!("[[registry]]\nlocation = \"{}\"\ninsecure = true\n", reg.addr));
    let storage_conf = write(
        &home,
        "storage.conf",
        &format!(
            "[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
            home.join("runroot").display(),
            home.join("storage").display()
        ),
    );
    let out = run_ok(
        std::process::Command::new(tool("podman"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", home.join("run"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("CONTAINERS_REGISTRIES_CONF", &conf)
            .env("CONTAINERS_STORAGE_CONF", &storage_conf)
            .env("REGISTRY_AUTH_FILE", write(&home, "auth.json", "{}"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "none"])
            .args(["search", "--format", "{{.Name}}", "--limit", "10"])
            .arg(format!("{}/podman-de", reg.addr)),
        Duration::from_secs(120),
    );
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(lines, [format!("{}/search/podman-demo", reg.addr)], "{}", out.describe());
    // It was answered by /v1/search (podman falls back to the catalog when that fails).
    assert!(reg.log.text().contains("v1_search"), "podman did not use /v1/search:\n{}", reg.log.tail(20));
}
