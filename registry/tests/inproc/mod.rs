//! An in-process registry: the real router over a temporary directory,
//! driven with tower's `oneshot` (no socket).
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use sha2::{Digest as _, Sha256};
use tower::ServiceExt;

use wharf_registry::config::Config;

pub struct Reg {
    pub router: Router,
    pub dir: tempfile::TempDir,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    /// The spec error code of an error response.
    pub fn code(&self) -> String {
        self.json()["errors"][0]["code"].as_str().unwrap_or("").to_string()
    }
}

pub fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

impl Reg {
    pub fn with(extra: &str) -> Reg {
        Reg::with_config(extra, "")
    }

    /// `storage_extra` goes under `storage:`, `top` at the top level.
    pub fn with_config(storage_extra: &str, top: &str) -> Reg {
        let dir = tempfile::tempdir().unwrap();
        let top = top.replace("$DIR", &dir.path().display().to_string());
        let yaml = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}/data\n{storage_extra}\nhttp:\n  secret: test\n{top}\n",
            dir.path().display()
        );
        let config = Config::from_yaml(&yaml, std::iter::empty()).unwrap();
        let app = wharf_registry::build(&config).unwrap();
        Reg { router: app.router, dir }
    }

    pub fn new() -> Reg {
        Reg::with("  delete:\n    enabled: true")
    }

    pub async fn send(&self, req: Request<Body>) -> Resp {
        let resp: Response<Body> = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "a 500: {}", String::from_utf8_lossy(&body));
        Resp { status, headers, body }
    }

    pub async fn req(&self, method: Method, uri: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Resp {
        let mut b = Request::builder().method(method).uri(uri).header("host", "reg.test:5000");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Body::from(body)).unwrap()).await
    }

    pub async fn get(&self, uri: &str) -> Resp {
        self.req(Method::GET, uri, &[], vec![]).await
    }

    /// Pushes a blob monolithically and returns its digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let d = digest(data);
        let r = self.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={d}"), &[], data.to_vec()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));
        d
    }

    /// Pushes a config and one layer, then an image manifest under `reference`.
    pub async fn push_image(&self, repo: &str, reference: &str, seed: &str) -> (String, Vec<u8>) {
        let config = format!("{{\"seed\":\"{seed}\"}}");
        let cfg = self.push_blob(repo, config.as_bytes()).await;
        let layer = self.push_blob(repo, format!("layer {seed}").as_bytes()).await;
        let manifest = image_manifest(&cfg, config.len(), &layer, format!("layer {seed}").len(), None);
        let r = self
            .req(
                Method::PUT,
                &format!("/v2/{repo}/manifests/{reference}"),
                &[("content-type", OCI_MANIFEST)],
                manifest.clone(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));
        (r.header("docker-content-digest").to_string(), manifest)
    }

    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.path().to_path_buf()];
        while let Some(p) = stack.pop() {
            for e in std::fs::read_dir(&p).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(e.path().strip_prefix(self.dir.path()).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub fn image_manifest(
    cfg: &str,
    cfg_len: usize,
    layer: &str,
    layer_len: usize,
    subject: Option<(&str, usize)>,
) -> Vec<u8> {
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": cfg_len},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_len}],
    });
    if let Some((d, n)) = subject {
        m["subject"] = serde_json::json!({"mediaType": OCI_MANIFEST, "digest": d, "size": n});
        m["artifactType"] = serde_json::json!("application/vnd.example.sig");
    }
    serde_json::to_vec(&m).unwrap()
}
