//! The registry's upkeep keys in config.yml: `storage.gc` (online garbage
//! collection), `storage.retention` and `storage.quotas`, with the
//! registry's lowercase keys (registry/src/config/gc.rs, retention.rs).

use serde::Serialize;

use crate::crd::{QuotaSpec, RetentionSpec};

use super::super::validated::{GcMode, ValidatedRegistry};

/// `storage.gc`.
#[derive(Debug, Serialize)]
pub struct GcConfig {
    /// Always true: only rendered with `online`.
    pub enabled: bool,
    /// Time between collections.
    pub interval: String,
    /// Grace of unreferenced blobs (`minAge`).
    pub delay: String,
    /// Also delete untagged manifests.
    pub deleteuntagged: bool,
}

/// `storage.retention`.
#[derive(Debug, Serialize)]
pub struct RetentionConfig {
    /// Report only.
    pub dryrun: bool,
    /// Tags pushed within this are kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    /// Policies.
    pub policies: Vec<PolicyConfig>,
}

/// `storage.retention.policies[]`.
#[derive(Debug, Serialize)]
pub struct PolicyConfig {
    /// Globs.
    pub repositories: Vec<String>,
    /// Delete referrers of deleted subjects.
    pub deletereferrers: bool,
    /// Delete untagged manifests.
    pub deleteuntagged: bool,
    /// Keep rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keeptags: Vec<KeepTagsConfig>,
}

/// `storage.retention.policies[].keeptags[]`.
#[derive(Debug, Serialize)]
pub struct KeepTagsConfig {
    /// Tag regexes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<String>,
    /// Pulled within.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pulledwithin: Option<String>,
    /// Pushed within.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushedwithin: Option<String>,
    /// Newest N pushed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mostrecentlypushedcount: Option<u64>,
    /// Newest N pulled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mostrecentlypulledcount: Option<u64>,
}

/// `storage.quotas[]`.
#[derive(Debug, Serialize)]
pub struct QuotaConfig {
    /// Glob.
    pub repositories: String,
    /// Limit, as written in the spec (`50Gi`).
    pub limit: String,
}

/// `storage.gc`, when the collection runs online.
pub fn gc_config(v: &ValidatedRegistry) -> Option<GcConfig> {
    let gc = v.gc.as_ref()?;
    let GcMode::Online { interval } = &gc.mode else { return None };
    Some(GcConfig {
        enabled: true,
        interval: interval.clone(),
        delay: gc.min_age.clone(),
        deleteuntagged: gc.delete_untagged,
    })
}

