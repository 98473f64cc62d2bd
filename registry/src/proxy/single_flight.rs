//! Single flight: one upstream fetch per key, however many requests ask for
//! it at once. The fetch runs in its own task, so a client that disconnects
//! never aborts the fetch that other clients are waiting on.
//!
//! [`Flights`] shares the result of a small fetch (a manifest, a
//! revalidation). [`BlobFlight`] is the tee for blobs: the fetch task writes
//! the upstream's bytes into the upload area and publishes how many are
//! written; every reader follows from its own offset (from the upload file
//! while it grows, from the committed blob once it is renamed).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::watch;

use super::Error;
use crate::storage::paths::Path;
use crate::storage::{Backend, ByteStream};

type Inflight<V> = Shared<BoxFuture<'static, V>>;

/// In-flight fetches by key; each result is shared by every waiter.
pub struct Flights<K, V: Clone> {
    map: Arc<Mutex<HashMap<K, Inflight<V>>>>,
}

impl<K, V: Clone> Default for Flights<K, V> {
    fn default() -> Self {
        Flights { map: Arc::new(Mutex::new(HashMap::new())) }
    }
}

impl<K, V> Flights<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Joins the fetch for `key`, or starts `fetch` in a new task. `failed`
    /// turns a panicked task into a value.
    pub async fn run<F>(&self, key: K, fetch: F, failed: fn() -> V) -> V
    where
        F: Future<Output = V> + Send + 'static,
    {
        let shared = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(&key) {
                Some(f) => f.clone(),
                None => {
                    let map_ref = self.map.clone();
                    let k = key.clone();
                    let task = tokio::spawn(async move {
                        let v = fetch.await;
                        // Later requests see what this fetch stored, not this flight.
                        map_ref.lock().unwrap_or_else(|p| p.into_inner()).remove(&k);
                        v
                    });
                    let f: BoxFuture<'static, V> = async move { task.await.unwrap_or_else(|_| failed()) }.boxed();
                    let f = f.shared();
                    map.insert(key, f.clone());
                    f
                }
            }
        };
        shared.await
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a blob fetch is.
#[derive(Debug, Clone)]
pub enum Progress {
    /// Waiting for the upstream's response headers.
    Connecting,
    /// Bytes arriving: `written` of `size` are in the upload file.
    Streaming {
        size: u64,
        written: u64,
    },
    /// Verified and committed under its digest.
    Done {
        size: u64,
    },
    Failed(Arc<Error>),
}

/// One blob being fetched: readers follow it through storage.
pub struct BlobFlight {
    pub upload_key: String,
    pub blob_key: String,
    progress: watch::Receiver<Progress>,
}

/// The fetch task's side of a flight.
pub struct Publisher(watch::Sender<Progress>);

impl Publisher {
    pub fn send(&self, p: Progress) {
        self.0.send_replace(p);
    }
}

impl BlobFlight {
    pub fn new(upload_key: String, blob_key: String) -> (Arc<BlobFlight>, Publisher) {
        let (tx, rx) = watch::channel(Progress::Connecting);
        (Arc::new(BlobFlight { upload_key, blob_key, progress: rx }), Publisher(tx))
    }

    /// Waits for the upstream's answer: the blob's size, or why there is none.
    pub async fn size(&self) -> Result<u64, Arc<Error>> {
        let mut rx = self.progress.clone();
        loop {
            match &*rx.borrow_and_update() {
                Progress::Connecting => {}
                Progress::Streaming { size, .. } | Progress::Done { size } => return Ok(*size),
                Progress::Failed(e) => return Err(e.clone()),
            }
            if rx.changed().await.is_err() {
                return Err(Arc::new(Error::Store("the fetch task ended without a result".into())));
            }
        }
    }

    /// Waits for the end of the fetch.
    pub async fn finished(&self) -> Result<u64, Arc<Error>> {
        let mut rx = self.progress.clone();
        loop {
            match &*rx.borrow_and_update() {
                Progress::Done { size } => return Ok(*size),
                Progress::Failed(e) => return Err(e.clone()),
                _ => {}
            }
            if rx.changed().await.is_err() {
                return Err(Arc::new(Error::Store("the fetch task ended without a result".into())));
            }
        }
    }

    /// The bytes `[start, end)` as they arrive. A reader that goes away
    /// only stops its own reading.
    pub fn follow(self: &Arc<Self>, backend: Arc<dyn Backend>, start: u64, end: u64) -> ByteStream {
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
        let flight = self.clone();
        tokio::spawn(async move {
            if let Err(e) = flight.pump(backend.as_ref(), start, end, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
    }

    async fn pump(
        &self,
        backend: &dyn Backend,
        mut pos: u64,
        end: u64,
        tx: &tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    ) -> io::Result<()> {
        let mut rx = self.progress.clone();
        let ended = || io::Error::other("the upstream fetch ended without a result");
        while pos < end {
            let progress = rx.borrow_and_update().clone();
            let (key, upto) = match progress {
                Progress::Connecting => (None, pos),
                Progress::Streaming { written, .. } => (Some(&self.upload_key), written.min(end)),
                Progress::Done { .. } => (Some(&self.blob_key), end),
                Progress::Failed(e) => return Err(io::Error::other(e.to_string())),
            };
            if let Some(key) = key
                && pos < upto
            {
                match backend.read(key, pos, Some(upto - pos)).await {
                    Ok(mut stream) => {
                        while let Some(chunk) = stream.next().await {
                            let chunk = chunk?;
                            pos += chunk.len() as u64;
                            if tx.send(Ok(chunk)).await.is_err() {
                                return Ok(()); // the client went away
                            }
                        }
                        continue;
                    }
                    // Renamed into place meanwhile: the next progress says Done.
                    Err(e) if e.is_not_found() && key == &self.upload_key => {}
                    Err(e) => return Err(io::Error::other(e.to_string())),
                }
            }
            if rx.changed().await.is_err() && !matches!(*rx.borrow(), Progress::Done { .. } | Progress::Failed(_)) {
                return Err(ended());
            }
        }
        Ok(())
    }
}

/// The upload-area key a blob fetch writes to.
pub fn upload_key(repo: &str, id: &str) -> String {
    Path::UploadData(repo, id).key()
}
