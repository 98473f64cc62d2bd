//! registry:2's notification events: made where registry:2 makes them
//! (manifest and blob push, pull, mount and delete), filtered per endpoint
//! and written to a durable queue in storage (`queue.rs`) before the
//! operation returns. Delivery is `crate::notifications`' job.
//!
//! Who asked (request id, address, user) is known only to the API layer:
//! it runs each request inside [`scope`], and events read it from there.

mod queue;

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::notifications::Notifications;
use crate::oci::digest::Digest;
use crate::oci::reference::RepoName;

use super::{Registry, Result};
pub(super) use queue::Queue;
pub use queue::QueuedBatch;

/// The envelope's media type.
pub const EVENTS_MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v2+json";
/// The media type registry:2 gives blobs in events.
const BLOB_MEDIA_TYPE: &str = "application/octet-stream";

/// `{"events": [...]}`: what registry:2 POSTs, and what a queued batch holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Envelope {
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub id: String,
    /// RFC 3339 with nanoseconds, UTC.
    pub timestamp: String,
    pub action: String,
    pub target: Target,
    pub request: RequestRecord,
    pub actor: Actor,
    pub source: Source,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Target {
    #[serde(rename = "mediaType", default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub length: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repository: String,
    #[serde(rename = "fromRepository", default, skip_serializing_if = "String::is_empty")]
    pub from_repository: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Descriptor>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub size: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RequestRecord {
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub addr: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    pub method: String,
    pub useragent: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Actor {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Source {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub addr: String,
    #[serde(rename = "instanceID", default, skip_serializing_if = "String::is_empty")]
    pub instance_id: String,
}

/// What the API layer knows about the request an event comes from.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub request: RequestRecord,
    pub actor: String,
    /// `scheme://host[/prefix]` (or the prefix alone with relative URLs):
    /// event URLs are this plus `/v2/...`.
    pub base_url: String,
}

tokio::task_local! {
    static REQUEST: Arc<RequestInfo>;
}

/// Runs `f` with `info` as the request its events come from.
pub async fn scope<F: Future>(info: RequestInfo, f: F) -> F::Output {
    REQUEST.scope(Arc::new(info), f).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Push,
    Pull,
    Mount,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Push => "push",
            Action::Pull => "pull",
            Action::Mount => "mount",
            Action::Delete => "delete",
        }
    }
}

/// One endpoint's filters, as the queue applies them.
#[derive(Debug, Clone)]
pub struct EndpointFilter {
    pub name: String,
    pub ignored_media_types: BTreeSet<String>,
    pub ignored_actions: BTreeSet<String>,
}

impl EndpointFilter {
    fn accepts(&self, e: &Event) -> bool {
        !self.ignored_actions.contains(&e.action) && !self.ignored_media_types.contains(&e.target.media_type)
    }
}

/// The notification settings the registry layer needs.
pub struct Emitter {
    include_references: bool,
    pull_sample: f64,
    source: Source,
    queue: Queue,
}

impl Emitter {
    /// `None` when no endpoint is enabled: then no event is ever made.
    pub fn from_config(n: &Notifications, source: Source) -> Option<Emitter> {
        let endpoints: Vec<EndpointFilter> = n
            .enabled()
            .map(|e| EndpointFilter {
                name: e.name.clone(),
                ignored_media_types: e.ignored_media_types(),
                ignored_actions: e.ignored_actions(),
            })
            .collect();
        if endpoints.is_empty() {
            return None;
        }
        Some(Emitter {
            include_references: n.events.includereferences,
            pull_sample: n.events.pullsample.unwrap_or(1.0),
            source,
            queue: Queue::new(endpoints, n.events.flush),
        })
    }

    /// Woken each time a batch is queued for the endpoint (delivery's cue).
    pub fn wakeup(&self, endpoint: &str) -> Option<Arc<tokio::sync::Notify>> {
        self.queue.wakeup(endpoint)
    }
}

fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The descriptors a manifest refers to (registry:2's `References()`):
/// config and layers, or an index's manifests.
fn references(body: &[u8]) -> Vec<Descriptor> {
    #[derive(Deserialize)]
    struct Refs {
        #[serde(default)]
        config: Option<Descriptor>,
        #[serde(default)]
        layers: Vec<Descriptor>,
        #[serde(default)]
        manifests: Vec<Descriptor>,
    }
    match serde_json::from_slice::<Refs>(body) {
        Ok(r) => r.config.into_iter().chain(r.layers).chain(r.manifests).collect(),
        Err(_) => Vec::new(),
    }
}

/// What an operation says happened, before the request's details are added.
pub(super) struct Happened<'a> {
    pub action: Action,
    pub repo: &'a RepoName,
    pub digest: Option<&'a Digest>,
    pub media_type: &'a str,
    pub size: u64,
    pub tag: Option<&'a str>,
    pub from: Option<&'a RepoName>,
    /// The manifest's bytes, for `references` (manifest events only).
    pub manifest: Option<&'a [u8]>,
}

impl<'a> Happened<'a> {
    pub fn blob(action: Action, repo: &'a RepoName, digest: &'a Digest, size: u64) -> Self {
        Happened {
            action,
            repo,
            digest: Some(digest),
            media_type: if action == Action::Delete { "" } else { BLOB_MEDIA_TYPE },
            size,
            tag: None,
            from: None,
            manifest: None,
        }
    }
}

impl Registry {
    /// Whether events are made at all (some endpoint is enabled).
    pub fn notifying(&self) -> bool {
        self.events.get().is_some()
    }

    pub fn events(&self) -> Option<&Emitter> {
        self.events.get()
    }

    fn event(&self, emitter: &Emitter, h: &Happened<'_>) -> Event {
        let info = REQUEST.try_with(|r| r.clone()).unwrap_or_default();
        let kind = if h.manifest.is_some() { "manifests" } else { "blobs" };
        let url = match h.digest {
            Some(d) if h.action != Action::Delete => format!("{}/v2/{}/{kind}/{d}", info.base_url, h.repo),
            _ => String::new(),
        };
        let references = match h.manifest {
            Some(body) if emitter.include_references && h.action != Action::Delete => references(body),
            _ => Vec::new(),
        };
        Event {
            id: uuid::Uuid::new_v4().to_string(),
            timestamp: now_rfc3339(),
            action: h.action.as_str().to_string(),
            target: Target {
                media_type: h.media_type.to_string(),
                digest: h.digest.map(|d| d.to_string()).unwrap_or_default(),
                size: h.size,
                length: h.size,
                repository: h.repo.to_string(),
                from_repository: h.from.map(|f| f.to_string()).unwrap_or_default(),
                url,
                tag: h.tag.unwrap_or_default().to_string(),
                references,
            },
            request: info.request.clone(),
            actor: Actor { name: info.actor.clone() },
            source: emitter.source.clone(),
        }
    }

    /// Queues the event durably before the caller answers. A push, mount or
    /// delete whose event cannot be written fails (the client retries, the
    /// content rules make that safe); a pull's is logged and dropped, and
    /// pulls are sampled by `notifications.events.pullsample`.
    pub(super) async fn notify(&self, h: Happened<'_>) -> Result<()> {
        let Some(emitter) = self.events.get() else { return Ok(()) };
        // A read-only registry writes nothing, events included (its storage
        // may be mounted read-only); it only serves pulls.
        if self.options.read_only {
            return Ok(());
        }
        if h.action == Action::Pull && emitter.pull_sample < 1.0 && rand::random::<f64>() >= emitter.pull_sample {
            return Ok(());
        }
        let event = self.event(emitter, &h);
        match emitter.queue.enqueue(self.backend.as_ref(), event).await {
            Ok(()) => Ok(()),
            Err(e) if h.action == Action::Pull => {
                tracing::warn!(error = %e, repository = %h.repo, "queueing a pull event failed; it is lost");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}
