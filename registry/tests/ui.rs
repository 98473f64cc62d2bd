//! The web UI through the real router (issue 14); the browser walk-through
//! is ui_browser.rs. Here: the config switch and path, escaping of
//! attacker-controlled content, the cookie's attributes, htpasswd logins,
//! and deletes refused where they are not allowed.

mod inproc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use inproc::*;
use wharf_registry::config::Config;

const UI: &str = "ui:\n  enabled: true\n";

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_string()
}

fn session_of(r: &Resp) -> String {
    let c = r.header("set-cookie");
    c.split(';').next().unwrap_or("").to_string()
}

fn html(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[tokio::test]
async fn off_by_default_and_served_under_its_path() {
    let off = Reg::new();
    assert_eq!(off.get("/ui/").await.status, StatusCode::NOT_FOUND);
    let on = Reg::with_config("", "ui:\n  enabled: true\n  path: /console/\n");
    let r = on.get("/console/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), "text/html; charset=utf-8");
    assert!(r.header("content-security-policy").contains("script-src 'self'"));
    assert_eq!(on.get("/ui/").await.status, StatusCode::NOT_FOUND);
    assert_eq!(on.get("/console").await.header("location"), "/console/");
    let css = on.get("/console/assets/ui.css").await;
    assert_eq!((css.status, css.header("content-type")), (StatusCode::OK, "text/css; charset=utf-8"));
    assert!(html(&css).contains("prefers-color-scheme: dark"));
    assert_eq!(on.get("/console/assets/ui.js").await.status, StatusCode::OK);
    // The API is unchanged beside it.
    assert_eq!(on.get("/v2/").await.status, StatusCode::OK);

    for bad in ["/v2/ui/", "ui", "/UI/", "/a//b/", "/"] {
        let yaml = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /tmp/x\nui:\n  enabled: true\n  path: \"{bad}\"\n"
        );
        let e = Config::from_yaml(&yaml, std::iter::empty()).unwrap_err().to_string();
        assert!(e.contains("ui.path"), "{bad}: {e}");
    }
}

#[tokio::test]
async fn attacker_controlled_labels_env_history_and_annotations_are_escaped() {
    let reg = Reg::with_config("  delete:\n    enabled: true", UI);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux\"><script>alert(1)</script>",
        "config": {
            "Env": ["X=<img src=x onerror=alert(2)>"],
            "Entrypoint": ["/bin/sh", "-c", "</code><script>alert(3)</script>"],
            "Labels": {"<b>label</b>": "\"><script>alert(4)</script>"},
        },
        "history": [{"created_by": "<script>alert(5)</script>"}],
        "rootfs": {"type": "layers", "diff_ids": []},
    })
    .to_string();
    let cfg = reg.push_blob("evil/app", config.as_bytes()).await;
    let layer = reg.push_blob("evil/app", b"layer").await;
    let mut m: serde_json::Value =
        serde_json::from_slice(&image_manifest(&cfg, config.len(), &layer, 5, None)).unwrap();
    m["annotations"] = serde_json::json!({"org.opencontainers.image.description": "<script>alert(6)</script>"});
    let body = serde_json::to_vec(&m).unwrap();
    let r = reg.req(Method::PUT, "/v2/evil/app/manifests/v1", &[("content-type", OCI_MANIFEST)], body).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let d = r.header("docker-content-digest").to_string();

    let page = reg.get(&format!("/ui/manifest?repo=evil/app&digest={d}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let text = html(&page);
    assert!(!text.contains("<script>alert"), "unescaped script:\n{text}");
    assert!(!text.contains("<img src=x"), "unescaped img:\n{text}");
    assert!(!text.contains("<b>label"), "unescaped label:\n{text}");
    for i in 1..=6 {
        assert!(text.contains(&format!("alert({i})")), "alert({i}) is not shown (escaped) at all:\n{text}");
    }
    assert!(text.contains("&lt;script&gt;alert(4)&lt;/script&gt;"));
    // A query echoed into the search box is escaped too.
    let r = reg.get("/ui/?q=%22%3E%3Cscript%3Ealert(7)%3C/script%3E").await;
    assert!(!html(&r).contains("<script>alert(7)"));
}

#[tokio::test]
async fn the_session_cookie_is_httponly_samesite_strict_and_secure_under_https() {
    let reg = Reg::with_config("", UI);
    let r = reg.get("/ui/").await;
    let c = r.header("set-cookie");
    assert!(c.starts_with("wharf_session=") && c.contains("HttpOnly") && c.contains("SameSite=Strict"), "{c}");
    assert!(c.contains("Path=/ui/") && !c.contains("Secure"), "{c}");

    // Behind a trusted proxy that says the client spoke https: Secure.
    let yaml = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}/data\nhttp:\n  secret: s\n  trustedproxies: [127.0.0.1]\n{UI}",
        reg.dir.path().display()
    );
    let app = wharf_registry::build(&Config::from_yaml(&yaml, std::iter::empty()).unwrap()).unwrap();
    let proxied = Reg { router: app.router, dir: tempfile::tempdir().unwrap() };
    let mut req = Request::builder().uri("/ui/").header("host", "reg.example").header("x-forwarded-proto", "https");
    req = req.extension(wharf_registry::api::PeerAddr("127.0.0.1:4000".parse().unwrap()));
    let r = proxied.send(req.body(Body::empty()).unwrap()).await;
    assert!(r.header("set-cookie").contains("; Secure"), "{}", r.header("set-cookie"));
}

