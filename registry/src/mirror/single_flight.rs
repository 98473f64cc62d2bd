//! Single flight: one upstream fetch per key, however many requests ask for
//! it at once. The fetch runs in its own task, so a client that disconnects
//! never aborts the fetch that other clients are waiting on.
//!
//! [`Flights`] shares the result of a small fetch (a manifest, a
//! revalidation). [`BlobFlight`] is the tee for blobs: the fetch task hands
//! the upstream's bytes to storage and to an in-memory window at once;
//! every reader follows from its own offset, from memory while the bytes
//! arrive and from the committed blob afterwards.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::watch;

use super::Error;
use crate::registry::Registry;
use crate::registry::digest::Digest;
use crate::storage::ByteStream;

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
}

/// Where a blob fetch is.
#[derive(Debug, Clone)]
pub enum Progress {
    /// Waiting for the upstream's response headers.
    Connecting,
    /// Bytes arriving: `written` of `size` have been received.
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

/// How many of the newest bytes a flight keeps in memory for its readers.
/// A reader that falls further behind (a client slower than the upstream)
/// goes on from storage once the blob is committed.
const TEE_WINDOW: u64 = 32 * 1024 * 1024;

/// The newest bytes of a fetch: `chunks` hold `[start, end)`.
#[derive(Default)]
struct Tee {
    chunks: VecDeque<Bytes>,
    start: u64,
    end: u64,
}

impl Tee {
    fn push(&mut self, chunk: Bytes) {
        self.end += chunk.len() as u64;
        self.chunks.push_back(chunk);
        while self.end - self.start > TEE_WINDOW && self.chunks.len() > 1 {
            if let Some(old) = self.chunks.pop_front() {
                self.start += old.len() as u64;
            }
        }
    }

    /// Up to `max` bytes from `pos` (below `end`), or `None` when `pos` has
    /// already left the window.
    fn from(&self, pos: u64, end: u64, max: u64) -> Option<Vec<Bytes>> {
        if pos < self.start {
            return None;
        }
        let (mut out, mut offset, mut taken) = (Vec::new(), self.start, 0u64);
        for c in &self.chunks {
            let (lo, hi) = (offset, offset + c.len() as u64);
            offset = hi;
            if hi <= pos {
                continue;
            }
            if lo >= end || taken >= max {
                break;
            }
            let a = pos.max(lo) - lo;
            let b = hi.min(end) - lo;
            taken += b - a;
            out.push(c.slice(a as usize..b as usize));
        }
        Some(out)
    }
}

/// One blob being fetched: readers take its bytes from memory as they
/// arrive (no read-back of an object still being written), and from
/// storage once it is committed.
pub struct BlobFlight {
    digest: Digest,
    progress: watch::Receiver<Progress>,
    tee: Mutex<Tee>,
}

/// The fetch task's side of a flight.
#[derive(Clone)]
pub struct Publisher {
    tx: Arc<watch::Sender<Progress>>,
    flight: Arc<BlobFlight>,
}

impl Publisher {
    pub fn send(&self, p: Progress) {
        self.tx.send_replace(p);
    }

    /// Hands readers the next bytes of a blob of `size` bytes.
    pub fn chunk(&self, size: u64, chunk: Bytes) {
        let written = {
            let mut tee = self.flight.tee.lock().unwrap_or_else(|p| p.into_inner());
            tee.push(chunk);
            tee.end
        };
        // After the tee: a reader woken by this sees the bytes.
        self.send(Progress::Streaming { size, written });
    }
}

impl BlobFlight {
    pub fn new(digest: Digest) -> (Arc<BlobFlight>, Publisher) {
        let (tx, rx) = watch::channel(Progress::Connecting);
        let flight = Arc::new(BlobFlight { digest, progress: rx, tee: Mutex::new(Tee::default()) });
        (flight.clone(), Publisher { tx: Arc::new(tx), flight })
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
    pub fn follow(self: &Arc<Self>, registry: Arc<Registry>, start: u64, end: u64) -> ByteStream {
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
        let flight = self.clone();
        tokio::spawn(async move {
            if let Err(e) = flight.pump(&registry, start, end, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
    }

    async fn pump(
        &self,
        registry: &Registry,
        mut pos: u64,
        end: u64,
        tx: &tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    ) -> io::Result<()> {
        let mut rx = self.progress.clone();
        while pos < end {
            let progress = rx.borrow_and_update().clone();
            let from_memory = match progress {
                Progress::Connecting => Some(Vec::new()),
                Progress::Streaming { .. } => {
                    self.tee.lock().unwrap_or_else(|p| p.into_inner()).from(pos, end, 4 * 1024 * 1024)
                }
                Progress::Done { .. } => {
                    let mut stream = registry
                        .blob_stream(&self.digest, pos, end - pos)
                        .await
                        .map_err(|e| io::Error::other(e.to_string()))?;
                    while let Some(chunk) = stream.next().await {
                        if tx.send(Ok(chunk?)).await.is_err() {
                            return Ok(()); // the client went away
                        }
                    }
                    return Ok(());
                }
                Progress::Failed(e) => return Err(io::Error::other(e.to_string())),
            };
            match from_memory {
                Some(chunks) if !chunks.is_empty() => {
                    for chunk in chunks {
                        pos += chunk.len() as u64;
                        if tx.send(Ok(chunk)).await.is_err() {
                            return Ok(());
                        }
                    }
                    continue;
                }
                // Nothing new yet, or fallen out of the window: wait for more
                // (or for the commit, which is read from storage).
                _ => {}
            }
            if rx.changed().await.is_err() && !matches!(*rx.borrow(), Progress::Done { .. } | Progress::Failed(_)) {
                return Err(io::Error::other("the upstream fetch ended without a result"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tee_keeps_a_bounded_window() {
        let mut tee = Tee::default();
        let mib = Bytes::from(vec![7u8; 1 << 20]);
        for _ in 0..100 {
            tee.push(mib.clone());
        }
        assert_eq!(tee.end, 100 << 20);
        assert!(tee.end - tee.start <= TEE_WINDOW, "window {}", tee.end - tee.start);
        assert!(tee.from(0, tee.end, u64::MAX).is_none(), "bytes that left the window are not served");
        let got = tee.from(tee.end - 10, tee.end, u64::MAX).unwrap();
        assert_eq!(got.iter().map(|b| b.len()).sum::<usize>(), 10);
        let got = tee.from(tee.start + 5, tee.start + 7, u64::MAX).unwrap();
        assert_eq!(got.concat(), vec![7u8; 2]);
    }
}
