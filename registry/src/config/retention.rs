//! `storage.retention`: which tags and manifests age out, in the spirit of
//! zot's `storage.retention` with registry:2-style lowercase keys. The rules
//! are in docs/retention.md; `registry::retention` applies them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::values::{ConfigError, GoDuration, key_error};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Report what would go; delete nothing.
    #[serde(default)]
    pub dryrun: bool,
    /// A tag pushed (or a manifest revision written) within this is never deleted.
    #[serde(default = "day")]
    pub delay: GoDuration,
    /// The first policy whose `repositories` match a repository applies to it;
    /// a repository no policy matches keeps everything.
    #[serde(default)]
    pub policies: Vec<Policy>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Globs: `*` within one path segment, `**` across segments.
    pub repositories: Vec<String>,
    /// Delete manifests whose `subject` is no longer in the repository.
    #[serde(default)]
    pub deletereferrers: bool,
    /// Delete manifests no remaining tag reaches (index children and
    /// referrers of reached manifests are reached too).
    #[serde(default)]
    pub deleteuntagged: bool,
    /// A tag is kept if any rule keeps it; with none, every tag is kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keeptags: Vec<KeepTags>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeepTags {
    /// Regular expressions selecting the tags this rule is about (none: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulledwithin: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushedwithin: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mostrecentlypushedcount: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mostrecentlypulledcount: Option<usize>,
}

fn day() -> GoDuration {
    GoDuration(Duration::from_secs(24 * 3600))
}

impl Default for Retention {
    fn default() -> Self {
        Retention { dryrun: false, delay: day(), policies: Vec::new() }
    }
}

impl KeepTags {
    /// Whether the rule has any criterion beyond its patterns (without one,
    /// every tag it selects is kept).
    pub fn has_criteria(&self) -> bool {
        self.pulledwithin.is_some()
            || self.pushedwithin.is_some()
            || self.mostrecentlypushedcount.is_some()
            || self.mostrecentlypulledcount.is_some()
    }
}

impl Retention {
    /// Names the first key that cannot work: an empty repository list or
    /// glob, a pattern that is not a regular expression.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, p) in self.policies.iter().enumerate() {
            let at = format!("storage.retention.policies[{i}]");
            if p.repositories.is_empty() {
                return Err(key_error(
                    &format!("{at}.repositories"),
                    "name at least one glob (`**` for every repository)",
                ));
            }
            if p.repositories.iter().any(|g| g.trim().is_empty()) {
                return Err(key_error(&format!("{at}.repositories"), "a glob is empty"));
            }
            for (j, rule) in p.keeptags.iter().enumerate() {
                for (k, pattern) in rule.patterns.iter().enumerate() {
                    if let Err(e) = regex::Regex::new(pattern) {
                        return Err(key_error(
                            &format!("{at}.keeptags[{j}].patterns[{k}]"),
                            format!("`{pattern}` is not a regular expression: {e}"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::Config;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_yaml(text, env.iter().map(|(k, v)| (k.to_string(), v.to_string()))).map_err(|e| e.to_string())
    }

    const FULL: &str = r#"
storage:
  filesystem: {rootdirectory: /x}
  retention:
    dryrun: false
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
            mostrecentlypulledcount: 5
      - repositories: ["**"]
"#;

    #[test]
    fn the_documented_shape_loads() {
        let c = load(FULL, &[]).unwrap();
        let r = c.storage.retention.unwrap();
        assert_eq!(r.delay.0, Duration::from_secs(7200));
        assert_eq!(r.policies.len(), 2);
        let rule = &r.policies[0].keeptags[0];
        assert_eq!(rule.mostrecentlypushedcount, Some(5));
        assert_eq!(rule.pulledwithin.map(|d| d.0), Some(Duration::from_secs(720 * 3600)));
        assert!(r.policies[0].deleteuntagged && !r.policies[1].deleteuntagged);
        let d = load("storage: {filesystem: {}, retention: {}}", &[]).unwrap().storage.retention.unwrap();
        assert_eq!((d.delay.0, d.dryrun), (Duration::from_secs(86400), false), "defaults: 24h, not a dry run");
    }

    #[test]
    fn env_overrides_reach_retention_keys() {
        let env = [
            ("REGISTRY_STORAGE_RETENTION_DRYRUN", "true"),
            ("REGISTRY_STORAGE_RETENTION_DELAY", "5m"),
            ("REGISTRY_STORAGE_RETENTION_POLICIES", "[{repositories: [\"tmp/**\"], deleteuntagged: true}]"),
        ];
        let r = load(FULL, &env).unwrap().storage.retention.unwrap();
        assert!(r.dryrun);
        assert_eq!(r.delay.0, Duration::from_secs(300));
        assert_eq!(r.policies[0].repositories, ["tmp/**"]);
    }

    #[test]
    fn bad_keys_are_refused_by_name() {
        let base = "storage:\n  filesystem: {}\n  retention:\n";
        for (extra, want) in [
            ("    policies: [{repositories: []}]\n", "storage.retention.policies[0].repositories"),
            (
                "    policies: [{repositories: [a], keeptags: [{patterns: [\"(\"]}]}]\n",
                "storage.retention.policies[0].keeptags[0].patterns[0]",
            ),
            ("    policies: [{repositories: [a], keeptags: [{pattern: [x]}]}]\n", "storage.retention.policies[0]"),
            ("    delay: soon\n", "storage.retention.delay"),
            ("    dryRun: true\n", "storage.retention"),
        ] {
            let e = load(&format!("{base}{extra}"), &[]).unwrap_err();
            assert!(e.starts_with(want), "{extra:?}: {e}");
        }
    }
}
