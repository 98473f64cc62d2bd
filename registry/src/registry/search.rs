//! The search index behind `/v2/_wharf/search` and `/v1/search`: every
//! repository with its tags, in memory, sorted by name.
//!
//! Storage is the truth and is shared by replicas, so the index is a cache
//! of it that converges: it is built by a walk of storage when first used,
//! and a search that finds it older than the refresh interval starts a new
//! walk in the background (one at a time) while it answers from the old one.
//! Pushes and deletes through this process update it at once; what other
//! replicas (or retention and GC) change shows up after the next walk.
//! Changes made here while a walk runs are replayed onto its result, so a
//! walk that listed a repository before a push cannot undo the push.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt as _;

use super::reference::{RepoName, Tag};
use super::{Error, Registry, Result};

/// Repositories whose tags are listed at once during a walk.
const TAG_LISTINGS_IN_FLIGHT: usize = 16;

/// The default refresh interval (`search.refresh`).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(30);

/// A change made by this process, replayed onto a walk that was running.
#[derive(Debug, Clone)]
enum Change {
    Tagged(String, String),
    Untagged(String, String),
}

#[derive(Default)]
struct State {
    /// Repository name -> its tags, sorted. `None` until the first walk.
    repos: Option<BTreeMap<String, Vec<String>>>,
    built_at: Option<Instant>,
    /// How long the last walk took: walks are at least ten times that apart,
    /// so a store slow to walk is not walked all the time.
    walk_took: Duration,
    /// `Some` while a walk runs: the changes made meanwhile.
    during_walk: Option<Vec<Change>>,
}

pub struct SearchIndex {
    state: RwLock<State>,
    /// Held by the one walk that runs at a time.
    walking: tokio::sync::Mutex<()>,
    refresh: Duration,
}

/// What a search asks for.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Lowercase (the caller lowers it); matched as a substring of the name. With a `:`, the part
    /// before it matches the name and the part after it a tag.
    pub text: String,
    /// At most this many repositories.
    pub n: usize,
    /// Only repositories sorted after this name.
    pub last: Option<String>,
}

/// One repository found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub name: String,
    pub tag_count: usize,
    /// The tags the query matched (none when it matched only the name).
    pub tags: Vec<String>,
}

/// One page of results, and whether more follow it.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub hits: Vec<Hit>,
    pub more: bool,
}

fn apply(repos: &mut BTreeMap<String, Vec<String>>, change: &Change) {
    match change {
        Change::Tagged(repo, tag) => {
            let tags = repos.entry(repo.clone()).or_default();
            if let Err(at) = tags.binary_search(tag) {
                tags.insert(at, tag.clone());
            }
        }
        Change::Untagged(repo, tag) => {
            if let Some(tags) = repos.get_mut(repo)
                && let Ok(at) = tags.binary_search(tag)
            {
                tags.remove(at);
            }
        }
    }
}

