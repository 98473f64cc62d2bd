//! Back-off for failed logins, per account *and* client address together:
//! after a few failures of one name from one client, each further wrong
//! password of that name from that client answers 429 with a growing
//! Retry-After.
//!
//! What it never does (behind an Ingress or SNAT every client shares one
//! address, so a typo-prone script must not lock out everyone):
//! - failures under one name never affect another name;
//! - a correct password is always accepted, whatever failed before: the
//!   limiter only decides between 401 and 429 for a wrong one. Online
//!   guessing is bounded by bcrypt's cost and the verification pool's size.
//!
//! Memory is bounded: at most [`CAPACITY`] entries, the oldest evicted.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FREE_FAILURES: u32 = 5;
const FIRST_BLOCK: Duration = Duration::from_secs(1);
const MAX_BLOCK: Duration = Duration::from_secs(300);
/// Failures older than this are forgotten.
const WINDOW: Duration = Duration::from_secs(900);
/// Most entries kept; beyond it, expired and then the oldest are dropped.
pub const CAPACITY: usize = 10_000;

/// The user name is hashed (with a per-process key) so a long name costs
/// no more memory than a short one.
type Key = (u64, Option<IpAddr>);

pub struct LoginLimiter {
    state: Mutex<HashMap<Key, Entry>>,
    hasher: RandomState,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter { state: Mutex::new(HashMap::new()), hasher: RandomState::new() }
    }
}

struct Entry {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

impl LoginLimiter {
    fn key(&self, user: &str, client: Option<IpAddr>) -> Key {
        (self.hasher.hash_one(user), client)
    }

    /// Records a wrong password; `Some(retry_after)` when this name from
    /// this client was backing off already (answer 429 rather than 401).
    pub fn failure(&self, user: &str, client: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let key = self.key(user, client);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.contains_key(&key) && state.len() >= CAPACITY {
            state.retain(|_, e| now.duration_since(e.last) < WINDOW);
            if state.len() >= CAPACITY
                && let Some(oldest) = state.iter().min_by_key(|(_, e)| e.last).map(|(k, _)| *k)
            {
                state.remove(&oldest);
            }
        }
        let e = state.entry(key).or_insert(Entry { failures: 0, last: now, blocked_until: None });
        if now.duration_since(e.last) > WINDOW {
            *e = Entry { failures: 0, last: now, blocked_until: None };
        }
        let backing_off = e.blocked_until.is_some_and(|until| until > now);
        e.failures += 1;
        e.last = now;
        if e.failures >= FREE_FAILURES {
            let exp = (e.failures - FREE_FAILURES).min(16);
            let block = (FIRST_BLOCK * 2u32.pow(exp)).min(MAX_BLOCK);
            e.blocked_until = Some(now + block);
        }
        // 429 when the client tried again before the Retry-After it was given.
        e.blocked_until.filter(|until| backing_off && *until > now).map(|until| until - now)
    }

    /// A successful login clears this name from this client.
    pub fn success(&self, user: &str, client: Option<IpAddr>) {
        let key = self.key(user, client);
        self.state.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
    }

    pub fn len(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)));

    #[test]
    fn backs_off_per_name_and_client() {
        let l = LoginLimiter::default();
        for _ in 0..FREE_FAILURES {
            assert!(l.failure("a", CLIENT).is_none());
        }
        let first = l.failure("a", CLIENT).expect("backing off after five failures");
        assert!(l.failure("a", CLIENT).unwrap() > first, "back-off grows");
        assert!(l.failure("b", CLIENT).is_none(), "another name from the same address is not affected");
        assert!(l.failure("a", None).is_none(), "the same name from another client is not affected");
        l.success("a", CLIENT);
        assert!(l.failure("a", CLIENT).is_none(), "a success clears the back-off");
    }

    /// Old code: only entries older than the window were pruned, so a flood
    /// of names grew the map without bound.
    #[test]
    fn memory_is_bounded() {
        let l = LoginLimiter::default();
        for i in 0..CAPACITY + 5_000 {
            l.failure(&format!("user{i}"), CLIENT);
        }
        assert!(l.len() <= CAPACITY, "{} entries", l.len());
        for _ in 0..FREE_FAILURES {
            l.failure("late", CLIENT);
        }
        assert!(l.failure("late", CLIENT).is_some(), "a recent entry survives eviction");
    }
}
