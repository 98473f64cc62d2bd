//! `notifications`: registry:2's webhook endpoints, read unchanged, plus
//! wharf's keys for the CloudEvents format, the queue bound, pull sampling
//! and headers read from files (a mounted Secret instead of a token in the
//! config).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use super::values::{ConfigError, GoDuration, key_error};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Notifications {
    #[serde(default)]
    pub events: Events,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Events {
    /// Manifest events list the descriptors the manifest refers to.
    #[serde(default)]
    pub includereferences: bool,
    /// Wharf: the share of pull events kept, 0 (none) to 1 (all, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pullsample: Option<f64>,
    /// Wharf: flush each queued batch to disk before the request answers
    /// (filesystem storage; S3 writes are always durable). Off, a batch
    /// survives restarts and `kill -9` but not a power loss in the seconds
    /// before the kernel writes it back; on, small pushes pay an fsync.
    #[serde(default)]
    pub flush: bool,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// registry:2's envelope, `application/vnd.docker.distribution.events.v2+json`.
    #[default]
    Distribution,
    /// One CloudEvents 1.0 event per request, structured JSON mode.
    Cloudevents,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ignore {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mediatypes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub name: String,
    #[serde(default)]
    pub disabled: bool,
    pub url: String,
    #[serde(default, serialize_with = "redact_headers", skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Failures in a row before delivery backs off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// The first back-off; it doubles with each further failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignoredmediatypes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<Ignore>,
    /// Wharf: `distribution` (default) or `cloudevents`.
    #[serde(default)]
    pub format: Format,
    /// Wharf: most events kept for this endpoint; past it the oldest go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxpending: Option<u64>,
    /// Wharf: header name -> file whose content (trimmed) is the value,
    /// read at each delivery (a mounted Secret rotates without a restart).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headerfiles: BTreeMap<String, String>,
}

/// registry:2's defaults (its `EndpointConfig.defaults`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_THRESHOLD: u32 = 10;
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
pub const DEFAULT_MAX_PENDING: u64 = 100_000;

impl Endpoint {
    pub fn timeout(&self) -> Duration {
        self.timeout.map(|d| d.0).filter(|d| !d.is_zero()).unwrap_or(DEFAULT_TIMEOUT)
    }
    pub fn threshold(&self) -> u32 {
        self.threshold.filter(|&t| t > 0).unwrap_or(DEFAULT_THRESHOLD)
    }
    pub fn backoff(&self) -> Duration {
        self.backoff.map(|d| d.0).filter(|d| !d.is_zero()).unwrap_or(DEFAULT_BACKOFF)
    }
    pub fn max_pending(&self) -> u64 {
        self.maxpending.unwrap_or(DEFAULT_MAX_PENDING)
    }
    /// Media types whose events this endpoint never gets (both of registry:2's keys).
    pub fn ignored_media_types(&self) -> BTreeSet<String> {
        let extra = self.ignore.iter().flat_map(|i| i.mediatypes.iter());
        self.ignoredmediatypes.iter().chain(extra).cloned().collect()
    }
    pub fn ignored_actions(&self) -> BTreeSet<String> {
        self.ignore.iter().flat_map(|i| i.actions.iter()).cloned().collect()
    }
}

/// Header values may be bearer tokens: `config check` prints the names only.
fn redact_headers<S: Serializer>(h: &BTreeMap<String, Vec<String>>, s: S) -> Result<S::Ok, S::Error> {
    let redacted: BTreeMap<&String, Vec<&str>> = h.iter().map(|(k, v)| (k, vec!["<redacted>"; v.len()])).collect();
    redacted.serialize(s)
}

const ACTIONS: [&str; 4] = ["push", "pull", "mount", "delete"];

impl Notifications {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(s) = self.events.pullsample
            && !(0.0..=1.0).contains(&s)
        {
            return Err(key_error("notifications.events.pullsample", "must be between 0 and 1"));
        }
        let mut names = BTreeSet::new();
        for (i, e) in self.endpoints.iter().enumerate() {
            let key = |k: &str| format!("notifications.endpoints[{i}].{k}");
            if e.name.trim().is_empty() {
                return Err(key_error(&key("name"), "must not be empty"));
            }
            if !names.insert(e.name.as_str()) {
                return Err(key_error(&key("name"), format!("`{}` names two endpoints", e.name)));
            }
            match reqwest::Url::parse(&e.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => return Err(key_error(&key("url"), format!("`{}` is not an http or https URL", e.url))),
            }
            if e.maxpending == Some(0) {
                return Err(key_error(&key("maxpending"), "must be at least 1"));
            }
            for name in e.headers.keys().chain(e.headerfiles.keys()) {
                if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(key_error(&key("headers"), format!("`{name}` is not a header name")));
                }
            }
            for v in e.headers.values().flatten() {
                if reqwest::header::HeaderValue::from_str(v).is_err() {
                    return Err(key_error(&key("headers"), "a value is not a valid header value"));
                }
            }
            for a in e.ignored_actions() {
                if !ACTIONS.contains(&a.as_str()) {
                    return Err(key_error(
                        &key("ignore.actions"),
                        format!("`{a}` is not an action (push, pull, mount, delete)"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The endpoints that get events.
    pub fn enabled(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints.iter().filter(|e| !e.disabled)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    const REGISTRY2: &str = r#"
storage: {filesystem: {rootdirectory: /x}}
notifications:
  events:
    includereferences: true
  endpoints:
    - name: alistener
      disabled: false
      url: https://my.listener.com/event
      headers:
        Authorization: [Bearer abc]
      timeout: 1s
      threshold: 10
      backoff: 1s
      ignoredmediatypes:
        - application/octet-stream
      ignore:
        mediatypes:
          - application/octet-stream
        actions:
          - pull
"#;

    #[test]
    fn registry2_notifications_load_unchanged() {
        let c = Config::from_yaml(REGISTRY2, std::iter::empty()).unwrap();
        let n = c.notifications.as_ref().unwrap();
        assert!(n.events.includereferences);
        let e = &n.endpoints[0];
        assert_eq!((e.name.as_str(), e.threshold(), e.backoff().as_secs()), ("alistener", 10, 1));
        assert_eq!(e.headers["Authorization"], vec!["Bearer abc".to_string()]);
        assert!(e.ignored_actions().contains("pull"));
        assert!(e.ignored_media_types().contains("application/octet-stream"));
        let yaml = c.to_yaml();
        assert!(!yaml.contains("Bearer abc") && yaml.contains("<redacted>"), "{yaml}");
    }

    #[test]
    fn bad_endpoints_are_refused_by_key() {
        for (bad, key) in [
            ("[{name: a, url: 'ftp://x'}]", "url"),
            ("[{name: a, url: 'http://x'}, {name: a, url: 'http://y'}]", "name"),
            ("[{name: a, url: 'http://x', ignore: {actions: [poke]}}]", "ignore.actions"),
            ("[{name: a, url: 'http://x', maxpending: 0}]", "maxpending"),
            ("[{name: a, url: 'http://x', format: xml}]", "format"),
        ] {
            let yaml = format!("storage: {{filesystem: {{}}}}\nnotifications: {{endpoints: {bad}}}\n");
            let e = Config::from_yaml(&yaml, std::iter::empty()).unwrap_err().to_string();
            assert!(e.contains("notifications.endpoints") && e.contains(key), "{bad}: {e}");
        }
        let yaml = "storage: {filesystem: {}}\nnotifications: {events: {pullsample: 2}}\n";
        assert!(Config::from_yaml(yaml, std::iter::empty()).is_err());
    }
}
