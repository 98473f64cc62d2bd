//! Walks of registry:2's layout: the one place that finds repositories and
//! the digests stored under a directory. The catalog, GC, upload purging and
//! the mirror's cache all read the tree through these.

use futures::StreamExt as _;

use super::backend::{Backend, Result};
use super::paths::Path;
use crate::oci::digest::{Algorithm, Digest};
use crate::oci::reference::RepoName;

/// Listings in flight at once while walking `repositories/`: on S3 each
/// listing is a round trip, and a catalog of a thousand repositories would
/// otherwise wait for a thousand of them in a row.
const LISTINGS_IN_FLIGHT: usize = 32;

/// A repository name is at most 255 characters, so no walk goes deeper.
const MAX_NAME: usize = 255;

/// Repositories whose directory holds one of `markers` (`_uploads`,
/// `_manifests`, `_layers`), sorted. The tree is walked a level at a time.
pub async fn repositories_with(backend: &dyn Backend, markers: &[&str]) -> Result<Vec<RepoName>> {
    let mut found = Vec::new();
    let mut level = vec![String::new()];
    while !level.is_empty() {
        let listed: Vec<(String, Result<Vec<String>>)> = futures::stream::iter(level.drain(..))
            .map(|prefix| async move {
                let key =
                    if prefix.is_empty() { Path::RepositoriesRoot.key() } else { Path::Repository(&prefix).key() };
                let children = backend.list(&key).await;
                (prefix, children)
            })
            .buffer_unordered(LISTINGS_IN_FLIGHT)
            .collect()
            .await;
        for (prefix, children) in listed {
            let children = match children {
                Ok(c) => c,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            if !prefix.is_empty()
                && children.iter().any(|c| markers.contains(&c.as_str()))
                && let Ok(name) = RepoName::parse(&prefix)
            {
                found.push(name);
            }
            for child in children.into_iter().filter(|c| !c.starts_with('_')) {
                if prefix.len() + child.len() < MAX_NAME {
                    level.push(if prefix.is_empty() { child } else { format!("{prefix}/{child}") });
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The digests named by the entries of `dir(alg)` for every algorithm: the
/// link directories `_layers/<alg>/<hex>` and `_manifests/revisions/<alg>/<hex>`.
pub async fn linked_digests(backend: &dyn Backend, dir: impl Fn(Algorithm) -> String) -> Result<Vec<Digest>> {
    let mut found = Vec::new();
    for alg in Algorithm::ALL {
        found.extend(list_or_empty(backend, &dir(alg)).await?.iter().filter_map(|hex| Digest::from_parts(alg, hex)));
    }
    Ok(found)
}

/// Every blob in the content-addressed store (`blobs/<alg>/<xx>/<hex>`).
pub async fn blob_digests(backend: &dyn Backend) -> Result<Vec<Digest>> {
    let mut found = Vec::new();
    for alg in Algorithm::ALL {
        for fan_out in list_or_empty(backend, &Path::BlobsAlgorithm(alg).key()).await? {
            let hexes = list_or_empty(backend, &Path::BlobsFanOut(alg, &fan_out).key()).await?;
            found.extend(hexes.iter().filter_map(|hex| Digest::from_parts(alg, hex)));
        }
    }
    Ok(found)
}

/// The names under `key`; none when it does not exist.
pub async fn list_or_empty(backend: &dyn Backend, key: &str) -> Result<Vec<String>> {
    match backend.list(key).await {
        Ok(names) => Ok(names),
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}
