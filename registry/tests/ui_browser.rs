//! The web UI in a real browser (issue 14): Debian's chromium, headless,
//! driven over WebDriver by chromedriver (both installed by
//! scripts/tools.sh), against a real wharf-registry with the built-in token
//! service. A user who may see only `team-a/**` logs in, searches, opens a
//! repository, an index and one of its platform manifests, copies a pull
//! command, deletes a tag and logs out; nothing of `team-b` ever appears;
//! an anonymous visitor sees only anonymously pullable repositories; a
//! forged delete without the CSRF token fails. Screenshots of each page, in
//! the light and the dark theme, go to target/ui-screenshots/.

mod browser;
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use browser::Browser;
use common::*;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::json;

// ---------------------------------------------------------------- registry

const RULES: &str = r#"
groups:
  team-a: [alice]
  team-b: [bob]
rules:
  - { repository: "team-a/**", groups: [team-a], actions: [pull, push, delete] }
  - { repository: "team-b/**", groups: [team-b], actions: [pull, push, delete] }
  - { repository: "public/**", anonymous: true, actions: [pull] }
  - { repository: "**", users: [root], actions: ["*"] }
"#;

fn line(user: &str, password: &str) -> String {
    format!("{user}:{}\n", bcrypt::hash(password, 4).unwrap())
}

