//! The token service's access rules file, and matching requested
//! repositories (from the network) against its patterns.
//!
//! Input: the rules YAML, then NUL, then `user` NUL `repository` pairs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_registry::auth::access::{AccessRules, glob_match};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let mut parts = s.split('\0');
    let rules_text = parts.next().unwrap_or_default();
    let user = parts.next();
    let repository = parts.next().unwrap_or_default();
    if let Ok(rules) = AccessRules::parse(rules_text) {
        let granted = rules.permitted(user.filter(|u| !u.is_empty()), repository);
        assert!(granted.iter().all(|a| ["pull", "push", "delete"].contains(&a.as_str())));
    }
    // The matcher alone: pattern and text from either side of the first NUL.
    let (pattern, text) = s.split_once('\0').unwrap_or((s, ""));
    if glob_match(pattern, text) && !pattern.contains('*') {
        assert_eq!(pattern, text);
    }
});
