//! Manifest documents: media types, parsing, and what a manifest refers to.
//! Pure functions; no storage, no HTTP.

use std::collections::BTreeMap;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Serialize;

use super::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// The largest manifest accepted, as in distribution.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    #[error(
        "media type `{0}` is not a manifest type this registry stores (OCI image manifest or index, Docker schema2 manifest or manifest list)"
    )]
    UnknownMediaType(String),
    #[error("Docker schema1 manifests are deprecated and not supported; push a schema2 or OCI manifest")]
    Schema1,
    #[error("the manifest's mediaType `{body}` does not match its Content-Type `{header}`")]
    MediaTypeMismatch { body: String, header: String },
    #[error(
        "the manifest has no mediaType field, so its content makes it a `{derived}`, not the `{header}` its Content-Type names; put the media type in the manifest"
    )]
    MediaTypeMissing { derived: &'static str, header: String },
    #[error("manifest is not a valid {kind}: {message}")]
    Shape { kind: &'static str, message: String },
    #[error("descriptor digest `{0}` is invalid")]
    Digest(String),
    #[error("schemaVersion must be 2")]
    SchemaVersion,
}

/// The two shapes a manifest can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Image,
    Index,
}

/// What the registry needs to know about a stored manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub media_type: String,
    pub kind: Kind,
    /// Blobs (config and layers) that must exist in the repository.
    pub blobs: Vec<Digest>,
    /// Manifests (index children) that must exist in the repository.
    pub children: Vec<Digest>,
    pub subject: Option<Digest>,
    /// `artifactType`, or for an image manifest without one, its config's media type.
    pub artifact_type: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
}

fn is_known(media_type: &str) -> bool {
    [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].contains(&media_type)
}

fn digest_of(d: &Descriptor) -> Result<Digest, ManifestError> {
    let s = d.digest().to_string();
    s.parse().map_err(|_| ManifestError::Digest(s))
}

/// Layers that live outside the registry (Docker foreign layers, OCI
/// non-distributable layers) are not required to exist.
fn is_external(d: &Descriptor) -> bool {
    let mt = d.media_type().to_string();
    mt.contains("foreign") || mt.contains("nondistributable")
}

/// Parses a manifest as pushed, with the request's Content-Type (`None` for
/// one read back from storage).
///
/// The media type comes from the content alone, as distribution derives it
/// when it reads a manifest back: the `mediaType` field, or for a manifest
/// without one, an OCI index if it has `manifests` and an OCI image manifest
/// otherwise. The Content-Type is only checked against it (a Docker type
/// needs the field, as in distribution), so the type served is the same
/// before and after a restart.
pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Parsed, ManifestError> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        #[serde(rename = "schemaVersion")]
        schema_version: Option<i64>,
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(body).map_err(|e| ManifestError::Json(e.to_string()))?;
    let header = content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_string());
    if let Some(h) = &header
        && DOCKER_SCHEMA1.contains(&h.as_str())
    {
        return Err(ManifestError::Schema1);
    }
    if probe.schema_version == Some(1) {
        return Err(ManifestError::Schema1);
    }
    if probe.schema_version != Some(2) {
        return Err(ManifestError::SchemaVersion);
    }
    let media_type = match (&probe.media_type, &header) {
        (Some(body_mt), Some(h)) if is_known(h) && h != body_mt => {
            return Err(ManifestError::MediaTypeMismatch { body: body_mt.clone(), header: h.clone() });
        }
        (Some(body_mt), _) => body_mt.clone(),
        (None, h) => {
            let derived = if probe.manifests.is_some() { OCI_INDEX } else { OCI_MANIFEST };
            if let Some(h) = h
                && is_known(h)
                && h != derived
            {
                return Err(ManifestError::MediaTypeMissing { derived, header: h.clone() });
            }
            derived.to_string()
        }
    };
    if DOCKER_SCHEMA1.contains(&media_type.as_str()) {
        return Err(ManifestError::Schema1);
    }
    match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => parse_image(body, media_type),
        OCI_INDEX | DOCKER_LIST => parse_index(body, media_type),
        other => Err(ManifestError::UnknownMediaType(other.to_string())),
    }
}

fn parse_image(body: &[u8], media_type: String) -> Result<Parsed, ManifestError> {
    let m: ImageManifest = serde_json::from_slice(body)
        .map_err(|e| ManifestError::Shape { kind: "image manifest", message: e.to_string() })?;
    let mut blobs = vec![digest_of(m.config())?];
    for layer in m.layers() {
        let d = digest_of(layer)?;
        if !is_external(layer) {
            blobs.push(d);
        }
    }
    let subject = m.subject().as_ref().map(digest_of).transpose()?;
    let artifact_type =
        m.artifact_type().as_ref().map(|a| a.to_string()).or_else(|| Some(m.config().media_type().to_string()));
    Ok(Parsed {
        media_type,
        kind: Kind::Image,
        blobs,
        children: Vec::new(),
        subject,
        artifact_type,
        annotations: m.annotations().as_ref().map(|a| a.clone().into_iter().collect()),
    })
}

