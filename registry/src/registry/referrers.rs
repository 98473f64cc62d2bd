//! The referrers API: manifests in a repository whose `subject` is a given
//! digest. Computed from the revisions on each request (the layout has no
//! referrers index, and adding one would break registry:2 compatibility);
//! parsed manifests are cached by digest, so repeated calls read only links.

use crate::storage::paths::Path;

use super::digest::Digest;
use super::reference::RepoName;
use super::{Registry, Result};
use crate::oci::manifest::{OCI_INDEX, ReferrerDescriptor, ReferrersIndex};

impl Registry {
    #[tracing::instrument(skip_all, fields(repo = %repo, digest = %subject))]
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<ReferrersIndex> {
        let mut manifests = Vec::new();
        for digest in self.revisions(repo).await? {
            let body = match self.backend.get(&Path::BlobData(&digest).key()).await {
                Ok(b) => b,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            let Ok(parsed) = self.parsed_manifest(&digest, &body) else { continue };
            if parsed.subject.as_ref() != Some(subject) {
                continue;
            }
            if artifact_type.is_some_and(|want| parsed.artifact_type.as_deref() != Some(want)) {
                continue;
            }
            manifests.push(ReferrerDescriptor {
                media_type: parsed.media_type.clone(),
                digest: digest.to_string(),
                size: body.len() as u64,
                artifact_type: parsed.artifact_type.clone(),
                annotations: parsed.annotations.clone(),
            });
        }
        manifests.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(ReferrersIndex { schema_version: 2, media_type: OCI_INDEX, manifests })
    }
}
