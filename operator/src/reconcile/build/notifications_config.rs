//! The registry's `notifications` in config.yml, and where each header
//! taken from a Secret is mounted. Only file paths reach the ConfigMap; the
//! values stay in the Secrets (mounted read-only, read at each delivery).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::crd::{EventFormat, NotificationsSpec};
use crate::names::paths;

/// `notifications`.
#[derive(Debug, Serialize)]
pub struct NotificationsConfig {
    /// `events`.
    pub events: EventsConfig,
    /// `endpoints`.
    pub endpoints: Vec<EndpointConfig>,
}

/// `notifications.events`.
#[derive(Debug, Serialize)]
pub struct EventsConfig {
    /// References in manifest events.
    pub includereferences: bool,
    /// Share of pull events kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pullsample: Option<f64>,
}

/// `notifications.endpoints[]`.
#[derive(Debug, Serialize)]
pub struct EndpointConfig {
    /// Name.
    pub name: String,
    /// Off.
    pub disabled: bool,
    /// URL.
    pub url: String,
    /// Plain headers.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    /// Headers from mounted Secret files.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headerfiles: BTreeMap<String, String>,
    /// Request timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Failures before the back-off doubles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// Back-off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
    /// Ignore rules.
    pub ignore: IgnoreConfig,
    /// `distribution` or `cloudevents`.
    pub format: &'static str,
    /// Queue bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxpending: Option<u64>,
}

/// `notifications.endpoints[].ignore`.
#[derive(Debug, Serialize)]
pub struct IgnoreConfig {
    /// Media types.
    pub mediatypes: Vec<String>,
    /// Actions.
    pub actions: Vec<&'static str>,
}

/// One Secret key mounted for a header: volume name, directory, Secret, key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMount {
    /// Pod volume name (a DNS label).
    pub volume: String,
    /// Directory it is mounted at.
    pub dir: String,
    /// The Secret.
    pub secret: String,
    /// Its key, mounted as the file `value` in `dir`.
    pub key: String,
}

/// The file a mounted header value is in.
const VALUE_FILE: &str = "value";

/// Every Secret key mounted for a header, in spec order.
pub fn header_mounts(n: &NotificationsSpec) -> Vec<HeaderMount> {
    let mut out = Vec::new();
    for (i, e) in n.endpoints.iter().enumerate() {
        for (j, h) in e.secret_headers.iter().enumerate() {
            out.push(HeaderMount {
                volume: format!("notify-{i}-{j}"),
                dir: format!("{}/{}/{j}", paths::NOTIFICATIONS_DIR, e.name),
                secret: h.secret_name.clone(),
                key: h.key.clone(),
            });
        }
    }
    out
}

/// `notifications`.
pub fn notifications_config(n: &NotificationsSpec) -> NotificationsConfig {
    let endpoints = n
        .endpoints
        .iter()
        .map(|e| EndpointConfig {
            name: e.name.clone(),
            disabled: e.disabled,
            url: e.url.clone(),
            headers: e.headers.iter().map(|(k, v)| (k.clone(), vec![v.clone()])).collect(),
            headerfiles: e
                .secret_headers
                .iter()
                .enumerate()
                .map(|(j, h)| (h.header.clone(), format!("{}/{}/{j}/{VALUE_FILE}", paths::NOTIFICATIONS_DIR, e.name)))
                .collect(),
            timeout: e.timeout.clone(),
            threshold: e.threshold,
            backoff: e.backoff.clone(),
            ignore: IgnoreConfig {
                mediatypes: e.ignored_media_types.clone(),
                actions: e.ignored_actions.iter().map(|a| a.as_str()).collect(),
            },
            format: match e.format {
                EventFormat::Distribution => "distribution",
                EventFormat::CloudEvents => "cloudevents",
            },
            maxpending: e.max_pending,
        })
        .collect();
    NotificationsConfig {
        events: EventsConfig {
            includereferences: n.include_references,
            pullsample: n.pull_sample_percent.map(|p| f64::from(p) / 100.0),
        },
        endpoints,
    }
}

/// The file name inside a header's mounted directory.
pub fn value_file() -> &'static str {
    VALUE_FILE
}
