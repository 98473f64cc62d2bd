//! Validate, for a Registry's upkeep: `garbageCollection`, `retention` and
//! `quotas`. The CRD's CEL rules refuse the same things at admission; these
//! checks catch objects stored before a rule existed, and the one rule CEL
//! cannot state (`minAge` at least a minute, as the registry requires).

use crate::crd::{CommonSpec, QuotaSpec, RetentionSpec};
use crate::syntax::{go_duration_secs, quota_limit_bytes, valid_schedule};

use super::validate::Error;
use super::validated::{GarbageCollection, GcMode};

/// `interval` and `minAge` when unset, as the registry's own defaults.
const DEFAULT_INTERVAL: &str = "1h";
const DEFAULT_MIN_AGE: &str = "1h";
/// The registry refuses a shorter grace: a push uploads its layers before the manifest.
const MIN_AGE_FLOOR_SECS: f64 = 60.0;

fn invalid(message: String) -> Error {
    Error::InvalidSpec(message)
}

fn duration(field: &str, value: &str) -> Result<f64, Error> {
    go_duration_secs(value)
        .ok_or_else(|| invalid(format!("{field} `{value}` is not a Go duration such as 90s, 30m, 1h30m or 720h")))
}

/// `garbageCollection`, checked, with defaults filled in.
pub fn validate_gc(spec: &CommonSpec<'_>) -> Result<Option<GarbageCollection>, Error> {
    let Some(g) = spec.garbage_collection else { return Ok(None) };
    let schedule = g.schedule.as_deref().map(str::trim);
    let mode = match (schedule, g.online) {
        (Some(s), false) => {
            if !valid_schedule(s) {
                return Err(invalid(format!(
                    "garbageCollection.schedule `{s}` is not a cron schedule with five fields"
                )));
            }
            if g.interval.is_some() {
                return Err(invalid("garbageCollection.interval applies only with online: true".into()));
            }
            GcMode::Scheduled(s.to_string())
        }
        (None, true) => {
            let interval = g.interval.as_deref().map(str::trim).unwrap_or(DEFAULT_INTERVAL);
            if duration("garbageCollection.interval", interval)? <= 0.0 {
                return Err(invalid("garbageCollection.interval must be longer than zero".into()));
            }
            GcMode::Online { interval: interval.to_string() }
        }
        _ => {
            return Err(invalid(
                "garbageCollection: set exactly one of schedule (a CronJob) and online: true (inside the registry)"
                    .into(),
            ));
        }
    };
    let min_age = g.min_age.as_deref().map(str::trim).unwrap_or(DEFAULT_MIN_AGE);
    if duration("garbageCollection.minAge", min_age)? < MIN_AGE_FLOOR_SECS {
        return Err(invalid(format!(
            "garbageCollection.minAge `{min_age}` is too short: at least 1m (a push uploads its layers before the \
             manifest that refers to them)"
        )));
    }
    Ok(Some(GarbageCollection { mode, min_age: min_age.to_string(), delete_untagged: g.delete_untagged }))
}

/// `retention`, checked: it needs online collection, which applies it.
pub fn validate_retention(
    spec: &CommonSpec<'_>,
    gc: Option<&GarbageCollection>,
) -> Result<Option<RetentionSpec>, Error> {
    let Some(r) = spec.retention else { return Ok(None) };
    if !gc.is_some_and(|g| matches!(g.mode, GcMode::Online { .. })) {
        return Err(invalid("retention runs in the online collection: it needs garbageCollection.online: true".into()));
    }
    if let Some(d) = &r.delay {
        duration("retention.delay", d)?;
    }
    for (i, p) in r.policies.iter().enumerate() {
        let at = format!("retention.policies[{i}]");
        if p.repositories.is_empty() || p.repositories.iter().any(|g| g.trim().is_empty()) {
            return Err(invalid(format!("{at}.repositories: name at least one glob (`**` for every repository)")));
        }
        for (j, k) in p.keep_tags.iter().enumerate() {
            let at = format!("{at}.keepTags[{j}]");
            for (field, value) in [("pulledWithin", &k.pulled_within), ("pushedWithin", &k.pushed_within)] {
                if let Some(v) = value {
                    duration(&format!("{at}.{field}"), v)?;
                }
            }
            for (field, value) in [
                ("mostRecentlyPushedCount", k.most_recently_pushed_count),
                ("mostRecentlyPulledCount", k.most_recently_pulled_count),
            ] {
                if value.is_some_and(|n| n < 0) {
                    return Err(invalid(format!("{at}.{field} must not be negative")));
                }
            }
        }
    }
    Ok(Some(r.clone()))
}

