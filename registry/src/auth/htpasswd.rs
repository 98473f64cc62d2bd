//! htpasswd files with bcrypt entries, as `htpasswd -B` writes them.
//!
//! Verification is blocking (bcrypt is CPU-bound by design): callers run it
//! on the blocking pool through [`super::verify::PasswordCheck`]. A short-lived
//! cache of verified credentials lives here, inside the parsed file, so that
//! a reload (a changed Secret) forgets every cached login at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::htpasswd_rule;

/// How long a verified user and password are remembered. Clients such as
/// containerd send Basic credentials on every blob request of a pull.
pub const VERIFIED_TTL: Duration = Duration::from_secs(60);
const VERIFIED_MAX: usize = 10_000;

/// A well-formed bcrypt salt and digest of a random password; prefixed with
/// `$2y$<cost>$` it is verified against when the user does not exist.
const DUMMY_SALT_AND_DIGEST: &str = "3vE1fV2kYbFp0aHc0yq6ZeOqT2w0P1fP6o8vY1sQe5r9e5yYwqJ3K";

/// A parsed htpasswd file: user -> bcrypt hash.
#[derive(Debug)]
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// Verified against for unknown users: the cost the file's entries use
    /// (the most common one), so unknown and known names cost the same.
    dummy: String,
    /// HMAC(key, user NUL password) -> when it stops counting as verified.
    /// Keyed with a per-process random key: the password is never stored.
    verified: Mutex<HashMap<[u8; 32], Instant>>,
    key: [u8; 32],
}

impl Htpasswd {
    pub fn parse(text: &str) -> Result<Htpasswd, String> {
        let mut users = HashMap::new();
        let mut costs: HashMap<u32, usize> = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let entry = htpasswd_rule::parse_line(line).map_err(|e| format!("line {}: {e}", n + 1))?;
            if let Some((user, hash)) = entry {
                *costs.entry(htpasswd_rule::bcrypt_cost(hash).unwrap_or(10)).or_default() += 1;
                users.insert(user.to_string(), hash.to_string());
            }
        }
        // Most common cost; ties go to the higher (slower) one.
        let cost = costs.into_iter().max_by_key(|&(cost, n)| (n, cost)).map_or(10, |(cost, _)| cost);
        Ok(Htpasswd {
            users,
            dummy: format!("$2y${cost:02}${DUMMY_SALT_AND_DIGEST}"),
            verified: Mutex::new(HashMap::new()),
            key: rand::random(),
        })
    }

    /// The hash an unknown user is verified against.
    pub fn dummy_hash(&self) -> &str {
        &self.dummy
    }

    /// The hash `user` is checked against: theirs, or the dummy.
    pub fn hash_for(&self, user: &str) -> &str {
        self.users.get(user).map_or(&self.dummy, String::as_str)
    }

    /// True when this user and password were verified within [`VERIFIED_TTL`]. Cheap.
    pub fn recently_verified(&self, user: &str, password: &str) -> bool {
        let id = self.credential_id(user, password);
        let now = Instant::now();
        self.verified.lock().unwrap_or_else(|p| p.into_inner()).get(&id).is_some_and(|until| *until > now)
    }

    /// Checks a password with bcrypt (blocking; milliseconds to a second).
    /// bcrypt's comparison is constant-time, and an unknown user costs one
    /// verification at the file's cost too.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let ok = bcrypt::verify(password, self.hash_for(user)).unwrap_or(false) && self.users.contains_key(user);
        if ok {
            self.remember(user, password);
        }
        ok
    }

    fn remember(&self, user: &str, password: &str) {
        let id = self.credential_id(user, password);
        let now = Instant::now();
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= VERIFIED_MAX {
            verified.retain(|_, until| *until > now);
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
        }
        verified.insert(id, now + VERIFIED_TTL);
    }

    fn credential_id(&self, user: &str, password: &str) -> [u8; 32] {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else { return [0; 32] };
        mac.update(user.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcrypt_entries() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let h = Htpasswd::parse(&format!("# comment\nalice:{hash}\n")).unwrap();
        assert!(!h.recently_verified("alice", "s3cret"));
        assert!(h.verify("alice", "s3cret"));
        assert!(h.recently_verified("alice", "s3cret"), "a verified login is remembered");
        assert!(!h.recently_verified("alice", "wrong"));
        assert!(!h.verify("alice", "wrong"));
        assert!(!h.verify("bob", "s3cret"));
        assert!(Htpasswd::parse("alice:{SHA}abc").unwrap_err().contains("htpasswd -B"));
        assert!(Htpasswd::parse("garbage").is_err());
        assert!(bcrypt::verify("x", h.dummy_hash()).is_ok(), "the dummy hash is well-formed");
    }

    /// An unknown user must cost what a known user with a wrong password
    /// costs: the dummy hash has the file's cost (`htpasswd -B` writes 5).
    #[test]
    fn unknown_users_cost_what_known_users_cost() {
        for cost in [4, 5, 7] {
            let line = format!("alice:{}\n", bcrypt::hash("pw", cost).unwrap());
            let h = Htpasswd::parse(&line).unwrap();
            assert_eq!(htpasswd_rule::bcrypt_cost(h.hash_for("nobody")), Some(cost), "{}", h.dummy_hash());
            assert_eq!(htpasswd_rule::bcrypt_cost(h.hash_for("alice")), Some(cost));
        }
        assert_eq!(htpasswd_rule::bcrypt_cost(Htpasswd::parse("").unwrap().dummy_hash()), Some(10));
    }

    #[test]
    fn the_operator_and_the_registry_refuse_2x() {
        let h = bcrypt::hash("pw", 4).unwrap().replacen("$2b$", "$2x$", 1);
        assert!(Htpasswd::parse(&format!("alice:{h}")).unwrap_err().contains("htpasswd -B"));
    }
}
