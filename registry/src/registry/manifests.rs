//! Manifests and tags. A manifest is stored as a blob plus a revision link;
//! a tag is a `current` link plus an index of every revision it named.
//!
//! Commit order on PUT: manifest blob, revision link, tag index, tag
//! current. A crash at any point leaves at worst an unreferenced blob or an
//! untagged revision, never a tag that names a missing manifest.

use std::sync::Arc;

use bytes::Bytes;

use crate::storage::paths::Path;
use crate::storage::walk;

use super::digest::Digest;
use super::events::{Action, Happened};
use super::reference::{Reference, RepoName, Tag};
use super::{Error, Registry, Result};
use crate::oci::manifest::{self, Parsed};

/// A manifest as stored.
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub body: Bytes,
}

/// A manifest's push or pull event; `tag` when the reference was one.
fn manifest_event<'a>(
    action: Action,
    repo: &'a RepoName,
    reference: &'a Reference,
    digest: &'a Digest,
    media_type: &'a str,
    body: &'a [u8],
) -> Happened<'a> {
    let tag = match reference {
        Reference::Tag(t) => Some(t.as_str()),
        Reference::Digest(_) => None,
    };
    Happened {
        action,
        repo,
        digest: Some(digest),
        media_type,
        size: body.len() as u64,
        tag,
        from: None,
        manifest: Some(body),
    }
}

/// The result of a successful PUT.
pub struct PutManifest {
    pub digest: Digest,
    pub subject: Option<Digest>,
}

