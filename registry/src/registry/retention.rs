//! Retention (`storage.retention`): deletes the tags no `keeptags` rule
//! keeps, and with `deleteuntagged` / `deletereferrers` the manifests that
//! are left behind. Blobs are GC's business: this only removes links, so the
//! next collection reclaims what they held.
//!
//! Per repository, everything is decided before anything is deleted (a
//! manifest that does not parse stops the repository untouched). A tag or
//! revision written within `delay` is never deleted, and each one is
//! re-read right before its delete so that a push during the run is not
//! lost; docs/retention.md says what window remains.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use regex::Regex;

use crate::auth::access::glob_match;
use crate::config::{KeepTags, Policy, Retention};
use crate::storage::paths::{self, Path};
use crate::storage::walk;

use super::digest::Digest;
use super::reference::Tag;
use super::{Error, Registry, Result};

/// What a run deleted (or, in a dry run, would delete).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    pub dry_run: bool,
    /// Repositories a policy applied to.
    pub repositories: usize,
    /// Tags kept by a rule (or because the policy has no `keeptags`).
    pub tags_kept: usize,
    /// `repo:tag`.
    pub tags_deleted: Vec<String>,
    /// `repo@digest`: untagged manifests and referrers whose subject is gone.
    pub manifests_deleted: Vec<String>,
    /// Tags no rule kept but pushed within `delay`.
    pub spared_recent: usize,
    /// Tags and manifests pushed again while the run was deciding.
    pub spared_changed: usize,
}

/// A tag as retention sees it.
struct TagInfo {
    tag: String,
    digest: Digest,
    pushed: Option<SystemTime>,
    pulled: Option<SystemTime>,
}

/// A `keeptags` rule with its patterns compiled.
struct Rule<'a> {
    config: &'a KeepTags,
    patterns: Vec<Regex>,
}

/// What one revision links to.
struct Links {
    children: Vec<Digest>,
    subject: Option<Digest>,
}

/// Whether `t` lies within `window` before `now` (a time in the future does).
fn within(now: SystemTime, t: Option<SystemTime>, window: Duration) -> bool {
    t.is_some_and(|t| now.duration_since(t).map_or(true, |age| age <= window))
}

impl Rule<'_> {
    /// Indexes of the tags this rule keeps.
    fn keeps(&self, tags: &[TagInfo], now: SystemTime) -> HashSet<usize> {
        let selected: Vec<usize> = (0..tags.len())
            .filter(|&i| self.patterns.is_empty() || self.patterns.iter().any(|p| p.is_match(&tags[i].tag)))
            .collect();
        let c = self.config;
        if !c.has_criteria() {
            return selected.into_iter().collect();
        }
        let mut keep = HashSet::new();
        for &i in &selected {
            if c.pushedwithin.is_some_and(|w| within(now, tags[i].pushed, w.0))
                || c.pulledwithin.is_some_and(|w| within(now, tags[i].pulled, w.0))
            {
                keep.insert(i);
            }
        }
        // The newest first; equal times by name, so a run is deterministic.
        let top = |n: usize, when: &dyn Fn(&TagInfo) -> Option<SystemTime>| {
            let mut ranked: Vec<(SystemTime, usize)> =
                selected.iter().filter_map(|&i| when(&tags[i]).map(|t| (t, i))).collect();
            ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| tags[a.1].tag.cmp(&tags[b.1].tag)));
            ranked.into_iter().take(n).map(|(_, i)| i).collect::<Vec<_>>()
        };
        if let Some(n) = c.mostrecentlypushedcount {
            keep.extend(top(n, &|t| t.pushed));
        }
        if let Some(n) = c.mostrecentlypulledcount {
            keep.extend(top(n, &|t| t.pulled));
        }
        keep
    }
}

