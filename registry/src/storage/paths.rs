//! Every key in registry:2's storage layout, and the only place that formats one.
//!
//! The tree, relative to the storage root (as in distribution's `paths.go`):
//!
//! ```text
//! docker/registry/v2/
//!   blobs/<alg>/<first two hex>/<hex>/data
//!   repositories/<name>/
//!     _layers/<alg>/<hex>/link                       -> "<alg>:<hex>"
//!     _manifests/revisions/<alg>/<hex>/link          -> "<alg>:<hex>"
//!     _manifests/tags/<tag>/current/link             -> "<alg>:<hex>"
//!     _manifests/tags/<tag>/index/<alg>/<hex>/link   -> "<alg>:<hex>"
//!     _uploads/<id>/data                             the object being written in parts
//!     _uploads/<id>/startedat
//!     _uploads/<id>/state                            the session (wharf's; JSON)
//!     _uploads/<id>/pending/<offset>                 bytes short of a whole part
//! wharf/gc/                                          wharf's own; distribution ignores it
//!   refs/<alg>/<hex>                                 when a blob was last referenced (its mtime)
//!   tombstones/<alg>-<hex>-<run>                     a collection is deleting that blob now
//!   runs/<run>                                       a collection's start, on the store's clock
//!   lease                                            which replica runs the online collection
//!   last                                             the last collection's report (JSON)
//! ```
//!
//! Wharf's own state lives outside registry:2's tree, under `wharf/`, so
//! distribution keeps reading the same root:
//!
//! ```text
//! wharf/pulls/<name>/_pulls.json                   last pull times (retention)
//! wharf/notifications/<endpoint>/
//!   queue/<ms>-<replica>-<seq>-<count>             a batch of events not yet delivered (JSON envelope)
//!   lease                                          which replica delivers this endpoint's events
//! ```
//!
//! Callers pass names, tags and ids that were already validated by the API
//! layer; this module only builds strings.

use crate::oci::digest::{Algorithm, Digest};

const ROOT: &str = "docker/registry/v2";
/// Wharf's own keys, beside registry:2's tree so distribution never sees them.
const WHARF: &str = "wharf";

/// The names that mark a repository's directory (what the catalog, GC and
/// upload purging look for while walking `repositories/`).
pub const UPLOADS_DIR: &str = "_uploads";
pub const MANIFESTS_DIR: &str = "_manifests";
pub const LAYERS_DIR: &str = "_layers";

