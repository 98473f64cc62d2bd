//! The UI's session: an HttpOnly, SameSite=Strict cookie (Secure under TLS)
//! holding a short-lived token signed with a key derived from `http.secret`
//! (so every replica accepts it): `<id>.<user>.<expiry>.<mac>`. Every
//! visitor gets one, anonymous ones too, because forms carry a CSRF token
//! derived from the session id. Logging in replaces the session; logging
//! out revokes it here and replaces it with an anonymous one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const COOKIE: &str = "wharf_session";
/// A logged-in session lasts this long, renewed while it is used.
pub const USER_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// An anonymous session (it only carries the CSRF token).
pub const ANONYMOUS_LIFETIME: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user: Option<String>,
    pub expires: u64,
}

pub struct Sessions {
    key: Vec<u8>,
    /// Logged-out session ids until they would have expired (this replica's).
    revoked: Mutex<HashMap<String, u64>>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Sessions {
    pub fn new(secret: &[u8]) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| {
            <Hmac<Sha256> as Mac>::new_from_slice(b"wharf").unwrap_or_else(|_| unreachable!("HMAC takes any key"))
        });
        mac.update(b"wharf-ui-session-key");
        Sessions { key: mac.finalize().into_bytes().to_vec(), revoked: Mutex::new(HashMap::new()) }
    }

    fn mac(&self, parts: &[&str]) -> String {
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.key) else { return String::new() };
        for p in parts {
            mac.update(p.as_bytes());
            mac.update(b"\0");
        }
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn start(&self, user: Option<&str>) -> Session {
        let lifetime = if user.is_some() { USER_LIFETIME } else { ANONYMOUS_LIFETIME };
        Session {
            id: hex::encode(rand::random::<[u8; 16]>()),
            user: user.map(str::to_string),
            expires: now() + lifetime.as_secs(),
        }
    }

    /// The cookie value of a session.
    pub fn encode(&self, s: &Session) -> String {
        let user = URL_SAFE_NO_PAD.encode(s.user.as_deref().unwrap_or(""));
        let exp = s.expires.to_string();
        let mac = self.mac(&["session", &s.id, &user, &exp]);
        format!("{}.{user}.{exp}.{mac}", s.id)
    }

    /// A valid, unexpired, unrevoked session from a cookie value.
    pub fn decode(&self, value: &str) -> Option<Session> {
        let mut parts = value.split('.');
        let (id, user, exp, mac) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || id.len() != 32 || !constant_eq(&self.mac(&["session", id, user, exp]), mac) {
            return None;
        }
        let expires: u64 = exp.parse().ok()?;
        if expires <= now() || self.is_revoked(id) {
            return None;
        }
        let user = String::from_utf8(URL_SAFE_NO_PAD.decode(user).ok()?).ok()?;
        Some(Session { id: id.to_string(), user: (!user.is_empty()).then_some(user), expires })
    }

    /// Whether a logged-in session should get a fresh expiry (under half left).
    pub fn needs_renewal(&self, s: &Session) -> bool {
        s.user.is_some() && s.expires.saturating_sub(now()) < USER_LIFETIME.as_secs() / 2
    }

    pub fn renew(&self, s: &Session) -> Session {
        Session { expires: now() + USER_LIFETIME.as_secs(), ..s.clone() }
    }

    /// The CSRF token of a session: forms carry it, the session cookie names it.
    pub fn csrf(&self, s: &Session) -> String {
        self.mac(&["csrf", &s.id])
    }

    pub fn csrf_ok(&self, s: &Session, token: Option<&str>) -> bool {
        token.is_some_and(|t| constant_eq(&self.csrf(s), t))
    }

    pub fn revoke(&self, s: &Session) {
        let mut revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        let t = now();
        revoked.retain(|_, exp| *exp > t);
        revoked.insert(s.id.clone(), s.expires);
    }

    fn is_revoked(&self, id: &str) -> bool {
        self.revoked.lock().unwrap_or_else(|p| p.into_inner()).contains_key(id)
    }

    /// The `Set-Cookie` value for a session.
    pub fn set_cookie(&self, s: &Session, path: &str, secure: bool) -> String {
        format!(
            "{COOKIE}={}; Path={path}; HttpOnly; SameSite=Strict{}",
            self.encode(s),
            if secure { "; Secure" } else { "" }
        )
    }
}

fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_round_trip_and_refuse_tampering_and_revocation() {
        let s = Sessions::new(b"secret");
        let alice = s.start(Some("alice"));
        let v = s.encode(&alice);
        assert_eq!(s.decode(&v), Some(alice.clone()));
        // Another user's name under alice's MAC, another key, a truncated value: refused.
        let forged = v.replacen(&URL_SAFE_NO_PAD.encode("alice"), &URL_SAFE_NO_PAD.encode("root"), 1);
        assert_eq!(s.decode(&forged), None);
        assert_eq!(Sessions::new(b"other").decode(&v), None);
        assert_eq!(s.decode(&v[..v.len() - 1]), None);
        assert!(s.csrf_ok(&alice, Some(&s.csrf(&alice))));
        assert!(!s.csrf_ok(&alice, None));
        assert!(!s.csrf_ok(&alice, Some(&s.csrf(&s.start(Some("alice"))))));
        s.revoke(&alice);
        assert_eq!(s.decode(&v), None);
        let anon = s.start(None);
        assert_eq!(s.decode(&s.encode(&anon)).unwrap().user, None);
    }
}
