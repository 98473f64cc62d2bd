//! A Registry's webhook notifications (the registry's `notifications`
//! section, docs/notifications.md). Header values that are secrets come
//! from Secrets mounted as files (`headerfiles`), never from the ConfigMap.

use std::collections::BTreeMap;

use kube::KubeSchema;
use kube::core::{Message, Rule};
use serde::{Deserialize, Serialize};

/// `[.]` rather than an escaped dot: CEL string literals have no `\.` escape.
const GO_DURATION_RE: &str = "^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$";

fn go_duration(field: &str) -> Rule {
    Rule::new(format!("self.matches('{GO_DURATION_RE}')"))
        .message(Message::Message(format!("{field} must be a Go duration such as 500ms, 1s or 30s")))
}

/// Events sent to HTTP endpoints: push, pull, mount and delete, as
/// registry:2 sends them, queued in the registry's storage and delivered at
/// least once.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.endpoints.all(e, self.endpoints.exists_one(f, f.name == e.name))")
    .message("notifications.endpoints: each name once"))]
pub struct NotificationsSpec {
    /// Manifest events list the descriptors the manifest refers to.
    #[serde(default)]
    pub include_references: bool,
    /// Percentage of pull events kept, 0 to 100 (100 when unset); pulls are most events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub pull_sample_percent: Option<u8>,
    /// Where events go.
    #[schemars(length(min = 1, max = 16))]
    pub endpoints: Vec<NotificationEndpoint>,
}

/// One receiver of events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationEndpoint {
    /// A name for logs, metrics and the queue in storage (a DNS label).
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("notifications.endpoints[].name must be a DNS label"))]
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// The receiver's URL (`http://` or `https://`); redirects are not followed.
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')")
        .message("notifications.endpoints[].url must be an http:// or https:// URL"))]
    #[schemars(length(min = 8, max = 2048))]
    pub url: String,
    /// Keep the endpoint configured but send it nothing.
    #[serde(default)]
    pub disabled: bool,
    /// Headers with plain values (never secrets: they are in the ConfigMap).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Headers whose value is a Secret's key (e.g. `Authorization` from a
    /// key holding `Bearer ...`), mounted as a file the registry reads at
    /// each delivery, so a rotated Secret applies without a restart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub secret_headers: Vec<SecretHeader>,
    /// Timeout of one request, a Go duration; `1s` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = go_duration("notifications.endpoints[].timeout"))]
    #[schemars(length(max = 32))]
    pub timeout: Option<String>,
    /// Failures in a row after which the wait between retries doubles; 10 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub threshold: Option<u32>,
    /// Wait before a retry, a Go duration; `1s` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = go_duration("notifications.endpoints[].backoff"))]
    #[schemars(length(max = 32))]
    pub backoff: Option<String>,
    /// Events whose target has one of these media types are not sent here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub ignored_media_types: Vec<String>,
    /// Actions not sent here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub ignored_actions: Vec<EventAction>,
    /// `Distribution` (registry:2's envelope, the default) or `CloudEvents`
    /// (CloudEvents 1.0, structured JSON, one event per request).
    #[serde(default)]
    pub format: EventFormat,
    /// Most events queued for this endpoint; past it the oldest are dropped
    /// (and counted). 100000 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000000))]
    pub max_pending: Option<u64>,
}

/// A header whose value is a key of a Secret in the Registry's namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretHeader {
    /// The header, e.g. `Authorization`.
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9!#$%&*+.^_|~-]+$')")
        .message("notifications.endpoints[].secretHeaders[].header must be a header name"))]
    #[schemars(length(min = 1, max = 128))]
    pub header: String,
    /// The Secret.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// Its key holding the whole value (`Bearer ...`).
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// An event's action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum EventAction {
    /// Manifests and blobs pushed.
    #[serde(rename = "push")]
    Push,
    /// Manifests and blobs pulled.
    #[serde(rename = "pull")]
    Pull,
    /// Blobs mounted from another repository.
    #[serde(rename = "mount")]
    Mount,
    /// Manifests, tags and blobs deleted.
    #[serde(rename = "delete")]
    Delete,
}

impl EventAction {
    /// The registry's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventAction::Push => "push",
            EventAction::Pull => "pull",
            EventAction::Mount => "mount",
            EventAction::Delete => "delete",
        }
    }
}

/// How events are sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum EventFormat {
    /// registry:2's envelope.
    #[default]
    Distribution,
    /// CloudEvents 1.0, structured JSON.
    CloudEvents,
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use kube::core::cel::Validator;
    use serde_json::{Value, json};

    use crate::crd::Registry;

    fn registry(notifications: Value) -> Result<(), Vec<String>> {
        let crd = Registry::crd();
        let schema = crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).expect("schema");
        let schema = serde_json::to_value(schema).expect("json");
        let obj = json!({"apiVersion": "wharf.dev/v1alpha1", "kind": "Registry", "metadata": {"name": "x"},
            "spec": {"storage": {"emptyDir": {}}, "notifications": notifications}});
        Validator::new()
            .validate(&schema, &obj, None)
            .map_err(|e| e.into_vec().into_iter().map(|e| e.message).collect())
    }

    fn rejected_with(result: Result<(), Vec<String>>, words: &str) {
        let messages = result.expect_err("the API server would reject this");
        assert!(messages.iter().any(|m| m.contains(words)), "no message mentions `{words}`: {messages:?}");
    }

    #[test]
    fn cel_checks_notification_endpoints() {
        let ok = json!({"endpoints": [{"name": "ci", "url": "https://ci.example.com/hook", "timeout": "2s",
            "secretHeaders": [{"header": "Authorization", "secretName": "s", "key": "k"}],
            "ignoredActions": ["pull"], "format": "CloudEvents"}]});
        assert_eq!(registry(ok), Ok(()));
        rejected_with(
            registry(json!({"endpoints": [{"name": "ci", "url": "ftp://x.example"}]})),
            "http:// or https://",
        );
        rejected_with(
            registry(
                json!({"endpoints": [{"name": "a", "url": "http://a.example"}, {"name": "a", "url": "http://b.example"}]}),
            ),
            "each name once",
        );
        rejected_with(registry(json!({"endpoints": [{"name": "Bad Name", "url": "http://a.example"}]})), "DNS label");
        rejected_with(
            registry(json!({"endpoints": [{"name": "a", "url": "http://a.example", "backoff": "soon"}]})),
            "Go duration",
        );
        rejected_with(
            registry(json!({"endpoints": [{"name": "a", "url": "http://a.example",
                "secretHeaders": [{"header": "Bad Header", "secretName": "s", "key": "k"}]}]})),
            "header name",
        );
    }
}