impl Registry {
    /// Applies the first matching policy to every repository; with
    /// `dry_run` (or `retention.dryrun`) nothing is deleted.
    #[tracing::instrument(skip_all, fields(dry_run = dry_run || retention.dryrun))]
    pub async fn apply_retention(&self, retention: &Retention, dry_run: bool) -> Result<RetentionReport> {
        let mut report = RetentionReport { dry_run: dry_run || retention.dryrun, ..Default::default() };
        if retention.policies.is_empty() {
            return Ok(report);
        }
        // The pulls this process has seen count too; a failed flush stops the
        // run rather than deleting tags on missing pull times.
        self.flush_pulls().await?;
        let mut rules: Vec<Vec<Rule>> = Vec::new();
        for policy in &retention.policies {
            let mut compiled = Vec::new();
            for config in &policy.keeptags {
                let patterns = config
                    .patterns
                    .iter()
                    .map(|p| Regex::new(p))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| Error::Unsupported(format!("storage.retention: {e}")))?;
                compiled.push(Rule { config, patterns });
            }
            rules.push(compiled);
        }
        let now = SystemTime::now();
        let cutoff = now.checked_sub(retention.delay.0).unwrap_or(SystemTime::UNIX_EPOCH);
        for repo in walk::repositories_with(&*self.backend, &[paths::MANIFESTS_DIR]).await? {
            let Some(at) =
                retention.policies.iter().position(|p| p.repositories.iter().any(|g| glob_match(g, repo.as_str())))
            else {
                continue;
            };
            report.repositories += 1;
            let ctx = RepoRun { repo: repo.as_str(), policy: &retention.policies[at], rules: &rules[at], now, cutoff };
            self.retain_repository(&ctx, &mut report).await?;
        }
        Ok(report)
    }

    async fn retain_repository(&self, run: &RepoRun<'_>, report: &mut RetentionReport) -> Result<()> {
        let repo = run.repo;
        let tags = self.tag_infos(repo).await?;
        let mut keep: HashSet<usize> = if run.rules.is_empty() {
            (0..tags.len()).collect()
        } else {
            run.rules.iter().flat_map(|r| r.keeps(&tags, run.now)).collect()
        };
        report.tags_kept += keep.len();
        let mut doomed = Vec::new();
        for (i, t) in tags.iter().enumerate() {
            if keep.contains(&i) {
                continue;
            }
            if t.pushed.is_none_or(|p| p > run.cutoff) {
                report.spared_recent += 1;
                keep.insert(i);
            } else {
                doomed.push(i);
            }
        }
        let remaining: Vec<Digest> = keep.iter().map(|&i| tags[i].digest.clone()).collect();
        let manifests = if run.policy.deleteuntagged || run.policy.deletereferrers {
            self.doomed_manifests(run, &remaining).await?
        } else {
            Vec::new()
        };

        let (mut tags_gone, mut manifests_gone) = (Vec::new(), Vec::new());
        for i in doomed {
            let t = &tags[i];
            if !report.dry_run && !self.delete_tag_unless_changed(repo, t).await? {
                report.spared_changed += 1;
                continue;
            }
            report.tags_deleted.push(format!("{repo}:{}", t.tag));
            tags_gone.push(t.tag.clone());
        }
        for digest in manifests {
            if !report.dry_run && !self.delete_revision_unless_young(repo, &digest, run.cutoff).await? {
                report.spared_changed += 1;
                continue;
            }
            report.manifests_deleted.push(format!("{repo}@{digest}"));
            manifests_gone.push(digest);
        }
        if !report.dry_run {
            // Counted per repository, so a run that fails later still counts what it deleted.
            crate::metrics::retention_tags_deleted(tags_gone.len());
            self.prune_pulls(repo, &tags_gone, &manifests_gone).await?;
        }
        Ok(())
    }

    /// Every tag with a `current` link, its push time (the link's mtime) and pull time.
    async fn tag_infos(&self, repo: &str) -> Result<Vec<TagInfo>> {
        let pulls = self.stored_pulls(repo).await?;
        let mut out = Vec::new();
        for name in walk::list_or_empty(&*self.backend, &Path::TagsRoot(repo).key()).await? {
            let Ok(tag) = Tag::parse(&name) else { continue };
            let key = Path::TagCurrentLink(repo, tag.as_str()).key();
            let Some(digest) = self.read_link(&key).await? else { continue };
            let pushed = match self.backend.stat(&key).await {
                Ok(m) => m.modified,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            let pulled = pulls.tag_pulled(tag.as_str(), &digest);
            out.push(TagInfo { tag: tag.as_str().to_string(), digest, pushed, pulled });
        }
        Ok(out)
    }

    /// Deletes a tag if it still names the same manifest, written at the same
    /// time, as when the run read it: a re-push in between wins.
    async fn delete_tag_unless_changed(&self, repo: &str, t: &TagInfo) -> Result<bool> {
        let key = Path::TagCurrentLink(repo, &t.tag).key();
        if self.read_link(&key).await?.as_ref() != Some(&t.digest) {
            return Ok(false);
        }
        match self.backend.stat(&key).await {
            Ok(m) if m.modified == t.pushed => {}
            Ok(_) => return Ok(false),
            Err(e) if e.is_not_found() => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        self.backend.delete(&Path::Tag(repo, &t.tag).key()).await?;
        Ok(true)
    }

    /// Deletes a revision unless its link was written within `delay` (a
    /// manifest PUT rewrites it, so a push during the run shows here).
    async fn delete_revision_unless_young(&self, repo: &str, digest: &Digest, cutoff: SystemTime) -> Result<bool> {
        match self.backend.stat(&Path::RevisionLink(repo, digest).key()).await {
            Ok(m) if m.modified.is_some_and(|t| t <= cutoff) => {}
            Ok(_) => return Ok(false),
            Err(e) if e.is_not_found() => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        self.backend.delete(&Path::Revision(repo, digest).key()).await?;
        Ok(true)
    }

    /// The revisions to delete once the doomed tags are gone: with
    /// `deleteuntagged`, those no remaining tag reaches (through index
    /// children, and referrers of what is reached) that have no subject;
    /// with `deletereferrers`, unreached ones whose subject is not (or no
    /// longer) in the repository. Revisions written within `delay` are
    /// reached by definition: they may be a push in progress.
    async fn doomed_manifests(&self, run: &RepoRun<'_>, remaining: &[Digest]) -> Result<Vec<Digest>> {
        let repo = run.repo;
        let revisions = walk::linked_digests(&*self.backend, |alg| Path::RevisionsRoot(repo, alg).key()).await?;
        let mut links: HashMap<Digest, Links> = HashMap::new();
        let mut pending: Vec<Digest> = remaining.to_vec();
        for d in &revisions {
            let written = match self.backend.stat(&Path::RevisionLink(repo, d).key()).await {
                Ok(m) => m.modified,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            if written.is_none_or(|w| w > run.cutoff) {
                pending.push(d.clone());
            }
            if let Some(l) = self.revision_links(repo, d).await? {
                links.insert(d.clone(), l);
            }
        }
        let present: HashSet<&Digest> = revisions.iter().collect();
        let mut reached: HashSet<Digest> = HashSet::new();
        loop {
            while let Some(d) = pending.pop() {
                if !present.contains(&d) || !reached.insert(d.clone()) {
                    continue;
                }
                if let Some(l) = links.get(&d) {
                    pending.extend(l.children.iter().cloned());
                }
            }
            // Referrers (signatures, SBOMs) of what is reached are reached too.
            pending.extend(
                links
                    .iter()
                    .filter(|(d, l)| !reached.contains(*d) && l.subject.as_ref().is_some_and(|s| reached.contains(s)))
                    .map(|(d, _)| d.clone()),
            );
            if pending.is_empty() {
                break;
            }
        }
        let subject = |d: &Digest| links.get(d).and_then(|l| l.subject.clone());
        let mut doomed: Vec<Digest> = if run.policy.deleteuntagged {
            revisions.iter().filter(|d| !reached.contains(*d) && subject(d).is_none()).cloned().collect()
        } else {
            Vec::new()
        };
        if run.policy.deletereferrers {
            // A referrer of a referrer goes once its own subject has gone.
            loop {
                let gone: HashSet<&Digest> = doomed.iter().collect();
                let next: Vec<Digest> = revisions
                    .iter()
                    .filter(|d| !reached.contains(*d) && !gone.contains(d))
                    .filter(|d| subject(d).is_some_and(|s| !present.contains(&s) || gone.contains(&s)))
                    .cloned()
                    .collect();
                if next.is_empty() {
                    break;
                }
                doomed.extend(next);
            }
        }
        doomed.sort();
        Ok(doomed)
    }

    /// What one stored revision links to; `None` when its manifest blob is
    /// gone (it links to nothing). One that does not parse stops the run:
    /// what it refers to is unknown.
    async fn revision_links(&self, repo: &str, digest: &Digest) -> Result<Option<Links>> {
        let body = match self.backend.get(&Path::BlobData(digest).key()).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let parsed = self.parsed_manifest(digest, &body).map_err(|e| match e {
            Error::ManifestInvalid(reason) => Error::CorruptManifest { what: format!("{repo}@{digest}"), reason },
            other => other,
        })?;
        Ok(Some(Links { children: parsed.children.clone(), subject: parsed.subject.clone() }))
    }
}

/// One repository's run: its policy and the moment the run started.
struct RepoRun<'a> {
    repo: &'a str,
    policy: &'a Policy,
    rules: &'a [Rule<'a>],
    now: SystemTime,
    cutoff: SystemTime,
}
