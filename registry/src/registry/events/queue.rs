//! The durable notification queue: one object per batch of events per
//! endpoint under `wharf/notifications/<endpoint>/queue/`, named so a
//! listing gives write order and event counts (`storage::paths`).
//!
//! Each event is its own batch, written at once: requests never queue
//! behind one another's writes (a writer lock measured 0.7× the push rate
//! of small images). A name is taken from this replica's clock before the
//! write, so an operation that started after another one answered always
//! sorts after it; concurrent operations have no order to keep.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::storage::paths::{self, Path};
use crate::storage::{Backend, StorageError};

use super::super::{Error, Registry, Result};
use super::{EndpointFilter, Envelope, Event};

/// This replica's clock for batch names: milliseconds that never go back,
/// and a sequence number.
struct Clock {
    millis: u64,
    seq: u64,
}

pub(in crate::registry) struct Queue {
    endpoints: Vec<EndpointFilter>,
    /// `notifications.events.flush`: a flushed put rather than a scratch one.
    flush: bool,
    wakeups: HashMap<String, Arc<Notify>>,
    /// Random per process: two replicas never write the same name.
    replica: String,
    clock: Mutex<Clock>,
}

/// A batch waiting in an endpoint's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedBatch {
    pub name: String,
    pub count: usize,
}

impl Queue {
    pub(super) fn new(endpoints: Vec<EndpointFilter>, flush: bool) -> Queue {
        let wakeups = endpoints.iter().map(|e| (e.name.clone(), Arc::new(Notify::new()))).collect();
        let replica = format!("{:08x}", rand::random::<u32>());
        Queue { endpoints, flush, wakeups, replica, clock: Mutex::new(Clock { millis: 0, seq: 0 }) }
    }

    pub(super) fn wakeup(&self, endpoint: &str) -> Option<Arc<Notify>> {
        self.wakeups.get(endpoint).cloned()
    }

    /// Returns once `event` is written to every queue that accepts it.
    pub(super) async fn enqueue(&self, backend: &dyn Backend, event: Event) -> Result<(), StorageError> {
        let mut puts = Vec::new();
        for ep in self.endpoints.iter().filter(|ep| ep.accepts(&event)) {
            let name = self.next_name();
            let key = Path::NotificationBatch(&ep.name, &name).key();
            let body = serde_json::to_vec(&Envelope { events: vec![event.clone()] }).unwrap_or_default();
            puts.push(async move {
                // Atomic either way; flushed only when asked (see `Events::flush`).
                if self.flush {
                    backend.put(&key, Bytes::from(body)).await?;
                } else {
                    backend.put_scratch(&key, Bytes::from(body)).await?;
                }
                crate::metrics::notifications_queued(&ep.name, 1);
                if let Some(w) = self.wakeups.get(&ep.name) {
                    w.notify_one();
                }
                Ok::<(), StorageError>(())
            });
        }
        for r in futures::future::join_all(puts).await {
            r?;
        }
        Ok(())
    }

    /// The next batch name: milliseconds that never go back, then a sequence.
    fn next_name(&self) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let mut clock = self.clock.lock().unwrap_or_else(|p| p.into_inner());
        clock.millis = clock.millis.max(now);
        clock.seq += 1;
        paths::notification_batch_name(clock.millis, &self.replica, clock.seq, 1)
    }
}

impl Registry {
    /// The batches waiting for `endpoint`, oldest first.
    pub async fn notification_queue(&self, endpoint: &str) -> Result<Vec<QueuedBatch>> {
        let names = match self.backend.list(&Path::NotificationQueue(endpoint).key()).await {
            Ok(names) => names,
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut batches: Vec<QueuedBatch> = names
            .into_iter()
            .filter_map(|name| paths::notification_batch_count(&name).map(|count| QueuedBatch { name, count }))
            .collect();
        batches.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(batches)
    }

    /// A batch's events; `None` when it is gone (another replica delivered
    /// it) or does not parse (it is then removed, with a log line).
    pub async fn notification_batch(&self, endpoint: &str, batch: &QueuedBatch) -> Result<Option<Vec<Event>>> {
        let key = Path::NotificationBatch(endpoint, &batch.name).key();
        let body = match self.backend.get(&key).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match serde_json::from_slice::<Envelope>(&body) {
            Ok(env) => Ok(Some(env.events)),
            Err(e) => {
                tracing::warn!(key, error = %e, "a queued notification batch does not parse; removing it");
                self.notification_done(endpoint, batch).await?;
                Ok(None)
            }
        }
    }

    /// Removes a delivered (or dropped) batch.
    pub async fn notification_done(&self, endpoint: &str, batch: &QueuedBatch) -> Result<()> {
        self.notifications_done(endpoint, std::slice::from_ref(batch)).await
    }

    /// Removes delivered (or dropped) batches, in as few storage calls as
    /// the backend can (one blocking call on the filesystem, bulk deletes
    /// on S3); those already gone count as removed.
    pub async fn notifications_done(&self, endpoint: &str, batches: &[QueuedBatch]) -> Result<()> {
        if batches.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = batches.iter().map(|b| Path::NotificationBatch(endpoint, &b.name).key()).collect();
        self.backend.delete_objects(&keys).await.map_err(Error::Storage)
    }
}