fn parse_index(body: &[u8], media_type: String) -> Result<Parsed, ManifestError> {
    let i: ImageIndex =
        serde_json::from_slice(body).map_err(|e| ManifestError::Shape { kind: "index", message: e.to_string() })?;
    let children = i.manifests().iter().map(digest_of).collect::<Result<Vec<_>, _>>()?;
    let subject = i.subject().as_ref().map(digest_of).transpose()?;
    Ok(Parsed {
        media_type,
        kind: Kind::Index,
        blobs: Vec::new(),
        children,
        subject,
        artifact_type: i.artifact_type().as_ref().map(|a| a.to_string()),
        annotations: i.annotations().as_ref().map(|a| a.clone().into_iter().collect()),
    })
}

/// One entry of a referrers response.
#[derive(Debug, Clone, Serialize)]
pub struct ReferrerDescriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(rename = "artifactType", skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The image index that answers a referrers request.
#[derive(Debug, Serialize)]
pub struct ReferrersIndex {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType")]
    pub media_type: &'static str,
    pub manifests: Vec<ReferrerDescriptor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    const L1: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn image(media_type: Option<&str>) -> String {
        let mt = media_type.map(|m| format!(r#""mediaType":"{m}","#)).unwrap_or_default();
        format!(
            r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{CFG}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{L1}","size":0}}]}}"#
        )
    }

    #[test]
    fn image_manifest_lists_its_blobs() {
        let p = parse(image(Some(OCI_MANIFEST)).as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(p.kind, Kind::Image);
        assert_eq!(p.blobs.iter().map(|d| d.to_string()).collect::<Vec<_>>(), vec![CFG, L1]);
        assert_eq!(p.artifact_type.as_deref(), Some("application/vnd.oci.image.config.v1+json"));
    }

    #[test]
    fn media_type_comes_from_the_content_only() {
        assert!(matches!(
            parse(image(None).as_bytes(), Some(DOCKER_MANIFEST)),
            Err(ManifestError::MediaTypeMissing { derived: OCI_MANIFEST, .. })
        ));
        assert_eq!(parse(image(None).as_bytes(), Some(OCI_MANIFEST)).unwrap().media_type, OCI_MANIFEST);
        assert_eq!(parse(image(None).as_bytes(), Some("application/json")).unwrap().media_type, OCI_MANIFEST);
        assert_eq!(parse(image(None).as_bytes(), None).unwrap().media_type, OCI_MANIFEST);
        let index = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(parse(index.as_bytes(), Some(OCI_INDEX)).unwrap().media_type, OCI_INDEX);
        assert!(parse(index.as_bytes(), Some(DOCKER_LIST)).is_err());
        assert!(parse(index.as_bytes(), Some(OCI_MANIFEST)).is_err());
        // Whatever a push is accepted with is what a read from storage finds.
        let docker = image(Some(DOCKER_MANIFEST));
        for body in [image(None), image(Some(OCI_MANIFEST)), docker, index.to_string()] {
            for header in [None, Some(OCI_MANIFEST), Some(OCI_INDEX), Some(DOCKER_MANIFEST), Some(DOCKER_LIST)] {
                if let Ok(pushed) = parse(body.as_bytes(), header) {
                    assert_eq!(
                        pushed.media_type,
                        parse(body.as_bytes(), None).unwrap().media_type,
                        "{body} {header:?}"
                    );
                }
            }
        }
        assert!(matches!(
            parse(image(Some(OCI_MANIFEST)).as_bytes(), Some(DOCKER_MANIFEST)),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
    }

    #[test]
    fn refusals() {
        assert!(matches!(parse(b"{", None), Err(ManifestError::Json(_))));
        assert!(matches!(parse(br#"{"schemaVersion":1}"#, None), Err(ManifestError::Schema1)));
        assert!(matches!(
            parse(br#"{"schemaVersion":2,"mediaType":"text/plain"}"#, None),
            Err(ManifestError::UnknownMediaType(_))
        ));
        assert!(matches!(parse(br#"{"schemaVersion":2,"config":{}}"#, None), Err(ManifestError::Shape { .. })));
        let bad_digest = image(None).replace(L1, "sha256:zz");
        assert!(parse(bad_digest.as_bytes(), None).is_err());
    }
}
