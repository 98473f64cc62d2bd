//! OCI image fixtures written by code, digests, and the storage tree a registry leaves.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

// ---------------------------------------------------------------- digests

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// sha256 of a file, streamed.
pub fn file_digest(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

// ---------------------------------------------------------------- fixtures

pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Deterministic bytes (splitmix64), so fixtures are reproducible per seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// A content-addressed blob.
#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob { media_type: media_type.into(), digest: sha256_digest(&bytes), bytes }
    }
    pub fn hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").unwrap()
    }
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()})
    }
}

/// One file a layer adds (or, with `whiteout`, removes).
#[derive(Clone, Debug)]
pub struct LayerFile {
    pub path: String,
    pub content: Vec<u8>,
}

/// An image for one platform: gzip layers, config, manifest.
#[derive(Clone, Debug)]
pub struct PlatformImage {
    pub os: String,
    pub arch: String,
    pub layers: Vec<Blob>,
    pub diff_ids: Vec<String>,
    pub config: Blob,
    pub manifest: Blob,
    /// Every file of the unpacked root filesystem, after all layers.
    pub rootfs: BTreeMap<String, Vec<u8>>,
    /// Paths some lower layer added and a higher layer's whiteout removed.
    pub removed: Vec<String>,
}

impl PlatformImage {
    /// `layers` layers (at least 2), each holding a few files of about
    /// `layer_bytes` in all; the last layer whites out a file of the first.
    pub fn generate(rng: &mut Rng, os: &str, arch: &str, layers: usize, layer_bytes: usize) -> PlatformImage {
        assert!(layers >= 2);
        let mut rootfs = BTreeMap::new();
        let mut layer_blobs = Vec::new();
        let mut diff_ids = Vec::new();
        let tag = rng.next_u64();
        for i in 0..layers {
            let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
            entries
                .push((format!("etc/wharf/{arch}-layer{i}"), format!("{os}/{arch} layer {i} {tag:x}\n").into_bytes()));
            let files = 3;
            for f in 0..files {
                entries.push((format!("data/l{i}/f{f}.bin"), rng.bytes(layer_bytes / files)));
            }
            if i == 0 {
                entries.push(("data/gone.txt".into(), b"removed by the top layer\n".to_vec()));
            }
            if i == layers - 1 {
                entries.push(("data/.wh.gone.txt".into(), Vec::new()));
            }
            let tar = tar_bytes(&entries);
            diff_ids.push(sha256_digest(&tar));
            layer_blobs.push(Blob::new(MT_LAYER_GZIP, gzip(&tar)));
            for (p, c) in entries {
                if let Some(name) = p.strip_prefix("data/.wh.") {
                    rootfs.remove(&format!("data/{name}"));
                } else {
                    rootfs.insert(p, c);
                }
            }
        }
        let config = json!({
            "architecture": arch,
            "os": os,
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": (0..layers).map(|i| json!({"created_by": format!("wharf fixture layer {i}")})).collect::<Vec<_>>(),
        });
        let config = Blob::new(MT_CONFIG, serde_json::to_vec(&config).unwrap());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": config.descriptor(),
            "layers": layer_blobs.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        });
        let manifest = Blob::new(MT_MANIFEST, serde_json::to_vec(&manifest).unwrap());
        PlatformImage {
            os: os.into(),
            arch: arch.into(),
            layers: layer_blobs,
            diff_ids,
            config,
            manifest,
            rootfs,
            removed: vec!["data/gone.txt".into()],
        }
    }

    pub fn platform(&self) -> String {
        format!("{}/{}", self.os, self.arch)
    }

    /// Config and layers (what a manifest references).
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut v = vec![&self.config];
        v.extend(self.layers.iter());
        v
    }

    /// The chain ID of the top layer (what containerd names the unpacked snapshot).
    pub fn chain_id(&self) -> String {
        let mut chain = self.diff_ids[0].clone();
        for d in &self.diff_ids[1..] {
            chain = sha256_digest(format!("{chain} {d}").as_bytes());
        }
        chain
    }

    /// An OCI layout whose index.json names this image as `ref_name`.
    pub fn write_layout(&self, dir: &Path, ref_name: &str) {
        let mut desc = self.manifest.descriptor();
        desc["annotations"] = json!({"org.opencontainers.image.ref.name": ref_name});
        let mut all = vec![&self.manifest];
        all.extend(self.blobs());
        write_layout(dir, &all, desc);
    }
}

