//! `wharf-image-builder`: writes an OCI image layout holding one static
//! binary, with no container engine. Every input that could vary between
//! builds (file times, owners, entry order, gzip header, config `created`)
//! is fixed, so the same binary gives the same digest.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Parser;
use oci_spec::image::{
    ConfigBuilder, DescriptorBuilder, ImageConfigurationBuilder, ImageIndexBuilder, ImageManifestBuilder, MediaType,
    RootFsBuilder, SCHEMA_VERSION,
};
use sha2::{Digest as _, Sha256};

/// The non-root user images run as (distroless' `nonroot`).
const NONROOT: u64 = 65532;

#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The binary to install as /usr/local/bin/<name>.
    #[arg(long)]
    binary: PathBuf,
    /// Image name (used for the binary and the layout's ref name).
    #[arg(long)]
    name: String,
    /// Tag recorded as org.opencontainers.image.ref.name in index.json.
    #[arg(long)]
    tag: String,
    /// Extra files, as SOURCE:DEST (e.g. the CA bundle).
    #[arg(long = "file")]
    files: Vec<String>,
    /// Arguments after the entrypoint.
    #[arg(long = "cmd")]
    cmd: Vec<String>,
    /// Labels, as KEY=VALUE.
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Ports to expose, e.g. 5000/tcp.
    #[arg(long = "expose")]
    expose: Vec<String>,
    /// Output directory (an OCI image layout); replaced if it exists.
    #[arg(long)]
    out: PathBuf,
}

struct Blob {
    digest: String,
    size: u64,
}

/// JSON with object keys sorted: oci-spec keeps labels and annotations in
/// HashMaps, whose order changes from run to run, and with it the digest.
fn canonical_json<T: serde::Serialize>(value: &T) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_vec(&serde_json::to_value(value)?)?)
}

fn write_blob(layout: &Path, data: &[u8]) -> anyhow::Result<Blob> {
    let hex = hex::encode(Sha256::digest(data));
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir)?;
    fs::write(dir.join(&hex), data)?;
    Ok(Blob { digest: format!("sha256:{hex}"), size: data.len() as u64 })
}

fn header(path: &str, mode: u32, size: u64, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    // Paths are short and ASCII; set_path cannot fail for them.
    let _ = h.set_path(path);
    h.set_cksum();
    h
}

/// The single layer: directories, /etc/passwd and /etc/group for the
/// non-root user, /tmp, the binary and the extra files, in sorted order.
fn layer(args: &Args) -> anyhow::Result<Vec<u8>> {
    let mut files: Vec<(String, Vec<u8>, u32)> = Vec::new();
    files.push((
        "etc/passwd".into(),
        format!(
            "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n"
        )
        .into_bytes(),
        0o644,
    ));
    files.push(("etc/group".into(), format!("root:x:0:\nnonroot:x:{NONROOT}:\n").into_bytes(), 0o644));
    let bin = fs::read(&args.binary).with_context(|| format!("reading {}", args.binary.display()))?;
    files.push((format!("usr/local/bin/{}", args.name), bin, 0o755));
    for spec in &args.files {
        let (src, dst) = spec.split_once(':').context("--file takes SOURCE:DEST")?;
        let data = fs::read(src).with_context(|| format!("reading {src}"))?;
        files.push((dst.trim_start_matches('/').to_string(), data, 0o644));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));

    let mut dirs: Vec<String> = vec!["tmp".into(), "home/nonroot".into()];
    for (path, _, _) in &files {
        let mut p = Path::new(path).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.push(d.display().to_string());
            p = d.parent();
        }
    }
    dirs.push("home".into());
    dirs.sort();
    dirs.dedup();

    let mut tar = tar::Builder::new(Vec::new());
    for d in &dirs {
        let mode = if d == "tmp" { 0o1777 } else { 0o755 };
        let mut h = header(&format!("{d}/"), mode, 0, tar::EntryType::Directory);
        if d == "home/nonroot" {
            h.set_uid(NONROOT);
            h.set_gid(NONROOT);
            h.set_cksum();
        }
        tar.append(&h, std::io::empty())?;
    }
    for (path, data, mode) in &files {
        tar.append(&header(path, *mode, data.len() as u64, tar::EntryType::Regular), data.as_slice())?;
    }
    Ok(tar.into_inner()?)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tar = layer(&args)?;
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&tar)));
    // A fixed gzip header (no name, mtime 0) and level keep the bytes stable.
    let mut gz = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::new(6));
    gz.write_all(&tar)?;
    let gz = gz.finish()?;

    if args.out.exists() {
        fs::remove_dir_all(&args.out)?;
    }
    fs::create_dir_all(&args.out)?;
    let layer_blob = write_blob(&args.out, &gz)?;

    let mut labels = HashMap::new();
    for l in &args.labels {
        let (k, v) = l.split_once('=').context("--label takes KEY=VALUE")?;
        labels.insert(k.to_string(), v.to_string());
    }
    let exposed: HashMap<String, HashMap<(), ()>> = args.expose.iter().map(|p| (p.clone(), HashMap::new())).collect();
    let mut config = ConfigBuilder::default()
        .user(format!("{NONROOT}:{NONROOT}"))
        .entrypoint(vec![format!("/usr/local/bin/{}", args.name)])
        .cmd(args.cmd.clone())
        .working_dir("/".to_string())
        .env(vec!["PATH=/usr/local/bin".to_string()])
        .labels(labels.clone())
        .build()?;
    if !exposed.is_empty() {
        config.set_exposed_ports(Some(args.expose.clone()));
    }
    let image_config = ImageConfigurationBuilder::default()
        .architecture(oci_spec::image::Arch::Amd64)
        .os(oci_spec::image::Os::Linux)
        .config(config)
        .rootfs(RootFsBuilder::default().typ("layers".to_string()).diff_ids(vec![diff_id]).build()?)
        .created("1970-01-01T00:00:00Z".to_string())
        .build()?;
    let config_blob = write_blob(&args.out, &canonical_json(&image_config)?)?;

    let manifest = ImageManifestBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageManifest)
        .config(
            DescriptorBuilder::default()
                .media_type(MediaType::ImageConfig)
                .digest(config_blob.digest.parse::<oci_spec::image::Digest>()?)
                .size(config_blob.size)
                .build()?,
        )
        .layers(vec![
            DescriptorBuilder::default()
                .media_type(MediaType::ImageLayerGzip)
                .digest(layer_blob.digest.parse::<oci_spec::image::Digest>()?)
                .size(layer_blob.size)
                .build()?,
        ])
        .annotations(labels)
        .build()?;
    let manifest_blob = write_blob(&args.out, &canonical_json(&manifest)?)?;
    let index = ImageIndexBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![
            DescriptorBuilder::default()
                .media_type(MediaType::ImageManifest)
                .digest(manifest_blob.digest.parse::<oci_spec::image::Digest>()?)
                .size(manifest_blob.size)
                .annotations(HashMap::from([("org.opencontainers.image.ref.name".to_string(), args.tag.clone())]))
                .platform(
                    oci_spec::image::PlatformBuilder::default()
                        .architecture(oci_spec::image::Arch::Amd64)
                        .os(oci_spec::image::Os::Linux)
                        .build()?,
                )
                .build()?,
        ])
        .build()?;
    fs::write(args.out.join("index.json"), canonical_json(&index)?)?;
    fs::write(args.out.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
    if manifest_blob.size == 0 {
        bail!("empty manifest");
    }
    println!("{}", manifest_blob.digest);
    Ok(())
}
