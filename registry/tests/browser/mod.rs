//! A real browser for the UI tests: Debian's chromium, headless, driven
//! over WebDriver by chromedriver (both installed by scripts/tools.sh).
//! The browser may resolve no host name but loopback's
//! (`--host-resolver-rules`), so no packet leaves the machine; screenshots
//! go to target/ui-screenshots/.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

// ---------------------------------------------------------------- WebDriver

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver and one browser session, both ended on drop.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
    shots: PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    pub fn start(profile: &Path) -> Browser {
        let port = free_port();
        let mut driver = Command::new(tool("chromedriver"))
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver (scripts/tools.sh installs it): {e}"));
        let log = ChildLog::attach(&mut driver);
        if let Err(e) = log.wait_for("started successfully", Duration::from_secs(30)) {
            let _ = driver.kill();
            panic!("chromedriver did not start: {e}\n{}", log.text());
        }
        let http = http();
        let base = format!("http://127.0.0.1:{port}");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tool("chromium").display().to_string(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", format!("--user-data-dir={}", profile.display()),
                    "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-default-apps", "--no-pings",
                    "--disable-domain-reliability", "--disable-client-side-phishing-detection",
                    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
                    "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                ],
            },
        }}});
        let mut b = Browser { driver, base, session: String::new(), http, shots: screenshot_dir() };
        let v = b.call(reqwest::Method::POST, "/session", Some(caps));
        b.session = v["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_string();
        b
    }

    pub fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = req.send().unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = resp.status();
        let v: Value = serde_json::from_slice(&resp.bytes().unwrap_or_default()).unwrap_or(Value::Null);
        assert!(status.is_success(), "WebDriver {method} {path}: {status} {v}");
        v["value"].clone()
    }

    pub fn s(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    pub fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, &self.s("/url"), Some(json!({ "url": url })));
    }

    pub fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = format!("{}{}", self.base, self.s("/element"));
            let body = json!({"using": "css selector", "value": css}).to_string();
            let resp = self.http.post(&url).header("content-type", "application/json").body(body).send().unwrap();
            let ok = resp.status().is_success();
            let v: Value = serde_json::from_slice(&resp.bytes().unwrap_or_default()).unwrap_or(Value::Null);
            if ok {
                return v["value"][ELEMENT].as_str().unwrap_or_else(|| panic!("find {css}: {v}")).to_string();
            }
            assert!(Instant::now() < deadline, "no element {css:?} on {}:\n{}", self.url(), self.source());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn count(&self, css: &str) -> usize {
        let v = self.call(
            reqwest::Method::POST,
            &self.s("/elements"),
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_array().map_or(0, Vec::len)
    }

    /// Waits (10 s at most) until `css` matches `n` elements: a click that
    /// navigates may return before the next page is there.
    pub fn expect_count(&self, css: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.count(css) != n {
            assert!(
                Instant::now() < deadline,
                "{css}: {} elements, want {n}, on {}:\n{}",
                self.count(css),
                self.url(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.call(reqwest::Method::POST, &self.s(&format!("/element/{e}/click")), Some(json!({})));
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.call(reqwest::Method::POST, &self.s(&format!("/element/{e}/clear")), Some(json!({})));
        self.call(reqwest::Method::POST, &self.s(&format!("/element/{e}/value")), Some(json!({ "text": text })));
    }

    pub fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.call(reqwest::Method::GET, &self.s(&format!("/element/{e}/text")), None).as_str().unwrap_or("").to_string()
    }

    /// Waits (10 s at most) until `css`'s text is `want`: scripts change
    /// text after promises (the clipboard) resolve.
    pub fn expect_text(&self, css: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.text(css);
            if got == want {
                return;
            }
            assert!(Instant::now() < deadline, "{css}: text {got:?}, want {want:?}, on {}", self.url());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn source(&self) -> String {
        self.call(reqwest::Method::GET, &self.s("/source"), None).as_str().unwrap_or("").to_string()
    }

    pub fn url(&self) -> String {
        self.call(reqwest::Method::GET, &self.s("/url"), None).as_str().unwrap_or("").to_string()
    }

    pub fn script(&self, script: &str, args: Value) -> Value {
        self.call(reqwest::Method::POST, &self.s("/execute/sync"), Some(json!({ "script": script, "args": args })))
    }

    pub fn script_async(&self, script: &str, args: Value) -> Value {
        self.call(reqwest::Method::POST, &self.s("/execute/async"), Some(json!({ "script": script, "args": args })))
    }

    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.call(reqwest::Method::POST, &self.s("/goog/cdp/execute"), Some(json!({ "cmd": cmd, "params": params })))
    }

    pub fn accept_alert(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = format!("{}{}", self.base, self.s("/alert/text"));
            let resp = self.http.get(&url).send().unwrap();
            if resp.status().is_success() {
                let v: Value = serde_json::from_slice(&resp.bytes().unwrap_or_default()).unwrap_or(Value::Null);
                let text = v["value"].as_str().unwrap_or("").to_string();
                self.call(reqwest::Method::POST, &self.s("/alert/accept"), Some(json!({})));
                return text;
            }
            assert!(Instant::now() < deadline, "no confirmation dialog appeared");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        let v = self.call(reqwest::Method::GET, &self.s(&format!("/cookie/{name}")), None);
        v["value"].as_str().map(str::to_string)
    }

    pub fn theme(&self, dark: bool) {
        let value = if dark { "dark" } else { "light" };
        self.cdp("Emulation.setEmulatedMedia", json!({"features": [{"name": "prefers-color-scheme", "value": value}]}));
    }

    /// The page in both themes, as `<name>-light.png` and `<name>-dark.png`;
    /// checks the theme really changed the page's background.
    pub fn shots(&self, name: &str) {
        use base64::Engine as _;
        let mut backgrounds = Vec::new();
        for dark in [false, true] {
            self.theme(dark);
            backgrounds.push(self.script("return getComputedStyle(document.body).backgroundColor;", json!([])));
            let png = self.call(reqwest::Method::GET, &self.s("/screenshot"), None);
            let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
            assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
            let file = self.shots.join(format!("{name}-{}.png", if dark { "dark" } else { "light" }));
            std::fs::write(&file, bytes).unwrap();
        }
        self.theme(false);
        assert_ne!(backgrounds[0], backgrounds[1], "{name}: the dark theme did not change the background");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.http.delete(format!("{}/session/{}", self.base, self.session)).send();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn screenshot_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
