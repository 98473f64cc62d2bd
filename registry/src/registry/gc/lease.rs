//! Which replica runs the online collection. Best effort on purpose: the
//! stores have no compare-and-swap that both the filesystem and every S3
//! clone offer, and none is needed, because two collections at once are
//! safe (protocol.rs); the lease only saves the duplicate work.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::storage::paths::Path;

use super::super::{Registry, Result};

#[derive(Debug, Serialize, Deserialize)]
struct Lease {
    holder: String,
    /// Unix milliseconds, on the holder's clock.
    until: u64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Registry {
    /// Takes or renews the collection lease for `ttl`; false when another
    /// replica holds it.
    pub async fn take_gc_lease(&self, holder: &str, ttl: Duration) -> Result<bool> {
        self.take_lease(&Path::GcLease.key(), holder, ttl).await
    }

    /// The same best-effort lease for delivering one notification
    /// endpoint's events: two deliverers at once only send duplicates.
    pub async fn take_notification_lease(&self, endpoint: &str, holder: &str, ttl: Duration) -> Result<bool> {
        self.take_lease(&Path::NotificationLease(endpoint).key(), holder, ttl).await
    }

    async fn take_lease(&self, key: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let key = key.to_string();
        if let Some(lease) = self.read_lease(&key).await?
            && lease.holder != holder
            && lease.until > now_ms()
        {
            return Ok(false);
        }
        let lease = Lease { holder: holder.to_string(), until: now_ms() + ttl.as_millis() as u64 };
        let body = serde_json::to_vec(&lease).unwrap_or_default();
        self.backend.put_scratch(&key, Bytes::from(body)).await?;
        // Two replicas that wrote at once both read the last write.
        Ok(self.read_lease(&key).await?.is_some_and(|l| l.holder == holder))
    }

    async fn read_lease(&self, key: &str) -> Result<Option<Lease>> {
        match self.backend.get(key).await {
            Ok(body) => Ok(serde_json::from_slice(&body).ok()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