/// A multi-platform image: an OCI index over linux/amd64 and linux/arm64.
#[derive(Clone, Debug)]
pub struct MultiArchImage {
    pub index: Blob,
    pub images: Vec<PlatformImage>,
}

impl MultiArchImage {
    pub fn generate(seed: u64, layers: usize, layer_bytes: usize) -> MultiArchImage {
        let mut rng = Rng::new(seed);
        let images: Vec<PlatformImage> = [("linux", "amd64"), ("linux", "arm64")]
            .iter()
            .map(|(os, arch)| PlatformImage::generate(&mut rng, os, arch, layers, layer_bytes))
            .collect();
        let index = json!({
            "schemaVersion": 2,
            "mediaType": MT_INDEX,
            "manifests": images.iter().map(|img| {
                let mut d = img.manifest.descriptor();
                d["platform"] = json!({"architecture": img.arch, "os": img.os});
                d
            }).collect::<Vec<_>>(),
        });
        MultiArchImage { index: Blob::new(MT_INDEX, serde_json::to_vec(&index).unwrap()), images }
    }

    pub fn image(&self, arch: &str) -> &PlatformImage {
        self.images.iter().find(|i| i.arch == arch).unwrap_or_else(|| panic!("no {arch} image"))
    }

    /// Every blob: index, manifests, configs, layers.
    pub fn all_blobs(&self) -> Vec<&Blob> {
        let mut v = vec![&self.index];
        for img in &self.images {
            v.push(&img.manifest);
            v.extend(img.blobs());
        }
        v
    }

    /// An OCI layout whose index.json names the index as `ref_name`.
    pub fn write_layout(&self, dir: &Path, ref_name: &str) {
        let mut desc = self.index.descriptor();
        desc["annotations"] = json!({"org.opencontainers.image.ref.name": ref_name});
        write_layout(dir, &self.all_blobs(), desc);
    }
}

fn write_layout(dir: &Path, blobs: &[&Blob], top: Value) {
    let blob_dir = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blob_dir).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    for b in blobs {
        std::fs::write(blob_dir.join(b.hex()), &b.bytes).unwrap();
    }
    let index = json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [top]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// A tar stream with the given regular files (and their parent directories).
pub fn tar_bytes(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs = BTreeSet::new();
    for (path, _) in entries {
        let mut p = Path::new(path).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(format!("{}/", d.display()));
            p = d.parent();
        }
    }
    for d in &dirs {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, d, std::io::empty()).unwrap();
    }
    for (path, content) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(content.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, content.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Reads an OCI layout: the top descriptor named `ref_name` (or the only
/// one) and the digest of every blob file (verified against its name).
pub fn read_layout(dir: &Path, ref_name: Option<&str>) -> (Value, BTreeSet<String>) {
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    let top = match ref_name {
        Some(r) => manifests
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == r)
            .unwrap_or_else(|| panic!("no {r} in {index}")),
        None => {
            assert_eq!(manifests.len(), 1, "{index}");
            &manifests[0]
        }
    };
    let mut blobs = BTreeSet::new();
    for e in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let got = file_digest(&e.path());
        assert_eq!(got, format!("sha256:{name}"), "blob file {} does not hash to its name", e.path().display());
        blobs.insert(got);
    }
    (top.clone(), blobs)
}

// ---------------------------------------------------------------- storage tree

/// Every file under `root`, relative, sorted.
pub fn files_under(root: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.map_while(Result::ok) {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

/// The shape of a registry:2 storage path: repository names, tags, hex
/// digests and their two-character prefixes replaced by placeholders.
pub fn path_pattern(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    let is_hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    while i < parts.len() {
        let p = parts[i];
        if p == "repositories" {
            out.push(p.into());
            // The repository name runs up to the first `_layers`, `_manifests` or `_uploads`.
            let mut j = i + 1;
            while j < parts.len() && !parts[j].starts_with('_') {
                j += 1;
            }
            out.push("<repo>".into());
            i = j;
            continue;
        }
        if p == "tags" && out.last().is_some_and(|l| l == "_manifests") && i + 1 < parts.len() {
            out.push("tags".into());
            out.push("<tag>".into());
            i += 2;
            continue;
        }
        if p == "_uploads" && i + 1 < parts.len() {
            out.push("_uploads".into());
            out.push("<uuid>".into());
            i += 2;
            continue;
        }
        if is_hex64(p) {
            out.push("<hex>".into());
        } else if p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()) && out.last().is_some_and(|l| l == "sha256")
        {
            out.push("<xx>".into());
        } else {
            out.push(p.into());
        }
        i += 1;
    }
    out.join("/")
}