fn start_registry(dir: &Path) -> RegistryProcess {
    let key = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    std::fs::write(dir.join("signing.pem"), key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    let users = line("alice", "alice-pw") + &line("bob", "bob-pw") + &line("root", "root-pw");
    std::fs::write(dir.join("users"), users).unwrap();
    std::fs::write(dir.join("access.yml"), RULES).unwrap();
    let d = dir.display();
    let config = format!(
        "{}  secret: ui-test-secret\nauth:\n  token:\n    realm: auto\n    service: wharf-test\n    issuer: wharf\n    builtin:\n      signingkey: {d}/signing.pem\n      users: {d}/users\n      access: {d}/access.yml\nui:\n  enabled: true\n",
        minimal_config(&dir.join("data"))
    );
    RegistryProcess::start_expecting(Kind::Wharf, &config, 401)
}

fn push(reg: &RegistryProcess, layout: &Path, tag: &str, repo: &str) {
    run_ok(
        skopeo()
            .args(["copy", "--all", "--preserve-digests", "--retry-times", "0", "--dest-tls-verify=false"])
            .args(["--dest-creds", "root:root-pw"])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{repo}:{tag}", reg.addr)),
        CLIENT_TIMEOUT,
    );
}

fn no_team_b(b: &Browser, page: &str) {
    let src = b.source();
    assert!(!src.contains("team-b"), "{page} shows team-b:\n{src}");
}

#[test]
fn a_team_a_user_browses_copies_deletes_and_logs_out_and_never_sees_team_b() {
    let dir = tempfile::Builder::new().prefix("wharf-ui.").tempdir().unwrap();
    let reg = start_registry(dir.path());
    let img = MultiArchImage::generate(1414, 2, 4096);
    let layout = dir.path().join("layout");
    img.write_layout(&layout, "v1");
    img.write_layout(&dir.path().join("layout2"), "v2");
    for repo in ["team-a/app", "team-b/secret-app", "public/base"] {
        push(&reg, &layout, "v1", repo);
    }
    push(&reg, &dir.path().join("layout2"), "v2", "team-a/app");

    let b = Browser::start(&dir.path().join("profile"));
    let ui = reg.url("/ui/");

    // Anonymous: only what anonymous rules let anyone pull.
    b.goto(&ui);
    b.expect_count("#repositories tbody tr", 1);
    assert_eq!(b.text("#repositories tbody th a"), "public/base");
    assert!(!b.source().contains("team-a"), "anonymous sees team-a");
    no_team_b(&b, "the anonymous list");
    b.shots("repositories-anonymous");
    // Every control has a label.
    let unlabelled = b.script(
        "return [...document.querySelectorAll('input:not([type=hidden]),button')].filter(e => \
         !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()).length;",
        json!([]),
    );
    assert_eq!(unlabelled, 0);

    // Log in.
    b.click("#login-link");
    b.shots("login");
    b.type_into("#username", "alice");
    b.type_into("#password", "wrong");
    b.click("#login-submit");
    assert!(b.text("#login-error").contains("Wrong user name or password"));
    b.type_into("#username", "alice");
    b.type_into("#password", "alice-pw");
    b.click("#login-submit");
    assert!(b.text(".who").contains("alice"), "{}", b.source());
    let names: Vec<String> = (0..b.count("#repositories tbody tr"))
        .map(|i| {
            b.script(
                "return document.querySelectorAll('#repositories tbody th a')[arguments[0]].textContent;",
                json!([i]),
            )
        })
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["public/base", "team-a/app"]);
    no_team_b(&b, "alice's list");
    let session = b.cookie("wharf_session").expect("a session cookie");

    // Search.
    b.type_into("#q", "app");
    b.click("#search-submit");
    b.expect_count("#repositories tbody tr", 1);
    assert_eq!(b.text("#repositories tbody th a"), "team-a/app");
    no_team_b(&b, "the search for app");
    b.type_into("#q", "secret");
    b.click("#search-submit");
    assert!(b.text("#empty").contains("No repositories"));
    no_team_b(&b, "the search for secret");
    b.type_into("#q", "app");
    b.click("#search-submit");
    b.shots("search");

    // The repository's tags.
    b.click("#repositories tbody th a");
    b.expect_count("#tags tbody tr", 2);
    let row = b.text("#tags tr[data-tag=v1]");
    assert!(row.contains("index") && row.contains("linux/amd64") && row.contains("linux/arm64"), "{row}");
    no_team_b(&b, "the tags page");
    b.shots("tags");
    b.click("#sort-pushed");
    assert!(b.source().contains("aria-sort=\"descending\""));
    b.click("#sort-name");

    // Copy the pull command.
    let origin = reg.url("");
    b.cdp(
        "Browser.grantPermissions",
        json!({"origin": origin, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]}),
    );
    b.click("#tags tr[data-tag=v1] button[data-copy]");
    b.expect_text("#tags tr[data-tag=v1] button[data-copy]", "Copied");
    let copied = b.script_async(
        "navigator.clipboard.readText().then(arguments[0], e => arguments[0]('error: ' + e));",
        json!([]),
    );
    assert_eq!(copied, format!("docker pull {}/team-a/app:v1", reg.addr));

    // The index, then one platform manifest.
    b.click("#tags tr[data-tag=v1] td a");
    b.expect_count("#children tbody tr", 2);
    assert!(b.text("#children").contains("linux/arm64"));
    assert!(b.source().contains(&img.index.hex().to_string()));
    no_team_b(&b, "the index page");
    b.shots("index");
    b.click("#children tbody tr:first-child a");
    b.expect_count("#layers tbody tr", img.images[0].layers.len());
    assert!(b.text("h1").starts_with("Image"));
    assert!(b.source().contains(img.images[0].layers[0].hex()));
    no_team_b(&b, "the manifest page");
    b.shots("manifest");

    // A team-b page by its URL: not found, and nothing of it shown.
    b.goto(&reg.url("/ui/tags?repo=team-b/secret-app"));
    assert!(b.text("main").contains("No such repository"));
    assert!(!b.text("main").contains("team-b"));

    // Delete tag v2, confirming.
    b.goto(&reg.url("/ui/tags?repo=team-a/app"));
    b.click("#tags tr[data-tag=v2] button.danger");
    let question = b.accept_alert();
    assert!(question.contains("Delete tag v2"), "{question}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.count("#tags tr[data-tag=v2]") > 0 {
        assert!(Instant::now() < deadline, "v2 is still listed after the delete");
        std::thread::sleep(Duration::from_millis(100));
    }
    b.expect_count("#tags tr[data-tag=v1]", 1);
    b.shots("tags-after-delete");

    // A forged delete, from the page's origin with the session cookie but no CSRF token: refused.
    b.script(
        "const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0]; \
         for (const [k, v] of [['repo', 'team-a/app'], ['reference', 'v1']]) { \
           const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); } \
         document.body.appendChild(f); HTMLFormElement.prototype.submit.call(f);",
        json!([reg.url("/ui/delete")]),
    );
    assert!(b.text("main").contains("no valid CSRF token"), "{}", b.source());
    assert_eq!(b.text("h1"), "Forbidden");
    let forged = http()
        .post(reg.url("/ui/delete"))
        .header("cookie", format!("wharf_session={session}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("repo=team-a%2Fapp&reference=v1&csrf=0000")
        .send()
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    b.goto(&reg.url("/ui/tags?repo=team-a/app"));
    b.expect_count("#tags tr[data-tag=v1]", 1);

    // At phone width the page does not scroll sideways (tables scroll in their box).
    b.call(reqwest::Method::POST, &b.s("/window/rect"), Some(json!({"width": 390, "height": 844})));
    let overflow = b.script("return document.documentElement.scrollWidth - window.innerWidth;", json!([]));
    let wide = b.script(
        "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 \
         ).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).slice(0, 8) \
         .concat([window.innerWidth, document.documentElement.scrollWidth, document.documentElement.clientWidth, window.outerWidth]);",
        json!([]),
    );
    assert!(overflow.as_i64().unwrap() <= 0, "the tags page is wider than a phone by {overflow}: {wide}");
    b.shots("tags-phone");
    b.call(reqwest::Method::POST, &b.s("/window/rect"), Some(json!({"width": 1280, "height": 900})));

    // Log out: the page is anonymous again, and the old cookie no longer works.
    b.click("#logout");
    b.expect_count("#login-link", 1);
    assert!(!b.source().contains("team-a"), "{}", b.source());
    let replay = http().get(reg.url("/ui/")).header("cookie", format!("wharf_session={session}")).send().unwrap();
    let body = replay.text().unwrap();
    assert!(!body.contains("team-a") && body.contains("public/base"), "the logged-out session still works:\n{body}");
    assert!(!b.url().is_empty());
}
