//! Repository-name globs, as access rules and quotas write them: `*`
//! matches within one path component, `**` across components
//! (`team-a/**` is everything under `team-a/`, not `team-a` itself).

use std::fmt;

/// A pattern longer than this cannot be meant: two names' worth.
pub const MAX_PATTERN_LEN: usize = 2 * super::reference::MAX_NAME_LEN;

/// A validated repository-name glob.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RepoGlob(String);

impl RepoGlob {
    /// Checks a pattern: repository-name characters, `/` between non-empty
    /// components, and `*`; `**` only as a whole component, so what it
    /// means is never a guess. The error says what is wrong.
    pub fn parse(pattern: &str) -> Result<RepoGlob, String> {
        if pattern.is_empty() {
            return Err("the pattern is empty; `**` matches every repository".into());
        }
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(format!("the pattern is longer than {MAX_PATTERN_LEN} characters"));
        }
        if let Some(c) =
            pattern.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/*".contains(*c)))
        {
            return Err(format!(
                "`{pattern}` holds {c:?}: repository names are lowercase letters, digits, `.`, `_`, `-` and `/`, and the only wildcard is `*`"
            ));
        }
        for component in pattern.split('/') {
            if component.is_empty() {
                return Err(format!("`{pattern}` has an empty path component (a leading, trailing or double `/`)"));
            }
            if component.contains("**") && component != "**" {
                return Err(format!(
                    "`{pattern}`: `**` stands for whole path components (as in `a/**` or `a/**/b`), not part of `{component}`"
                ));
            }
        }
        Ok(RepoGlob(pattern.to_string()))
    }

    pub fn matches(&self, name: &str) -> bool {
        glob_match(&self.0, name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepoGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// `*` matches any run of characters except `/`; `**` matches anything.
///
/// The text is a repository name (from a token request or a push), so this takes
/// O(pattern x text) time whatever the input: one pass over the text per
/// pattern element, tracking which text positions the pattern so far can
/// reach. (A backtracking matcher took exponential time in the number of
/// stars: found by fuzzing.)
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    // reach[i]: the pattern consumed so far matches t[..i].
    let mut reach = vec![false; t.len() + 1];
    reach[0] = true;
    let mut next = vec![false; t.len() + 1];
    let mut j = 0;
    while j < p.len() {
        next.fill(false);
        match p[j] {
            b'*' if p.get(j + 1) == Some(&b'*') => {
                // `**`: every position at or after a reachable one.
                let mut on = false;
                for (n, r) in next.iter_mut().zip(&reach) {
                    on |= *r;
                    *n = on;
                }
                j += 2;
            }
            b'*' => {
                // `*`: positions after a reachable one, up to the next `/`.
                let mut on = false;
                for i in 0..=t.len() {
                    on |= reach[i];
                    next[i] = on;
                    if t.get(i) == Some(&b'/') {
                        on = false;
                    }
                }
                j += 1;
            }
            c => {
                for i in 0..t.len() {
                    next[i + 1] = reach[i] && t[i] == c;
                }
                j += 1;
            }
        }
        std::mem::swap(&mut reach, &mut next);
        if !reach.contains(&true) {
            return false;
        }
    }
    reach[t.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(p: &str) -> RepoGlob {
        RepoGlob::parse(p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn components_and_prefixes() {
        let g = glob("team-a/**");
        assert!(g.matches("team-a/app") && g.matches("team-a/x/y/z"));
        assert!(!g.matches("team-a"), "`team-a/**` is what is under team-a/");
        assert!(!g.matches("team-ab/app") && !g.matches("team-b/app") && !g.matches("x/team-a/app"));
        let g = glob("team-*/app");
        assert!(g.matches("team-a/app") && g.matches("team-/app"));
        assert!(!g.matches("team-a/b/app"), "`*` stays within one component");
        let g = glob("a/**/b");
        assert!(g.matches("a/x/b") && g.matches("a/x/y/b") && !g.matches("a/b/c"));
        assert!(glob("**").matches("anything/at/all") && glob("**").matches("x"));
        assert!(glob("exact/name").matches("exact/name") && !glob("exact/name").matches("exact/name2"));
    }

    #[test]
    fn double_double_star_needs_a_slash_and_nothing_more() {
        let g = glob("**/**");
        assert!(g.matches("a/b") && g.matches("a/b/c"));
        assert!(!g.matches("a"));
    }

    #[test]
    fn bad_patterns_are_refused_saying_why() {
        for (p, why) in [
            ("", "empty"),
            ("/team-a/**", "empty path component"),
            ("team-a//x", "empty path component"),
            ("team-a/", "empty path component"),
            ("Team-A/**", "lowercase"),
            ("team-a/[ab]", "'['"),
            ("team a/**", "' '"),
            ("team-a/**x", "whole path components"),
            ("team-a/***", "whole path components"),
            ("tëam/**", "'ë'"),
        ] {
            let e = RepoGlob::parse(p).unwrap_err();
            assert!(e.contains(why), "{p:?}: {e}");
        }
        let long = "a/".repeat(MAX_PATTERN_LEN / 2) + "a";
        assert!(RepoGlob::parse(&long).unwrap_err().contains("longer than"));
        assert!(RepoGlob::parse(&long[..MAX_PATTERN_LEN - 1]).is_ok());
    }

    /// Hostile but valid patterns against the longest names answer at once
    /// (the matcher is O(pattern x name); a backtracking one would not finish).
    #[test]
    fn hostile_patterns_answer_quickly() {
        let name = format!("{}b", "a".repeat(254));
        let deep = "a/".repeat(127) + "b";
        let started = std::time::Instant::now();
        let stars = glob(&"*a".repeat(MAX_PATTERN_LEN / 2));
        assert!(!stars.matches(&name));
        let doubles = glob(&format!("{}x", "**/".repeat(MAX_PATTERN_LEN / 3 - 1)));
        assert!(!doubles.matches(&deep));
        let doubles = glob(&format!("{}b", "**/".repeat(100)));
        assert!(doubles.matches(&deep));
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    }
}
