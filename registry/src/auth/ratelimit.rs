//! Back-off for failed logins, per account and per source address: after
//! a few failures each further one doubles the time the key is blocked.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FREE_FAILURES: u32 = 5;
const FIRST_BLOCK: Duration = Duration::from_secs(1);
const MAX_BLOCK: Duration = Duration::from_secs(300);
/// Failures older than this are forgotten.
const WINDOW: Duration = Duration::from_secs(900);

#[derive(Default)]
pub struct LoginLimiter {
    state: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

impl LoginLimiter {
    /// `Some(retry_after)` when any of `keys` is blocked now.
    pub fn blocked(&self, keys: &[String]) -> Option<Duration> {
        let now = Instant::now();
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .filter_map(|k| state.get(k)?.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    pub fn failure(&self, keys: &[String]) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.len() > 100_000 {
            state.retain(|_, e| now.duration_since(e.last) < WINDOW);
        }
        for k in keys {
            let e = state.entry(k.clone()).or_insert(Entry { failures: 0, last: now, blocked_until: None });
            if now.duration_since(e.last) > WINDOW {
                e.failures = 0;
            }
            e.failures += 1;
            e.last = now;
            if e.failures >= FREE_FAILURES {
                let exp = (e.failures - FREE_FAILURES).min(16);
                let block = (FIRST_BLOCK * 2u32.pow(exp)).min(MAX_BLOCK);
                e.blocked_until = Some(now + block);
            }
        }
    }

    /// A successful login clears the account (not the address).
    pub fn success(&self, account_key: &str) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).remove(account_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_repeated_failures() {
        let l = LoginLimiter::default();
        let keys = vec!["user:a".to_string(), "ip:1".to_string()];
        for _ in 0..FREE_FAILURES - 1 {
            l.failure(&keys);
            assert!(l.blocked(&keys).is_none());
        }
        l.failure(&keys);
        let first = l.blocked(&keys).unwrap();
        l.failure(&keys);
        assert!(l.blocked(&keys).unwrap() > first, "back-off grows");
        assert!(l.blocked(&["ip:1".to_string()]).is_some(), "the address is blocked too");
        l.success("user:a");
        assert!(l.blocked(&["user:a".to_string()]).is_none());
    }
}