/// Case-insensitive substring match of a lowercase `needle`, without
/// allocating: repository names are lowercase by their grammar, and most
/// tags are, so the fast `str::contains` decides; only a tag with capitals
/// is compared window by window.
fn contains(haystack: &str, needle: &str) -> bool {
    if !haystack.bytes().any(|b| b.is_ascii_uppercase()) {
        return haystack.contains(needle);
    }
    needle.is_empty()
        || haystack.len() >= needle.len()
            && haystack.as_bytes().windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

impl SearchIndex {
    pub fn new(refresh: Duration) -> Self {
        SearchIndex { state: RwLock::new(State::default()), walking: tokio::sync::Mutex::new(()), refresh }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, change: Change) {
        let mut s = self.write();
        if let Some(repos) = s.repos.as_mut() {
            apply(repos, &change);
        }
        if let Some(pending) = s.during_walk.as_mut() {
            pending.push(change);
        }
    }

    pub(super) fn tagged(&self, repo: &RepoName, tag: &Tag) {
        self.record(Change::Tagged(repo.to_string(), tag.to_string()));
    }

    pub(super) fn untagged(&self, repo: &RepoName, tag: &Tag) {
        self.record(Change::Untagged(repo.to_string(), tag.to_string()));
    }

    fn is_fresh(&self) -> Option<bool> {
        let s = self.read();
        s.repos.as_ref()?;
        Some(s.built_at.is_some_and(|t| t.elapsed() < self.refresh.max(s.walk_took * 10)))
    }

    /// The matching repositories that `visible` admits, in name order.
    fn find(&self, q: &Query, visible: &(dyn Fn(&str) -> bool + Sync)) -> Page {
        let (name_part, tag_part) = match q.text.split_once(':') {
            Some((name, tag)) => (name, Some(tag)),
            None => (q.text.as_str(), None),
        };
        let s = self.read();
        let Some(repos) = s.repos.as_ref() else { return Page::default() };
        let range = match &q.last {
            Some(last) => repos.range::<str, _>((std::ops::Bound::Excluded(last.as_str()), std::ops::Bound::Unbounded)),
            None => repos.range::<str, _>(..),
        };
        let mut page = Page::default();
        for (name, tags) in range {
            let name_hit = contains(name, name_part);
            let matched: Vec<String> = match tag_part {
                Some(t) if name_hit => tags.iter().filter(|tag| contains(tag, t)).cloned().collect(),
                Some(_) => continue,
                // Without a `:`, the text may match a tag instead of the name.
                None if name_hit => Vec::new(),
                None => tags.iter().filter(|tag| contains(tag, name_part)).cloned().collect(),
            };
            if (!name_hit || tag_part.is_some()) && matched.is_empty() {
                continue;
            }
            if !visible(name) {
                continue;
            }
            if page.hits.len() == q.n {
                page.more = true;
                break;
            }
            page.hits.push(Hit { name: name.clone(), tag_count: tags.len(), tags: matched });
        }
        page
    }
}

impl Registry {
    pub fn search_index(&self) -> &SearchIndex {
        &self.search
    }

    /// Walks storage and replaces the index (one walk at a time).
    pub async fn rebuild_search_index(&self) -> Result<()> {
        let _walking = self.search.walking.lock().await;
        self.search.write().during_walk = Some(Vec::new());
        let started = Instant::now();
        let walked = self.walk_tags().await;
        let mut s = self.search.write();
        let pending = s.during_walk.take().unwrap_or_default();
        let mut repos = walked?;
        for change in &pending {
            apply(&mut repos, change);
        }
        let (count, tags) = (repos.len(), repos.values().map(Vec::len).sum::<usize>());
        s.repos = Some(repos);
        s.built_at = Some(Instant::now());
        s.walk_took = started.elapsed();
        drop(s);
        tracing::debug!(
            repositories = count,
            tags,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "search index built"
        );
        Ok(())
    }

    async fn walk_tags(&self) -> Result<BTreeMap<String, Vec<String>>> {
        let repos = self.catalog().await?;
        let listed: Vec<(RepoName, Result<Vec<Tag>>)> = futures::stream::iter(repos)
            .map(|repo| async move {
                let tags = self.tags(&repo).await;
                (repo, tags)
            })
            .buffer_unordered(TAG_LISTINGS_IN_FLIGHT)
            .collect()
            .await;
        let mut out = BTreeMap::new();
        for (repo, tags) in listed {
            let mut tags: Vec<String> = match tags {
                Ok(t) => t.into_iter().map(|t| t.to_string()).collect(),
                // Deleted while the walk ran.
                Err(Error::NameUnknown(_)) => continue,
                Err(e) => return Err(e),
            };
            tags.sort();
            out.insert(repo.to_string(), tags);
        }
        Ok(out)
    }

    /// Searches the index: built first if it never was; walked again in the
    /// background when older than the refresh interval.
    pub async fn search(self: &Arc<Self>, q: &Query, visible: &(dyn Fn(&str) -> bool + Sync)) -> Result<Page> {
        match self.search.is_fresh() {
            None => self.rebuild_search_index().await?,
            Some(true) => {}
            Some(false) => {
                // Only one walk at a time: a search that finds one running does not queue another.
                if self.search.walking.try_lock().is_ok() {
                    let registry = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = registry.rebuild_search_index().await {
                            tracing::warn!(error = %e, "refreshing the search index failed; the last one stays");
                        }
                    });
                }
            }
        }
        Ok(self.search.find(q, visible))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(repos: &[(&str, &[&str])]) -> SearchIndex {
        let idx = SearchIndex::new(DEFAULT_REFRESH);
        idx.write().repos =
            Some(repos.iter().map(|(n, t)| (n.to_string(), t.iter().map(|s| s.to_string()).collect())).collect());
        idx
    }

    fn names(p: &Page) -> Vec<&str> {
        p.hits.iter().map(|h| h.name.as_str()).collect()
    }

    fn q(text: &str, n: usize, last: Option<&str>) -> Query {
        Query { text: text.into(), n, last: last.map(str::to_string) }
    }

    #[test]
    fn matches_names_and_tags_in_order_and_pages() {
        let idx = index(&[("team-a/app", &["1.0", "latest"]), ("team-a/db", &["PG16"]), ("team-b/app", &["2.0"])]);
        let all = |_: &str| true;
        assert_eq!(names(&idx.find(&q("app", 10, None), &all)), ["team-a/app", "team-b/app"]);
        let p = idx.find(&q("app", 1, None), &all);
        assert_eq!((names(&p), p.more), (vec!["team-a/app"], true));
        let p = idx.find(&q("app", 1, Some("team-a/app")), &all);
        assert_eq!((names(&p), p.more), (vec!["team-b/app"], false));
        let p = idx.find(&q("pg1", 10, None), &all);
        // A tag with capitals matches the (lowercase) query regardless of case.
        assert_eq!(p.hits, vec![Hit { name: "team-a/db".into(), tag_count: 1, tags: vec!["PG16".into()] }]);
        assert_eq!(names(&idx.find(&q("app:2", 10, None), &all)), ["team-b/app"]);
        assert_eq!(idx.find(&q("", 10, None), &all).hits.len(), 3);
        let only_a = |n: &str| n.starts_with("team-a/");
        assert_eq!(names(&idx.find(&q("app", 10, None), &only_a)), ["team-a/app"]);
    }

    #[test]
    fn changes_apply_now_and_survive_a_walk_that_missed_them() {
        let idx = index(&[("a", &["1"])]);
        let (a, b) = (RepoName::parse("a").unwrap(), RepoName::parse("b").unwrap());
        idx.write().during_walk = Some(Vec::new());
        idx.tagged(&b, &Tag::parse("x").unwrap());
        idx.untagged(&a, &Tag::parse("1").unwrap());
        assert_eq!(names(&idx.find(&q("", 10, None), &|_: &str| true)), ["a", "b"]);
        // The walk's result lists `a:1` and not `b`; the replay fixes both.
        let mut walked: BTreeMap<String, Vec<String>> = [("a".to_string(), vec!["1".to_string()])].into();
        for c in idx.write().during_walk.take().unwrap() {
            apply(&mut walked, &c);
        }
        assert_eq!(walked, [("a".to_string(), vec![]), ("b".to_string(), vec!["x".to_string()])].into());
    }
}
