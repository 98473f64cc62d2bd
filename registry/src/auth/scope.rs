//! Access scopes as the docker token spec writes them:
//! `repository:<name>:<action>[,<action>...]` and `registry:catalog:*`.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One entry of a token's `access` claim, or one scope a request needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Access {
    pub fn repository(name: &str, actions: &[&str]) -> Self {
        Access {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }

    pub fn catalog() -> Self {
        Access { kind: "registry".into(), name: "catalog".into(), actions: vec!["*".into()] }
    }

    /// Parses `type:name:actions`; the name may itself contain a `:port`-free
    /// host part, so the type is before the first colon and actions after the last.
    pub fn parse(scope: &str) -> Option<Access> {
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        let actions: BTreeSet<String> =
            actions.split(',').map(str::trim).filter(|a| !a.is_empty()).map(str::to_string).collect();
        Some(Access { kind: kind.into(), name: name.into(), actions: actions.into_iter().collect() })
    }

    /// Whether this grant allows `action` on `kind:name`.
    pub fn allows(&self, kind: &str, name: &str, action: &str) -> bool {
        self.kind == kind && self.name == name && self.actions.iter().any(|a| a == action || a == "*")
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scopes() {
        let a = Access::parse("repository:team-a/app:push,pull").unwrap();
        assert_eq!(a, Access::repository("team-a/app", &["pull", "push"]));
        assert_eq!(a.to_string(), "repository:team-a/app:pull,push");
        assert_eq!(Access::parse("registry:catalog:*").unwrap(), Access::catalog());
        assert!(Access::parse("nonsense").is_none());
        assert!(a.allows("repository", "team-a/app", "push"));
        assert!(!a.allows("repository", "team-a/other", "push"));
        assert!(!a.allows("repository", "team-a/app", "delete"));
    }
}