impl Registry {
    /// Resolves a tag or digest to the digest of a manifest this repository has.
    #[tracing::instrument(level = "debug", skip_all, fields(repo = %repo, reference = %reference))]
    pub async fn resolve(&self, repo: &RepoName, reference: &Reference) -> Result<Digest> {
        let unknown = || Error::ManifestUnknown(format!("{repo}:{reference}"));
        let digest = match reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(t) => {
                self.read_link(&Path::TagCurrentLink(repo.as_str(), t.as_str()).key()).await?.ok_or_else(unknown)?
            }
        };
        if self.read_link(&Path::RevisionLink(repo.as_str(), &digest).key()).await?.is_none() {
            return Err(unknown());
        }
        Ok(digest)
    }

    #[tracing::instrument(skip_all, fields(repo = %repo, reference = %reference, digest = tracing::field::Empty, bytes = tracing::field::Empty))]
    pub async fn manifest_get(&self, repo: &RepoName, reference: &Reference) -> Result<StoredManifest> {
        let digest = self.resolve(repo, reference).await?;
        let body = match self.backend.get(&Path::BlobData(&digest).key()).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Err(Error::ManifestUnknown(format!("{repo}@{digest}"))),
            Err(e) => return Err(e.into()),
        };
        tracing::Span::current().record("digest", tracing::field::display(&digest)).record("bytes", body.len());
        let parsed = self.parsed_manifest(&digest, &body)?;
        self.notify(manifest_event(Action::Pull, repo, reference, &digest, &parsed.media_type, &body)).await?;
        Ok(StoredManifest { digest, media_type: parsed.media_type.clone(), body })
    }

    /// Parses a stored manifest once and caches the result by digest.
    pub(super) fn parsed_manifest(&self, digest: &Digest, body: &[u8]) -> Result<Arc<Parsed>> {
        if let Some(p) = self.parsed.lock().unwrap_or_else(|p| p.into_inner()).get(digest) {
            return Ok(p.clone());
        }
        let parsed = Arc::new(manifest::parse(body, None)?);
        let mut cache = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= 10_000 {
            cache.clear();
        }
        cache.insert(digest.clone(), parsed.clone());
        Ok(parsed)
    }

    #[tracing::instrument(skip_all, fields(repo = %repo, reference = %reference, digest = tracing::field::Empty, bytes = body.len()))]
    pub async fn manifest_put(
        &self,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<PutManifest> {
        self.check_writable()?;
        let parsed = manifest::parse(&body, content_type)?;
        let digest = match reference {
            Reference::Digest(d) => {
                if !d.verify(&body) {
                    let mut h = super::digest::Hasher::new(d.alg());
                    h.update(&body);
                    return Err(Error::DigestMismatch { expected: d.clone(), actual: h.finish() });
                }
                d.clone()
            }
            Reference::Tag(_) => Digest::sha256_of(&body),
        };
        tracing::Span::current().record("digest", tracing::field::display(&digest));
        for blob in &parsed.blobs {
            match self.blob_size(repo, blob).await {
                Ok(_) => {}
                Err(Error::BlobUnknown(d)) => return Err(Error::ManifestBlobUnknown(d)),
                Err(e) => return Err(e),
            }
        }
        for child in &parsed.children {
            if self.read_link(&Path::RevisionLink(repo.as_str(), child).key()).await?.is_none() {
                return Err(Error::ManifestBlobUnknown(child.clone()));
            }
        }
        self.quota_admit(repo, &digest, &parsed, body.len() as u64).await?;
        // Pinned before anything is written, so a collection running now
        // cannot take what this manifest refers to (gc/protocol.rs).
        let referenced: Vec<&Digest> = parsed.blobs.iter().chain(&parsed.children).chain([&digest]).collect();
        let mut pin = self.pin(&referenced).await?;
        let blob_key = Path::BlobData(&digest).key();
        // The stored copy is compared, not just found: one damaged by a power
        // loss (before puts were flushed) is replaced by the verified body.
        let intact = match self.backend.get(&blob_key).await {
            Ok(stored) => stored == body,
            Err(e) if e.is_not_found() => false,
            Err(e) => return Err(e.into()),
        };
        if !intact {
            self.backend.put(&blob_key, body.clone()).await?;
        }
        if !pin.fresh() {
            pin = self.pin(&referenced).await?;
        }
        if let Some(gone) = pin.missing.iter().find(|d| **d != digest) {
            return Err(Error::ManifestBlobUnknown(gone.clone()));
        }
        self.write_link(&Path::RevisionLink(repo.as_str(), &digest).key(), &digest).await?;
        if let Reference::Tag(tag) = reference {
            self.write_link(&Path::TagIndexEntryLink(repo.as_str(), tag.as_str(), &digest).key(), &digest).await?;
            self.write_link(&Path::TagCurrentLink(repo.as_str(), tag.as_str()).key(), &digest).await?;
            self.search.tagged(repo, tag);
        }
        let subject = parsed.subject.clone();
        let media_type = parsed.media_type.clone();
        self.parsed.lock().unwrap_or_else(|p| p.into_inner()).insert(digest.clone(), Arc::new(parsed));
        self.notify(manifest_event(Action::Push, repo, reference, &digest, &media_type, &body)).await?;
        Ok(PutManifest { digest, subject })
    }

    /// Deletes a tag, or a manifest revision together with every tag that
    /// currently points to it (as registry:2 does).
    #[tracing::instrument(skip_all, fields(repo = %repo, reference = %reference))]
    pub async fn manifest_delete(&self, repo: &RepoName, reference: &Reference) -> Result<()> {
        self.check_delete()?;
        match reference {
            Reference::Tag(tag) => {
                self.resolve(repo, reference).await?;
                self.backend.delete(&Path::Tag(repo.as_str(), tag.as_str()).key()).await?;
                self.search.untagged(repo, tag);
            }
            Reference::Digest(digest) => {
                self.resolve(repo, reference).await?;
                // Untag first, so no tag is ever left naming a deleted revision.
                for tag in self.tags(repo).await? {
                    let current = self.read_link(&Path::TagCurrentLink(repo.as_str(), tag.as_str()).key()).await?;
                    if current.as_ref() == Some(digest) {
                        self.backend.delete(&Path::Tag(repo.as_str(), tag.as_str()).key()).await?;
                        self.search.untagged(repo, &tag);
                    }
                }
                self.backend.delete(&Path::Revision(repo.as_str(), digest).key()).await?;
            }
        }
        // As registry:2: a tag's delete names the tag, a manifest's its digest.
        let (digest, tag) = match reference {
            Reference::Tag(t) => (None, Some(t.as_str())),
            Reference::Digest(d) => (Some(d), None),
        };
        let h =
            Happened { action: Action::Delete, repo, digest, media_type: "", size: 0, tag, from: None, manifest: None };
        self.notify(h).await
    }

    /// Every tag in the repository, sorted; `NameUnknown` when the repository does not exist.
    ///
    /// A tag directory without a `current` link is a tag PUT cut short by a
    /// crash (its directories exist before the link does); it names
    /// nothing, so it is not listed.
    #[tracing::instrument(skip_all, fields(repo = %repo))]
    pub async fn tags(&self, repo: &RepoName) -> Result<Vec<Tag>> {
        match self.backend.list(&Path::TagsRoot(repo.as_str()).key()).await {
            Ok(names) => {
                let mut tags = Vec::with_capacity(names.len());
                for tag in names.iter().filter_map(|n| Tag::parse(n).ok()) {
                    if self.exists(&Path::TagCurrentLink(repo.as_str(), tag.as_str()).key()).await? {
                        tags.push(tag);
                    }
                }
                Ok(tags)
            }
            Err(e) if e.is_not_found() => {
                if self.repository_exists(repo).await? {
                    Ok(Vec::new())
                } else {
                    Err(Error::NameUnknown(repo.clone()))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every manifest revision the repository holds.
    #[tracing::instrument(level = "debug", skip_all, fields(repo = %repo))]
    pub async fn revisions(&self, repo: &RepoName) -> Result<Vec<Digest>> {
        Ok(walk::linked_digests(&*self.backend, |alg| Path::RevisionsRoot(repo.as_str(), alg).key()).await?)
    }
}
