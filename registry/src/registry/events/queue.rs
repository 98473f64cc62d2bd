//! The durable notification queue: one object per batch of events per
//! endpoint under `wharf/notifications/<endpoint>/queue/`, named so a
//! listing gives write order and event counts (`storage::paths`).
//!
//! Writes are group-committed: a request that finds another writing waits
//! for it, then writes every event that queued meanwhile in one object, so
//! concurrent pushes share one durable put instead of paying one each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{Notify, oneshot};

use crate::storage::paths::{self, Path};
use crate::storage::{Backend, StorageError};

use super::super::{Error, Registry, Result};
use super::{EndpointFilter, Envelope, Event};

type Waiter = oneshot::Sender<Result<(), String>>;

/// This replica's clock for batch names: milliseconds that never go back,
/// and a sequence number.
struct Clock {
    millis: u64,
    seq: u64,
}

pub(in crate::registry) struct Queue {
    endpoints: Vec<EndpointFilter>,
    wakeups: HashMap<String, Arc<Notify>>,
    /// Random per process: two replicas never write the same name.
    replica: String,
    waiting: Mutex<Vec<(Event, Waiter)>>,
    writer: tokio::sync::Mutex<Clock>,
}

/// A batch waiting in an endpoint's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedBatch {
    pub name: String,
    pub count: usize,
}

impl Queue {
    pub(super) fn new(endpoints: Vec<EndpointFilter>) -> Queue {
        let wakeups = endpoints.iter().map(|e| (e.name.clone(), Arc::new(Notify::new()))).collect();
        let replica = format!("{:08x}", rand::random::<u32>());
        Queue {
            endpoints,
            wakeups,
            replica,
            waiting: Mutex::new(Vec::new()),
            writer: tokio::sync::Mutex::new(Clock { millis: 0, seq: 0 }),
        }
    }

    pub(super) fn wakeup(&self, endpoint: &str) -> Option<Arc<Notify>> {
        self.wakeups.get(endpoint).cloned()
    }

    /// Returns once `event` is durable in every queue that accepts it.
    pub(super) async fn enqueue(&self, backend: &dyn Backend, event: Event) -> Result<(), StorageError> {
        let (tx, mut rx) = oneshot::channel();
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).push((event, tx));
        let mut clock = self.writer.lock().await;
        // The writer before us may have taken ours along.
        if let Ok(done) = rx.try_recv() {
            return done.map_err(StorageError::Unavailable);
        }
        let batch = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|p| p.into_inner()));
        let (events, waiters): (Vec<Event>, Vec<Waiter>) = batch.into_iter().unzip();
        let outcome = self.write(backend, &mut clock, events).await;
        drop(clock);
        let shared = outcome.as_ref().map(|_| ()).map_err(|e| e.to_string());
        for w in waiters {
            let _ = w.send(shared.clone());
        }
        match rx.try_recv() {
            Ok(done) => done.map_err(StorageError::Unavailable),
            // Ours was in the batch just written, so its answer is there.
            Err(_) => outcome,
        }
    }

    async fn write(&self, backend: &dyn Backend, clock: &mut Clock, events: Vec<Event>) -> Result<(), StorageError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        clock.millis = clock.millis.max(now);
        let mut puts = Vec::new();
        for ep in &self.endpoints {
            let accepted: Vec<Event> = events.iter().filter(|e| ep.accepts(e)).cloned().collect();
            if accepted.is_empty() {
                continue;
            }
            clock.seq += 1;
            let name = paths::notification_batch_name(clock.millis, &self.replica, clock.seq, accepted.len());
            let key = Path::NotificationBatch(&ep.name, &name).key();
            let count = accepted.len();
            let body = serde_json::to_vec(&Envelope { events: accepted }).unwrap_or_default();
            puts.push(async move {
                backend.put(&key, Bytes::from(body)).await?;
                crate::metrics::notifications_queued(&ep.name, count);
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
        match self.backend.delete(&Path::NotificationBatch(endpoint, &batch.name).key()).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(Error::Storage(e)),
        }
    }
}