/// `storage.retention`.
pub fn retention_config(r: &RetentionSpec) -> RetentionConfig {
    // Validate refused negative counts; a stray one would mean "keep none", so it is dropped.
    let count = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok());
    RetentionConfig {
        dryrun: r.dry_run,
        delay: r.delay.clone(),
        policies: r
            .policies
            .iter()
            .map(|p| PolicyConfig {
                repositories: p.repositories.clone(),
                deletereferrers: p.delete_referrers,
                deleteuntagged: p.delete_untagged,
                keeptags: p
                    .keep_tags
                    .iter()
                    .map(|k| KeepTagsConfig {
                        patterns: k.patterns.clone(),
                        pulledwithin: k.pulled_within.clone(),
                        pushedwithin: k.pushed_within.clone(),
                        mostrecentlypushedcount: count(k.most_recently_pushed_count),
                        mostrecentlypulledcount: count(k.most_recently_pulled_count),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// `storage.quotas`.
pub fn quotas_config(quotas: &[QuotaSpec]) -> Vec<QuotaConfig> {
    quotas
        .iter()
        .map(|q| QuotaConfig { repositories: q.repositories.clone(), limit: q.limit.trim().to_string() })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_yaml::Value;

    use crate::reconcile::build::{build, gc_cronjob::build_gc_cronjob, registry_config::build_registry_config};
    use crate::reconcile::test_support::validated;

    fn registry(extra: &str) -> String {
        format!(
            "apiVersion: wharf.dev/v1alpha1\nkind: Registry\nmetadata: {{ name: reg }}\nspec:\n  storage: {{ filesystem: {{ size: 10Gi }} }}\n{extra}"
        )
    }

    fn config(extra: &str) -> Value {
        let v = validated(&registry(extra));
        serde_yaml::from_str(&serde_yaml::to_string(&build_registry_config(&v)).expect("yaml")).expect("value")
    }

    fn cronjob_args(extra: &str) -> Option<Vec<String>> {
        let job = build_gc_cronjob(&validated(&registry(extra)))?;
        let spec = job.spec?.job_template.spec?.template.spec?;
        spec.containers[0].args.clone()
    }

    #[test]
    fn online_collection_is_storage_gc_and_no_cronjob() {
        let extra = "  garbageCollection: { online: true, interval: 30m, minAge: 2h, deleteUntagged: true }\n";
        let c = config(extra);
        let gc = &c["storage"]["gc"];
        assert_eq!(gc["enabled"], Value::Bool(true));
        assert_eq!(gc["interval"].as_str(), Some("30m"));
        assert_eq!(gc["delay"].as_str(), Some("2h"));
        assert_eq!(gc["deleteuntagged"], Value::Bool(true));
        assert!(cronjob_args(extra).is_none(), "online collection needs no CronJob");
        let v = validated(&registry(extra));
        assert!(build(&v).expect("build").gc_cronjob.is_none(), "so apply prunes one left from a schedule");

        let defaults = config("  garbageCollection: { online: true }\n");
        assert_eq!(defaults["storage"]["gc"]["interval"].as_str(), Some("1h"));
        assert_eq!(defaults["storage"]["gc"]["delay"].as_str(), Some("1h"));
        assert_eq!(defaults["storage"]["gc"]["deleteuntagged"], Value::Bool(false));
    }

    #[test]
    fn a_schedule_is_a_cronjob_with_min_age_and_delete_untagged() {
        let args = cronjob_args("  garbageCollection: { schedule: '0 3 * * 0', minAge: 90m, deleteUntagged: true }\n");
        assert_eq!(
            args.expect("a CronJob"),
            ["garbage-collect", "--min-age=90m", "-m", "/etc/wharf/config.yml"].map(String::from)
        );
        let plain = cronjob_args("  garbageCollection: { schedule: '@daily' }\n").expect("a CronJob");
        assert_eq!(plain, ["garbage-collect", "--min-age=1h", "/etc/wharf/config.yml"].map(String::from));
        let c = config("  garbageCollection: { schedule: '@daily' }\n");
        assert!(c["storage"].get("gc").is_none(), "the CronJob collects; the registry does not");
        assert!(cronjob_args("").is_none());
    }

    #[test]
    fn retention_and_quotas_are_rendered_with_the_registry_keys() {
        let c = config(
            r#"  garbageCollection: { online: true }
  retention:
    dryRun: true
    delay: 2h
    policies:
      - repositories: ["ci/**", "team-a/app"]
        deleteReferrers: true
        deleteUntagged: true
        keepTags:
          - patterns: ["^v[0-9]+"]
            pulledWithin: 720h
            pushedWithin: 168h
            mostRecentlyPushedCount: 5
            mostRecentlyPulledCount: 3
      - repositories: ["**"]
  quotas:
    - { repositories: "team-a/**", limit: 50Gi }
    - { repositories: "ci/**", limit: "1073741824" }
"#,
        );
        let expected: Value = serde_yaml::from_str(
            r#"
dryrun: true
delay: 2h
policies:
  - repositories: ["ci/**", "team-a/app"]
    deletereferrers: true
    deleteuntagged: true
    keeptags:
      - patterns: ["^v[0-9]+"]
        pulledwithin: 720h
        pushedwithin: 168h
        mostrecentlypushedcount: 5
        mostrecentlypulledcount: 3
  - repositories: ["**"]
    deletereferrers: false
    deleteuntagged: false
"#,
        )
        .expect("yaml");
        assert_eq!(c["storage"]["retention"], expected);
        let quotas: Value = serde_yaml::from_str(
            "[{repositories: 'team-a/**', limit: 50Gi}, {repositories: 'ci/**', limit: '1073741824'}]",
        )
        .expect("yaml");
        assert_eq!(c["storage"]["quotas"], quotas);

        let none = config("");
        for key in ["gc", "retention", "quotas"] {
            assert!(none["storage"].get(key).is_none(), "storage.{key} only when asked for");
        }
    }
}