/// `quotas`, checked.
pub fn validate_quotas(spec: &CommonSpec<'_>) -> Result<Vec<QuotaSpec>, Error> {
    for (i, q) in spec.quotas.iter().enumerate() {
        if q.repositories.trim().is_empty() {
            return Err(invalid(format!("quotas[{i}].repositories is empty")));
        }
        if quota_limit_bytes(&q.limit).is_none() {
            return Err(invalid(format!(
                "quotas[{i}].limit `{}` must be bytes or a whole number with k, M, G, T, Ki, Mi, Gi or Ti, e.g. 50Gi",
                q.limit
            )));
        }
    }
    Ok(spec.quotas.to_vec())
}

#[cfg(test)]
mod tests {
    use crate::reconcile::render::{parse, validate_input};
    use crate::reconcile::test_support::settings;

    /// What validate says of a Registry with `extra` in its spec (CEL is not run here).
    fn refusal(extra: &str) -> String {
        let yaml = format!(
            "apiVersion: wharf.dev/v1alpha1\nkind: Registry\nmetadata: {{ name: reg }}\nspec:\n  storage: {{ emptyDir: {{}} }}\n{extra}"
        );
        let mut inputs = parse(&yaml).expect("parses");
        validate_input(&mut inputs[0], "team-a", &settings()).map(|_| ()).expect_err("refused").to_string()
    }

    fn validated(extra: &str) -> crate::reconcile::validated::ValidatedRegistry {
        let yaml = format!(
            "apiVersion: wharf.dev/v1alpha1\nkind: Registry\nmetadata: {{ name: reg }}\nspec:\n  storage: {{ emptyDir: {{}} }}\n{extra}"
        );
        let mut inputs = parse(&yaml).expect("parses");
        validate_input(&mut inputs[0], "team-a", &settings()).expect("valid")
    }

    /// The status follows an online collection: read again after its interval, within bounds.
    #[test]
    fn the_status_is_read_again_after_the_collection_interval() {
        use std::time::Duration;
        for (extra, want) in [
            ("  garbageCollection: { online: true, interval: 2s }\n", 10),
            ("  garbageCollection: { online: true, interval: 45s }\n", 45),
            ("  garbageCollection: { online: true }\n", 300),
            ("  garbageCollection: { online: true, interval: 24h }\n", 300),
            ("  garbageCollection: { schedule: '@daily' }\n", 300),
            ("  quotas: [{ repositories: 'a/**', limit: 1Gi }]\n", 300),
        ] {
            assert_eq!(validated(extra).upkeep_recheck(), Duration::from_secs(want), "{extra}");
        }
    }

    #[test]
    fn objects_that_got_past_cel_are_refused_by_name() {
        for (extra, words) in [
            ("  garbageCollection: { schedule: '@daily', online: true }\n", "exactly one of schedule"),
            ("  garbageCollection: {}\n", "exactly one of schedule"),
            ("  garbageCollection: { schedule: '@daily', interval: 1h }\n", "interval applies only with online"),
            ("  garbageCollection: { schedule: 'every day' }\n", "not a cron schedule"),
            ("  garbageCollection: { online: true, minAge: 30s }\n", "minAge `30s` is too short: at least 1m"),
            ("  garbageCollection: { online: true, interval: 1d }\n", "interval `1d` is not a Go duration"),
            ("  garbageCollection: { online: true, interval: 0s }\n", "interval must be longer than zero"),
            ("  retention: { policies: [{ repositories: ['**'] }] }\n", "needs garbageCollection.online: true"),
            (
                "  garbageCollection: { schedule: '@daily' }\n  retention: { policies: [{ repositories: ['**'] }] }\n",
                "needs garbageCollection.online: true",
            ),
            (
                "  garbageCollection: { online: true }\n  retention: { policies: [{ repositories: [] }] }\n",
                "retention.policies[0].repositories",
            ),
            (
                "  garbageCollection: { online: true }\n  retention: { policies: [{ repositories: ['**'], keepTags: [{ mostRecentlyPulledCount: -1 }] }] }\n",
                "keepTags[0].mostRecentlyPulledCount must not be negative",
            ),
            (
                "  garbageCollection: { online: true }\n  retention: { policies: [{ repositories: ['**'], keepTags: [{ pulledWithin: 30d }] }] }\n",
                "keepTags[0].pulledWithin `30d`",
            ),
            ("  quotas: [{ repositories: 'a/**', limit: 1.5Gi }]\n", "quotas[0].limit `1.5Gi`"),
            ("  quotas: [{ repositories: ' ', limit: 1Gi }]\n", "quotas[0].repositories is empty"),
        ] {
            let e = refusal(extra);
            assert!(e.contains(words), "{extra:?}: {e}");
        }
    }
}
