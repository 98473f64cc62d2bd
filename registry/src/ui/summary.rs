//! Manifests as the UI shows them: kind, descriptors, platforms and sizes,
//! read from the stored JSON and cached by digest (content never changes).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::registry::Registry;
use crate::registry::digest::Digest;
use crate::registry::reference::{Reference, RepoName};

/// Summaries kept before the cache starts over.
const CACHE_MAX: usize = 50_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Index,
    Image,
    Other,
}

#[derive(Debug, Clone)]
pub struct Desc {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// `os/arch[/variant]` of an index entry.
    pub platform: Option<String>,
    pub artifact_type: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub digest: String,
    pub media_type: String,
    pub kind: Kind,
    pub manifest_size: u64,
    pub config: Option<Desc>,
    pub layers: Vec<Desc>,
    pub children: Vec<Desc>,
    pub subject: Option<String>,
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

fn desc(v: &Value) -> Option<Desc> {
    let platform = v.get("platform").map(|p| {
        let field = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("");
        let mut s = format!("{}/{}", field("os"), field("architecture"));
        if !field("variant").is_empty() {
            s = format!("{s}/{}", field("variant"));
        }
        s
    });
    Some(Desc {
        digest: v.get("digest")?.as_str()?.to_string(),
        media_type: v.get("mediaType").and_then(Value::as_str).unwrap_or("").to_string(),
        size: v.get("size").and_then(Value::as_u64).unwrap_or(0),
        platform,
        artifact_type: v.get("artifactType").and_then(Value::as_str).map(str::to_string),
    })
}

/// Reads a stored manifest's JSON (already validated when it was pushed).
pub fn parse(digest: &str, media_type: &str, body: &[u8]) -> Summary {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let list =
        |k: &str| v.get(k).and_then(Value::as_array).map(|a| a.iter().filter_map(desc).collect()).unwrap_or_default();
    let children: Vec<Desc> = list("manifests");
    let layers: Vec<Desc> = list("layers");
    let config = v.get("config").and_then(desc);
    let kind = if v.get("manifests").is_some() {
        Kind::Index
    } else if config.is_some() {
        Kind::Image
    } else {
        Kind::Other
    };
    let annotations = v
        .get("annotations")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default();
    let artifact_type = v.get("artifactType").and_then(Value::as_str).map(str::to_string).or_else(|| {
        config
            .as_ref()
            .map(|c| c.media_type.clone())
            .filter(|m| !m.contains("image.config") && !m.contains("container.image"))
    });
    Summary {
        digest: digest.to_string(),
        media_type: media_type.to_string(),
        kind,
        manifest_size: body.len() as u64,
        config,
        layers,
        children,
        subject: v.get("subject").and_then(|s| s.get("digest")).and_then(Value::as_str).map(str::to_string),
        artifact_type,
        annotations,
    }
}

impl Summary {
    /// The manifest, its config and its layers.
    pub fn own_blobs(&self) -> impl Iterator<Item = (&str, u64)> {
        std::iter::once((self.digest.as_str(), self.manifest_size))
            .chain(self.config.iter().chain(&self.layers).map(|d| (d.digest.as_str(), d.size)))
    }

    pub fn platforms(&self) -> Vec<String> {
        self.children.iter().filter_map(|c| c.platform.clone()).filter(|p| p != "unknown/unknown").collect()
    }
}

#[derive(Default)]
pub struct Summaries {
    cache: Mutex<HashMap<String, Arc<Summary>>>,
}

impl Summaries {
    /// The summary of a manifest of `repo`; `None` when it is gone.
    pub async fn get(&self, registry: &Registry, repo: &RepoName, digest: &Digest) -> Option<Arc<Summary>> {
        let key = digest.to_string();
        if let Some(s) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Some(s.clone());
        }
        let stored = registry.manifest_get(repo, &Reference::Digest(digest.clone())).await.ok()?;
        let s = Arc::new(parse(&key, &stored.media_type, &stored.body));
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, s.clone());
        Some(s)
    }

    /// Every distinct blob a manifest reaches (an index's children's too), with sizes.
    pub async fn blobs(&self, registry: &Registry, repo: &RepoName, digest: &Digest) -> HashMap<String, u64> {
        let mut out = HashMap::new();
        let Some(s) = self.get(registry, repo, digest).await else { return out };
        out.extend(s.own_blobs().map(|(d, n)| (d.to_string(), n)));
        for child in &s.children {
            let Ok(d) = child.digest.parse::<Digest>() else { continue };
            match self.get(registry, repo, &d).await {
                Some(c) => out.extend(c.own_blobs().map(|(d, n)| (d.to_string(), n))),
                None => {
                    out.insert(child.digest.clone(), child.size);
                }
            }
        }
        out
    }
}
