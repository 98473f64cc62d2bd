//! Pass-through access (issue 12): which clients the upstream has confirmed
//! may read a mirrored repository, and for how long that is trusted.
//!
//! Confirmations are kept per (keyed hash of the credentials, upstream,
//! repository); the key is random per process, so the map holds nothing a
//! password could be recovered or checked from. A confirmation younger than
//! [`CONFIRM_TTL`] lets cached content be served without asking again. When
//! the upstream cannot be asked (unreachable, 5xx, 429), only a client
//! confirmed within [`STALE_ACCESS_TTL`] gets stale content: stale-if-error
//! applies to content, never to a client the upstream never vouched for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::upstream::{CredKey, Credentials};
use super::{Error, Mirror, Target};
use crate::registry::digest::Digest;
use crate::registry::reference::Reference;

/// How long a confirmed access is trusted while the upstream answers.
pub const CONFIRM_TTL: Duration = Duration::from_secs(60);

/// How long a confirmed access still counts when the upstream cannot be asked.
pub const STALE_ACCESS_TTL: Duration = Duration::from_secs(60 * 60);

/// Entries kept before expired ones are dropped (and, past twice this, the
/// ones older than `CONFIRM_TTL`).
const PRUNE_AT: usize = 10_000;

type Key = (CredKey, String, String);

/// When each (credentials, upstream, repository) was last confirmed.
#[derive(Default)]
pub struct Confirmations {
    at: Mutex<HashMap<Key, Instant>>,
}

impl Confirmations {
    pub fn mark(&self, key: Key) {
        let mut m = self.at.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= PRUNE_AT {
            m.retain(|_, at| at.elapsed() < STALE_ACCESS_TTL);
            if m.len() >= 2 * PRUNE_AT {
                m.retain(|_, at| at.elapsed() < CONFIRM_TTL);
            }
        }
        m.insert(key, Instant::now());
    }

    /// Whether `key` was confirmed less than `ttl` ago.
    pub fn within(&self, key: &Key, ttl: Duration) -> bool {
        self.at.lock().unwrap_or_else(|p| p.into_inner()).get(key).is_some_and(|at| at.elapsed() < ttl)
    }
}

impl Mirror {
    fn access_key(t: &Target, creds: &Credentials) -> (CredKey, String, String) {
        (creds.key(), t.upstream.label(), t.remote.clone())
    }

    pub(super) fn mark_confirmed(&self, t: &Target, creds: &Credentials) {
        if self.passthrough {
            self.confirmed.mark(Self::access_key(t, creds));
        }
    }

    /// In pass-through mode, content cached for one client is served to
    /// another only after the upstream confirms this client may read the
    /// repository (a HEAD with its credentials, trusted for `CONFIRM_TTL`).
    /// When the upstream cannot be asked, see [`Mirror::stale_access`].
    pub async fn confirm(&self, t: &Target, creds: &Credentials, probe: Probe<'_>) -> Result<(), Arc<Error>> {
        if !self.passthrough || self.confirmed.within(&Self::access_key(t, creds), CONFIRM_TTL) {
            return Ok(());
        }
        let asked = match probe {
            Probe::Manifest(r) => t.upstream.manifest_head(&t.remote, &r.to_string(), creds).await.map(|_| ()),
            Probe::Blob(d) => t.upstream.blob_head(&t.remote, d, creds).await.map(|_| ()),
        };
        match asked {
            Ok(()) => {
                self.mark_confirmed(t, creds);
                Ok(())
            }
            Err(e) if e.is_transient() => self.stale_access(t, creds, &e),
            Err(e) => Err(Arc::new(e)),
        }
    }

    /// The upstream could not be asked (`cause`): in pass-through mode, only
    /// a client it confirmed within `STALE_ACCESS_TTL` may have stale
    /// content. Others are asked for credentials (401) when they sent none,
    /// and get `Unconfirmed` (503) otherwise.
    pub(super) fn stale_access(&self, t: &Target, creds: &Credentials, cause: &Error) -> Result<(), Arc<Error>> {
        if !self.passthrough || self.confirmed.within(&Self::access_key(t, creds), STALE_ACCESS_TTL) {
            return Ok(());
        }
        Err(Arc::new(match creds {
            Credentials::Anonymous => Error::Unauthorized {
                upstream: t.upstream.label(),
                message: format!("{}: log in; the upstream cannot confirm anonymous access now ({cause})", t.remote),
            },
            Credentials::Basic { .. } => Error::Unconfirmed {
                upstream: t.upstream.label(),
                repository: t.remote.clone(),
                cause: cause.to_string(),
            },
        }))
    }
}

/// What a pass-through confirmation asks the upstream about.
pub enum Probe<'a> {
    Manifest(&'a Reference),
    Blob(&'a Digest),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::upstream::credential_key;

    #[test]
    fn keys_are_keyed_and_distinct() {
        let a = credential_key("alice", "p");
        assert_eq!(a, credential_key("alice", "p"));
        assert_ne!(a, credential_key("alice", "q"));
        assert_ne!(a, credential_key("alicep", ""), "the separator keeps user and password apart");
        let plain: [u8; 32] = {
            use sha2::{Digest as _, Sha256};
            Sha256::digest(b"alice\0p").into()
        };
        assert_ne!(a, plain, "not a plain hash of the password");
    }

    #[test]
    fn confirmations_expire() {
        let c = Confirmations::default();
        let k = ([1; 32], "up".to_string(), "repo".to_string());
        assert!(!c.within(&k, CONFIRM_TTL));
        c.mark(k.clone());
        assert!(c.within(&k, CONFIRM_TTL));
        assert!(!c.within(&k, Duration::ZERO));
        assert!(!c.within(&([2; 32], "up".into(), "repo".into()), STALE_ACCESS_TTL));
    }
}
