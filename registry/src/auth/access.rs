//! Access rules for the built-in token service: users, groups, and rules
//! mapping repository glob patterns to actions.
//!
//! ```yaml
//! groups:
//!   team-a: [alice, bob]
//! rules:
//!   - { repository: "team-a/**", groups: [team-a], actions: [pull, push] }
//!   - { repository: "{user}/**", users: ["*"], actions: [pull, push, delete] }
//!   - { repository: "public/**", anonymous: true, actions: [pull] }
//! ```
//!
//! `*` matches within one path component, `**` across components, and
//! `{user}` is the authenticated user's name. A subject's permitted actions
//! on a repository are the union over every rule that matches it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRules {
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub repository: String,
    /// User names, or `*` for every authenticated user.
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Applies to requests without credentials too.
    #[serde(default)]
    pub anonymous: bool,
    /// `pull`, `push`, `delete` or `*`.
    pub actions: Vec<String>,
}

const ACTIONS: [&str; 3] = ["pull", "push", "delete"];

impl AccessRules {
    pub fn parse(text: &str) -> Result<AccessRules, String> {
        let rules: AccessRules = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        for (i, r) in rules.rules.iter().enumerate() {
            for a in &r.actions {
                if a != "*" && !ACTIONS.contains(&a.as_str()) {
                    return Err(format!("rules[{i}]: unknown action `{a}` (use pull, push, delete or *)"));
                }
            }
            for g in &r.groups {
                if !rules.groups.contains_key(g) {
                    return Err(format!("rules[{i}]: group `{g}` is not defined under groups"));
                }
            }
            if r.users.is_empty() && r.groups.is_empty() && !r.anonymous {
                return Err(format!("rules[{i}]: names no users, groups or anonymous, so it grants nothing"));
            }
        }
        Ok(rules)
    }

    fn applies(&self, rule: &Rule, user: Option<&str>) -> bool {
        if rule.anonymous {
            return true;
        }
        let Some(user) = user else { return false };
        rule.users.iter().any(|u| u == "*" || u == user)
            || rule.groups.iter().any(|g| self.groups.get(g).is_some_and(|members| members.iter().any(|m| m == user)))
    }

    /// The actions `user` (or an anonymous caller) may take on `repository`.
    pub fn permitted(&self, user: Option<&str>, repository: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for rule in &self.rules {
            if !self.applies(rule, user) {
                continue;
            }
            let pattern = match user {
                Some(u) => rule.repository.replace("{user}", u),
                None if rule.repository.contains("{user}") => continue,
                None => rule.repository.clone(),
            };
            if glob_match(&pattern, repository) {
                for a in &rule.actions {
                    if a == "*" {
                        out.extend(ACTIONS.iter().map(|s| s.to_string()));
                    } else {
                        out.insert(a.clone());
                    }
                }
            }
        }
        out
    }
}

/// The matcher lives with the repository names it matches; quotas use it too.
pub use crate::oci::glob::glob_match;

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
groups:
  team-a: [alice, bob]
rules:
  - { repository: "team-a/**", groups: [team-a], actions: [pull, push] }
  - { repository: "{user}/**", users: ["*"], actions: ["*"] }
  - { repository: "public/*", anonymous: true, actions: [pull] }
  - { repository: "**", users: [root], actions: ["*"] }
"#;

    fn set(a: &[&str]) -> BTreeSet<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rules() {
        let r = AccessRules::parse(RULES).unwrap();
        assert_eq!(r.permitted(Some("alice"), "team-a/app"), set(&["pull", "push"]));
        assert_eq!(r.permitted(Some("alice"), "team-a/x/y"), set(&["pull", "push"]));
        assert_eq!(r.permitted(Some("carol"), "team-a/app"), set(&[]));
        assert_eq!(r.permitted(Some("carol"), "carol/tools"), set(&["delete", "pull", "push"]));
        assert_eq!(r.permitted(Some("carol"), "alice/tools"), set(&[]));
        assert_eq!(r.permitted(None, "public/base"), set(&["pull"]));
        assert_eq!(r.permitted(None, "public/a/b"), set(&[]));
        assert_eq!(r.permitted(None, "team-a/app"), set(&[]));
        assert_eq!(r.permitted(Some("root"), "anything/at/all"), set(&["delete", "pull", "push"]));
    }

    #[test]
    fn invalid_rules_are_refused() {
        assert!(
            AccessRules::parse("rules: [{repository: x, groups: [nope], actions: [pull]}]")
                .unwrap_err()
                .contains("nope")
        );
        assert!(
            AccessRules::parse("rules: [{repository: x, users: [a], actions: [fly]}]").unwrap_err().contains("fly")
        );
        assert!(AccessRules::parse("rules: [{repository: x, actions: [pull]}]").is_err());
        assert!(AccessRules::parse("bogus: 1").is_err());
    }

    #[test]
    fn globs() {
        assert!(glob_match("a/*", "a/b"));
        assert!(!glob_match("a/*", "a/b/c"));
        assert!(glob_match("a/**", "a/b/c"));
        assert!(!glob_match("a/**", "ab/c"));
        assert!(glob_match("*-dev/**", "x-dev/y"));
        assert!(glob_match("**", "x"));
    }

    /// The backtracking matcher glob_match replaced: the semantics to keep.
    fn backtracking(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => (0..=t.len()).any(|i| backtracking(&p[2..], &t[i..])),
            Some(b'*') => {
                let mut i = 0;
                loop {
                    if backtracking(&p[1..], &t[i..]) {
                        return true;
                    }
                    if i == t.len() || t[i] == b'/' {
                        return false;
                    }
                    i += 1;
                }
            }
            Some(&c) => t.first() == Some(&c) && backtracking(&p[1..], &t[1..]),
        }
    }

    fn words(alphabet: &[u8], max: usize) -> Vec<Vec<u8>> {
        let mut out = vec![vec![]];
        let mut last = vec![vec![]];
        for _ in 0..max {
            last = last
                .iter()
                .flat_map(|w: &Vec<u8>| alphabet.iter().map(move |&c| [w.as_slice(), &[c]].concat()))
                .collect();
            out.extend(last.iter().cloned());
        }
        out
    }

    #[test]
    fn globs_match_as_the_backtracking_matcher_did() {
        for p in words(b"a*/", 5) {
            for t in words(b"ab/", 4) {
                let (ps, ts) = (String::from_utf8(p.clone()).unwrap(), String::from_utf8(t.clone()).unwrap());
                assert_eq!(glob_match(&ps, &ts), backtracking(&p, &t), "{ps:?} on {ts:?}");
            }
        }
    }

    /// Regression (fuzz/corpus/access/stars): many stars against a long
    /// requested name took exponential time, so one anonymous token request
    /// could hold a core. Fails (by taking far longer) on the backtracking matcher.
    #[test]
    fn many_stars_take_polynomial_time() {
        let text = "a".repeat(4000);
        let started = std::time::Instant::now();
        for pattern in
            [format!("{}b", "*a".repeat(40)), format!("{}b", "**a".repeat(40)), format!("{}b", "*".repeat(200))]
        {
            assert!(!glob_match(&pattern, &text));
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    }
}
