//! A Registry's upkeep: garbage collection (a CronJob, or online inside the
//! registry), retention policies and storage quotas. Rendered to the
//! registry's `storage.gc`, `storage.retention` and `storage.quotas`
//! (docs/gc.md, docs/retention.md).

use kube::KubeSchema;
use kube::core::{Message, Rule};
use serde::{Deserialize, Serialize};

/// The syntax the registry's Go durations accept (`90s`, `1h30m`, `720h`).
/// `[.]` rather than an escaped dot: CEL string literals have no `\.` escape.
const GO_DURATION_RE: &str = "^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$";

/// A CEL rule: the field is a Go duration.
fn go_duration(field: &str) -> Rule {
    Rule::new(format!("self.matches('{GO_DURATION_RE}')"))
        .message(Message::Message(format!("{field} must be a Go duration such as 90s, 30m, 1h30m or 720h")))
}

/// Garbage collection of unreferenced blobs: either a CronJob running
/// `wharf-registry garbage-collect` on a `schedule`, or `online` inside the
/// registry every `interval`. Both are safe against pushes that run at the
/// same time (docs/gc.md).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "has(self.schedule) != (has(self.online) && self.online)"
).message("garbageCollection: set exactly one of schedule (a CronJob) and online: true (inside the registry)"))]
#[x_kube(validation = Rule::new(
    "!has(self.interval) || (has(self.online) && self.online)"
).message("garbageCollection.interval applies only with online: true"))]
pub struct GarbageCollectionSpec {
    /// Cron schedule of a CronJob running `wharf-registry garbage-collect`, e.g. `0 3 * * 0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(
        "self.matches('^@(yearly|annually|monthly|weekly|daily|midnight|hourly)$') || size(self.split(' ').filter(f, f != '')) == 5"
    ).message("garbageCollection.schedule must be a cron schedule with five fields, e.g. `0 3 * * 0`"))]
    #[schemars(length(max = 128))]
    pub schedule: Option<String>,
    /// Collect inside the registry (the registry's `storage.gc`) instead of a
    /// CronJob; with several replicas one collects at a time. Needed by `retention`.
    #[serde(default)]
    pub online: bool,
    /// Time between online collections, a Go duration; `1h` when unset. Only with `online`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = go_duration("garbageCollection.interval"))]
    #[schemars(length(max = 32))]
    pub interval: Option<String>,
    /// Spare unreferenced blobs written or referenced within this Go duration
    /// (at least `1m`; `1h` when unset): a push uploads its layers before the
    /// manifest that refers to them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = go_duration("garbageCollection.minAge"))]
    #[schemars(length(max = 32))]
    pub min_age: Option<String>,
    /// Also delete manifests that no tag reaches (directly or as an index's child).
    #[serde(default)]
    pub delete_untagged: bool,
}

/// Retention policies: which tags to keep, applied before each online
/// collection (so they need `garbageCollection.online: true`). Rendered to
/// the registry's `storage.retention`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// Report what retention would delete; delete nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// A tag pushed within this Go duration is never deleted; `24h` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = go_duration("retention.delay"))]
    #[schemars(length(max = 32))]
    pub delay: Option<String>,
    /// Policies; the first whose `repositories` match a repository applies
    /// to it. A repository no policy matches keeps everything.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub policies: Vec<RetentionPolicy>,
}

/// One retention policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicy {
    /// Repository globs: `*` within a path segment, `**` across (`ci/**`, `**`).
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new("size(self) > 0 && self.all(g, size(g) > 0 && size(g) <= 256)").message(
        "retention.policies[].repositories: name at least one glob (`**` for every repository); each glob is 1 to 256 characters"
    ))]
    pub repositories: Vec<String>,
    /// Also delete manifests whose `subject` is no longer in the repository
    /// (signatures and SBOMs go with their image).
    #[serde(default)]
    pub delete_referrers: bool,
    /// Also delete manifests no remaining tag reaches.
    #[serde(default)]
    pub delete_untagged: bool,
    /// A tag is kept if any rule keeps it; with no rules every tag is kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub keep_tags: Vec<KeepTagsRule>,
}

/// Which tags a retention policy keeps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "(!has(self.mostRecentlyPushedCount) || self.mostRecentlyPushedCount >= 0) && (!has(self.mostRecentlyPulledCount) || self.mostRecentlyPulledCount >= 0)"
).message("retention keepTags[]: mostRecentlyPushedCount and mostRecentlyPulledCount must not be negative"))]
pub struct KeepTagsRule {
    /// Regular expressions selecting the tags this rule looks at; every tag when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(p, size(p) > 0 && size(p) <= 256)").message(
        "retention keepTags[].patterns: each pattern is 1 to 256 characters"
    ))]
    pub patterns: Vec<String>,
    /// Keep a selected tag pulled within this Go duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = go_duration("keepTags[].pulledWithin"))]
    #[schemars(length(max = 32))]
    pub pulled_within: Option<String>,
    /// Keep a selected tag pushed within this Go duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = go_duration("keepTags[].pushedWithin"))]
    #[schemars(length(max = 32))]
    pub pushed_within: Option<String>,
    /// Keep the N most recently pushed of the selected tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub most_recently_pushed_count: Option<i64>,
    /// Keep the N most recently pulled of the selected tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub most_recently_pulled_count: Option<i64>,
}

/// A storage limit for the repositories a glob matches, counted by the
/// unique blobs they reference. A push past it is refused with `DENIED`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaSpec {
    /// Repository glob, e.g. `team-a/**`.
    #[schemars(length(min = 1, max = 256))]
    pub repositories: String,
    /// The limit: bytes, or a number with k, M, G, T, Ki, Mi, Gi or Ti, e.g. `50Gi`.
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+(k|M|G|T|Ki|Mi|Gi|Ti)?$')").message(
        "quotas[].limit must be bytes or a whole number with k, M, G, T, Ki, Mi, Gi or Ti, e.g. 50Gi"
    ))]
    #[schemars(length(max = 32))]
    pub limit: String,
}
