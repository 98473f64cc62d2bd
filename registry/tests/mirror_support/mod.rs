//! What the mirror tests share: a client session, upstream registries and
//! their request counts, image fixtures.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use reqwest::blocking::Response;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::common::*;

// ---------------------------------------------------------------- clients

pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// A registry client that answers Bearer challenges with the realm (the
/// docker token dance), as docker and containerd do.
pub struct Session {
    base: String,
    creds: Option<(String, String)>,
    token: Option<String>,
}

pub fn challenge_params(h: &str) -> BTreeMap<String, String> {
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
    pub fn new(base: &str, creds: Option<(&str, &str)>) -> Session {
        Session { base: base.into(), creds: creds.map(|(u, p)| (u.into(), p.into())), token: None }
    }

    pub fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Response {
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

    pub fn get(&mut self, path: &str) -> Response {
        self.send("GET", path, &[("accept", ACCEPT_ALL)], Vec::new())
    }

    /// Pushes blobs (monolithic) and a manifest under `tag`.
    pub fn push(&mut self, repo: &str, tag: &str, blobs: &[&Blob], manifest: &Blob) {
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
    pub fn pull(&mut self, repo: &str, reference: &str, query: &str) -> (Vec<u8>, HeaderMap) {
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
pub fn image(seed: u64, layer_bytes: usize) -> (Vec<Blob>, Blob) {
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

pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// An `auth:` section with the built-in token service over `users` and `rules`.
pub fn token_auth(dir: &Path, users: &[(&str, &str)], rules: &str) -> String {
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
pub fn wharf(root: &Path, extra: &str, base_status: u16) -> (RegistryProcess, String) {
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
pub fn request_counts(debug_addr: &str) -> BTreeMap<(String, String, String), u64> {
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
pub fn count(counts: &BTreeMap<(String, String, String), u64>, route: &str, method: &str) -> u64 {
    counts.iter().filter(|((r, m, _), _)| r == route && m == method).map(|(_, n)| n).sum()
}

/// Every request the upstream saw, of any route, method and status.
pub fn total(counts: &BTreeMap<(String, String, String), u64>) -> u64 {
    counts.values().sum()
}

pub fn distribution(root: &Path) -> RegistryProcess {
    RegistryProcess::start(Kind::Distribution, &minimal_config(root))
}

/// Lines of distribution's access log for `method path`, after a marker
/// request (sent last) has been logged, so earlier lines are all in.
pub fn access_log_count(d: &RegistryProcess, method: &str, path: &str) -> usize {
    let marker = format!("/v2/wharf-marker-{}/tags/list", rand_suffix());
    let _ = http().get(d.url(&marker)).send();
    d.log.wait_for(&marker, Duration::from_secs(20)).unwrap_or_else(|e| panic!("distribution log: {e}"));
    let needle = format!("\"{method} {path} HTTP/1.1\"");
    d.log.text().lines().filter(|l| l.contains(&needle)).count()
}

pub fn rand_suffix() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

// ---------------------------------------------------------------- tests
