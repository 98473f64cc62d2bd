//! The catalog: every repository under `repositories/`, found by walking the
//! tree (names may be nested) and stopping at layout directories.

use super::reference::RepoName;
use super::{Registry, Result};
use crate::storage::{paths, walk};

impl Registry {
    /// All repository names (those with manifests or layers), sorted.
    #[tracing::instrument(skip_all)]
    pub async fn catalog(&self) -> Result<Vec<RepoName>> {
        Ok(walk::repositories_with(&*self.backend, &[paths::MANIFESTS_DIR, paths::LAYERS_DIR]).await?)
    }
}

/// One page of a sorted list: entries after `last`, at most `n`, and whether more follow.
pub fn paginate<T: AsRef<str> + Clone>(items: &[T], n: Option<usize>, last: Option<&str>) -> (Vec<T>, bool) {
    let start = match last {
        Some(l) => items.partition_point(|i| i.as_ref() <= l),
        None => 0,
    };
    let rest = &items[start..];
    match n {
        Some(n) if n < rest.len() => (rest[..n].to_vec(), true),
        _ => (rest.to_vec(), false),
    }
}

impl AsRef<str> for RepoName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for super::reference::Tag {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        let items = vec!["a", "b", "c", "d"];
        assert_eq!(paginate(&items, Some(2), None), (vec!["a", "b"], true));
        assert_eq!(paginate(&items, Some(2), Some("b")), (vec!["c", "d"], false));
        assert_eq!(paginate(&items, None, Some("bb")), (vec!["c", "d"], false));
        assert_eq!(paginate(&items, Some(0), None), (vec![], true));
        assert_eq!(paginate(&items, Some(10), Some("d")), (vec![], false));
    }
}