#[tokio::test]
async fn with_htpasswd_the_ui_needs_a_login_and_logout_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    std::fs::write(&path, format!("alice:{}\n", bcrypt::hash("wonderland", 4).unwrap())).unwrap();
    let reg = Reg::with_config("", &format!("auth:\n  htpasswd:\n    realm: r\n    path: {}\n{UI}", path.display()));
    let r = reg.get("/ui/").await;
    assert_eq!((r.status, r.header("location")), (StatusCode::SEE_OTHER, "/ui/login"));

    let form = reg.get("/ui/login").await;
    let (cookie, csrf) = (session_of(&form), csrf_of(&html(&form)));
    let login = |password: &'static str, csrf: String, cookie: String| {
        let reg = &reg;
        async move {
            let body = format!("csrf={csrf}&username=alice&password={password}").into_bytes();
            let h = [("cookie", cookie.as_str()), ("content-type", "application/x-www-form-urlencoded")];
            reg.req(Method::POST, "/ui/login", &h, body).await
        }
    };
    assert_eq!(login("wonderland", "forged".into(), cookie.clone()).await.status, StatusCode::FORBIDDEN);
    assert_eq!(login("nope", csrf.clone(), cookie.clone()).await.status, StatusCode::UNAUTHORIZED);
    let ok = login("wonderland", csrf, cookie.clone()).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let session = session_of(&ok);
    let home = reg.req(Method::GET, "/ui/", &[("cookie", &session)], vec![]).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(html(&home).contains("Signed in as <strong>alice</strong>"));

    let csrf = csrf_of(&html(&home));
    let h = [("cookie", session.as_str()), ("content-type", "application/x-www-form-urlencoded")];
    let out = reg.req(Method::POST, "/ui/logout", &h, format!("csrf={csrf}").into_bytes()).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let replay = reg.req(Method::GET, "/ui/", &[("cookie", &session)], vec![]).await;
    assert_eq!(replay.status, StatusCode::SEE_OTHER, "the logged-out session still works");
}

#[tokio::test]
async fn deletes_are_refused_where_delete_is_disabled() {
    let reg = Reg::with_config("", UI);
    reg.push_image("shop/cart", "v1", "x").await;
    let page = reg.get("/ui/tags?repo=shop/cart").await;
    assert_eq!(page.status, StatusCode::OK);
    let text = html(&page);
    assert!(text.contains("docker pull reg.test:5000/shop/cart:v1"), "the pull command uses the host reached");
    assert!(!text.contains("/ui/delete"), "a delete button although storage.delete is off");
    // A session and CSRF token from a replica that does show delete buttons (the same http.secret).
    let other = Reg::with_config("  delete:\n    enabled: true", UI);
    other.push_image("shop/cart", "v1", "x").await;
    let shown = other.get("/ui/tags?repo=shop/cart").await;
    let (cookie, csrf) = (session_of(&shown), csrf_of(&html(&shown)));
    let h = [("cookie", cookie.as_str()), ("content-type", "application/x-www-form-urlencoded")];
    let r = reg
        .req(Method::POST, "/ui/delete", &h, format!("csrf={csrf}&repo=shop%2Fcart&reference=v1").into_bytes())
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reg.get("/v2/shop/cart/tags/list").await.json()["tags"], serde_json::json!(["v1"]));
    // Unknown and invalid repositories are a 404 page, not an error.
    assert_eq!(reg.get("/ui/tags?repo=..%2Fetc").await.status, StatusCode::NOT_FOUND);
    assert_eq!(reg.get("/ui/manifest?repo=shop/cart&digest=nope").await.status, StatusCode::BAD_REQUEST);
}
