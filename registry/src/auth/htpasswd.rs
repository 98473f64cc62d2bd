//! htpasswd files with bcrypt entries, as `htpasswd -B` writes them.

use std::collections::HashMap;

/// A parsed htpasswd file: user -> bcrypt hash.
#[derive(Debug, Default)]
pub struct Htpasswd {
    users: HashMap<String, String>,
}

/// A valid bcrypt hash of a random password, verified against when the user
/// does not exist so that unknown and known users take the same time.
const DUMMY_HASH: &str = "$2y$10$3vE1fV2kYbFp0aHc0yq6ZeOqT2w0P1fP6o8vY1sQe5r9e5yYwqJ3K";

impl Htpasswd {
    pub fn parse(text: &str) -> Result<Htpasswd, String> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line.split_once(':').ok_or_else(|| format!("line {}: expected user:hash", n + 1))?;
            if !(hash.starts_with("$2y$") || hash.starts_with("$2a$") || hash.starts_with("$2b$")) {
                return Err(format!(
                    "line {}: user `{user}` does not have a bcrypt hash; create entries with `htpasswd -B`",
                    n + 1
                ));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        Ok(Htpasswd { users })
    }

    /// Checks a password. bcrypt's comparison is constant-time, and an
    /// unknown user costs one bcrypt verification too.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        match self.users.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(password, DUMMY_HASH);
                false
            }
        }
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
        assert!(h.verify("alice", "s3cret"));
        assert!(!h.verify("alice", "wrong"));
        assert!(!h.verify("bob", "s3cret"));
        assert!(Htpasswd::parse("alice:{SHA}abc").unwrap_err().contains("htpasswd -B"));
        assert!(Htpasswd::parse("garbage").is_err());
        assert!(bcrypt::verify("x", DUMMY_HASH).is_ok(), "the dummy hash is well-formed");
    }
}