/// One location in the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path<'a> {
    /// `blobs/`: the root of the content-addressed store.
    BlobsRoot,
    /// `blobs/<alg>`: the blobs of one digest algorithm.
    BlobsAlgorithm(Algorithm),
    /// `blobs/<alg>/<xx>`: one two-character fan-out directory.
    BlobsFanOut(Algorithm, &'a str),
    /// The directory of one blob.
    Blob(&'a Digest),
    /// The bytes of one blob.
    BlobData(&'a Digest),
    /// `repositories/`, the parent of every repository.
    RepositoriesRoot,
    /// A repository directory (a name may contain slashes).
    Repository(&'a str),
    /// The directory holding one repository's layer links.
    LayersRoot(&'a str, Algorithm),
    /// The directory of one layer link.
    Layer(&'a str, &'a Digest),
    /// A layer link file.
    LayerLink(&'a str, &'a Digest),
    /// The directory holding one repository's manifest revisions.
    RevisionsRoot(&'a str, Algorithm),
    /// The directory of one manifest revision.
    Revision(&'a str, &'a Digest),
    /// A manifest revision link file.
    RevisionLink(&'a str, &'a Digest),
    /// `_manifests/tags/`.
    TagsRoot(&'a str),
    /// The directory of one tag.
    Tag(&'a str, &'a str),
    /// The file naming the manifest a tag points to now.
    TagCurrentLink(&'a str, &'a str),
    /// The history of one tag: every manifest it has pointed to.
    TagIndexEntryLink(&'a str, &'a str, &'a Digest),
    /// `_uploads/`.
    UploadsRoot(&'a str),
    /// The directory of one upload session.
    Upload(&'a str, &'a str),
    /// The bytes received so far in an upload session.
    UploadData(&'a str, &'a str),
    /// When an upload session started (RFC 3339).
    UploadStartedAt(&'a str, &'a str),
    /// An upload session's state: parts written, the hash so far.
    UploadState(&'a str, &'a str),
    /// Bytes received at an offset that do not fill a whole part yet.
    UploadPending(&'a str, &'a str, u64),
    /// `wharf/gc/refs/<alg>`: the reference markers of one algorithm.
    GcReferencesRoot(Algorithm),
    /// A blob's reference marker: its modification time is when a
    /// manifest, upload or mirror fill last referred to the blob.
    GcReference(&'a Digest),
    /// `wharf/gc/tombstones`: the blobs collections are deleting right now.
    GcTombstonesRoot,
    /// One collection's tombstone for one blob (see [`tombstone_prefix`]).
    GcTombstone(&'a Digest, &'a str),
    /// An object a collection writes to read the store's clock.
    GcRun(&'a str),
    /// Which replica runs the online collection, until when.
    GcLease,
    /// The report of the last collection.
    GcLast,
    /// When a repository's tags and manifests were last pulled (JSON). The
    /// `_` cannot begin a name component, so no repository's prefix holds it.
    Pulls(&'a str),
    /// The events waiting for one notification endpoint (by its config name).
    NotificationQueue(&'a str),
    /// One batch of waiting events (see [`notification_batch_name`]).
    NotificationBatch(&'a str, &'a str),
    /// Which replica delivers one endpoint's events, until when.
    NotificationLease(&'a str),
}

impl Path<'_> {
    /// The storage key for this location.
    pub fn key(&self) -> String {
        match self {
            Path::BlobsRoot => format!("{ROOT}/blobs"),
            Path::BlobsAlgorithm(alg) => format!("{ROOT}/blobs/{}", alg.as_str()),
            Path::BlobsFanOut(alg, xx) => format!("{ROOT}/blobs/{}/{xx}", alg.as_str()),
            Path::Blob(d) => format!("{ROOT}/blobs/{}/{}/{}", d.algorithm(), &d.hex()[..2], d.hex()),
            Path::BlobData(d) => format!("{}/data", Path::Blob(d).key()),
            Path::RepositoriesRoot => format!("{ROOT}/repositories"),
            Path::Repository(name) => format!("{ROOT}/repositories/{name}"),
            Path::LayersRoot(name, alg) => format!("{ROOT}/repositories/{name}/_layers/{}", alg.as_str()),
            Path::Layer(name, d) => {
                format!("{ROOT}/repositories/{name}/_layers/{}/{}", d.algorithm(), d.hex())
            }
            Path::LayerLink(name, d) => format!("{}/link", Path::Layer(name, d).key()),
            Path::RevisionsRoot(name, alg) => {
                format!("{ROOT}/repositories/{name}/_manifests/revisions/{}", alg.as_str())
            }
            Path::Revision(name, d) => {
                format!("{ROOT}/repositories/{name}/_manifests/revisions/{}/{}", d.algorithm(), d.hex())
            }
            Path::RevisionLink(name, d) => format!("{}/link", Path::Revision(name, d).key()),
            Path::TagsRoot(name) => format!("{ROOT}/repositories/{name}/_manifests/tags"),
            Path::Tag(name, tag) => format!("{ROOT}/repositories/{name}/_manifests/tags/{tag}"),
            Path::TagCurrentLink(name, tag) => format!("{}/current/link", Path::Tag(name, tag).key()),
            Path::TagIndexEntryLink(name, tag, d) => {
                format!("{}/index/{}/{}/link", Path::Tag(name, tag).key(), d.algorithm(), d.hex())
            }
            Path::UploadsRoot(name) => format!("{ROOT}/repositories/{name}/_uploads"),
            Path::Upload(name, id) => format!("{ROOT}/repositories/{name}/_uploads/{id}"),
            Path::UploadData(name, id) => format!("{}/data", Path::Upload(name, id).key()),
            Path::UploadStartedAt(name, id) => format!("{}/startedat", Path::Upload(name, id).key()),
            Path::UploadState(name, id) => format!("{}/state", Path::Upload(name, id).key()),
            Path::UploadPending(name, id, offset) => format!("{}/pending/{offset}", Path::Upload(name, id).key()),
            Path::GcReferencesRoot(alg) => format!("{WHARF}/gc/refs/{}", alg.as_str()),
            Path::GcReference(d) => format!("{WHARF}/gc/refs/{}/{}", d.algorithm(), d.hex()),
            Path::GcTombstonesRoot => format!("{WHARF}/gc/tombstones"),
            Path::GcTombstone(d, run) => format!("{WHARF}/gc/tombstones/{}{run}", tombstone_prefix(d)),
            Path::GcRun(run) => format!("{WHARF}/gc/runs/{run}"),
            Path::GcLease => format!("{WHARF}/gc/lease"),
            Path::GcLast => format!("{WHARF}/gc/last"),
            Path::Pulls(name) => format!("{WHARF}/pulls/{name}/_pulls.json"),
            Path::NotificationQueue(ep) => format!("{WHARF}/notifications/{}/queue", endpoint_segment(ep)),
            Path::NotificationBatch(ep, batch) => format!("{}/{batch}", Path::NotificationQueue(ep).key()),
            Path::NotificationLease(ep) => format!("{WHARF}/notifications/{}/lease", endpoint_segment(ep)),
        }
    }
}

/// How the names in `wharf/gc/tombstones/` start for one blob. Tombstones
/// are flat, so a writer finds every live one with a single listing (only
/// blobs being deleted at this moment have one).
pub fn tombstone_prefix(d: &Digest) -> String {
    format!("{}-{}-", d.algorithm(), d.hex())
}

/// The blob and collection a name in `wharf/gc/tombstones/` stands for.
pub fn tombstone_parts(name: &str) -> Option<(Digest, &str)> {
    let (alg, rest) = name.split_once('-')?;
    let (hex, run) = rest.split_once('-')?;
    let digest: Digest = format!("{alg}:{hex}").parse().ok()?;
    (!run.is_empty()).then_some((digest, run))
}

/// An endpoint's name as one key segment: itself when it is plain, else
/// `~` and its bytes in hex (config names may hold `/` or spaces).
fn endpoint_segment(name: &str) -> String {
    let plain = !name.is_empty()
        && !name.starts_with(['.', '~'])
        && name.len() <= 100
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if plain { name.to_string() } else { format!("~{}", hex::encode(name.as_bytes())) }
}

/// The name of a batch of events in a notification queue. Names sort in
/// the order the batches were written by one replica (milliseconds kept
/// monotonic, then a sequence number), and carry their event count so the
/// queue's length is known from a listing.
pub fn notification_batch_name(millis: u64, replica: &str, seq: u64, count: usize) -> String {
    format!("{millis:013}-{replica}-{seq:012}-{count}")
}

/// The event count a batch name carries; `None` for a name wharf did not write.
pub fn notification_batch_count(name: &str) -> Option<usize> {
    let parts: Vec<&str> = name.split('-').collect();
    match parts.as_slice() {
        [ms, replica, seq, count]
            if ms.len() == 13
                && ms.bytes().all(|b| b.is_ascii_digit())
                && !replica.is_empty()
                && seq.bytes().all(|b| b.is_ascii_digit()) =>
        {
            count.parse().ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_matches_registry2_literally() {
        let d: Digest = "sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b".parse().unwrap();
        let h = "6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b";
        let r = "docker/registry/v2/repositories/library/ubuntu";
        let table: Vec<(Path, String)> = vec![
            (Path::BlobsRoot, "docker/registry/v2/blobs".into()),
            (Path::BlobData(&d), format!("docker/registry/v2/blobs/sha256/6c/{h}/data")),
            (Path::Blob(&d), format!("docker/registry/v2/blobs/sha256/6c/{h}")),
            (Path::BlobsAlgorithm(Algorithm::Sha512), "docker/registry/v2/blobs/sha512".into()),
            (Path::BlobsFanOut(Algorithm::Sha256, "6c"), "docker/registry/v2/blobs/sha256/6c".into()),
            (Path::RepositoriesRoot, "docker/registry/v2/repositories".into()),
            (Path::Repository("library/ubuntu"), r.into()),
            (Path::LayerLink("library/ubuntu", &d), format!("{r}/_layers/sha256/{h}/link")),
            (Path::LayersRoot("library/ubuntu", Algorithm::Sha256), format!("{r}/_layers/sha256")),
            (Path::RevisionLink("library/ubuntu", &d), format!("{r}/_manifests/revisions/sha256/{h}/link")),
            (Path::RevisionsRoot("library/ubuntu", Algorithm::Sha256), format!("{r}/_manifests/revisions/sha256")),
            (Path::TagsRoot("library/ubuntu"), format!("{r}/_manifests/tags")),
            (Path::Tag("library/ubuntu", "latest"), format!("{r}/_manifests/tags/latest")),
            (Path::TagCurrentLink("library/ubuntu", "latest"), format!("{r}/_manifests/tags/latest/current/link")),
            (
                Path::TagIndexEntryLink("library/ubuntu", "latest", &d),
                format!("{r}/_manifests/tags/latest/index/sha256/{h}/link"),
            ),
            (Path::UploadsRoot("library/ubuntu"), format!("{r}/_uploads")),
            (Path::UploadData("library/ubuntu", "u1"), format!("{r}/_uploads/u1/data")),
            (Path::UploadStartedAt("library/ubuntu", "u1"), format!("{r}/_uploads/u1/startedat")),
            (Path::UploadState("library/ubuntu", "u1"), format!("{r}/_uploads/u1/state")),
            (Path::UploadPending("library/ubuntu", "u1", 5), format!("{r}/_uploads/u1/pending/5")),
            (Path::GcReference(&d), format!("wharf/gc/refs/sha256/{h}")),
            (Path::GcTombstone(&d, "r1"), format!("wharf/gc/tombstones/sha256-{h}-r1")),
            (Path::Pulls("library/ubuntu"), "wharf/pulls/library/ubuntu/_pulls.json".into()),
            (Path::NotificationBatch("ci", "b1"), "wharf/notifications/ci/queue/b1".into()),
            (Path::NotificationLease("a b/c"), "wharf/notifications/~6120622f63/lease".into()),
        ];
        for (path, want) in table {
            assert_eq!(path.key(), want, "{path:?}");
        }
        let name = Path::GcTombstone(&d, "r1").key().rsplit('/').next().unwrap().to_string();
        assert_eq!(tombstone_parts(&name), Some((d.clone(), "r1")));
        assert_eq!(tombstone_parts("sha256-zz-r1"), None);
        let batch = notification_batch_name(1_700_000_000_000, "ab12", 7, 3);
        assert_eq!(batch, "1700000000000-ab12-000000000007-3");
        assert_eq!(notification_batch_count(&batch), Some(3));
        assert_eq!(notification_batch_count("x-y-z-1"), None);
    }
}
