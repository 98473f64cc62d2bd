//! Repository names, tags and references as they arrive in URLs, and the
//! `/v2/...` path router that splits a request path into them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_registry::api::endpoint::{self, Endpoint};
use wharf_registry::registry::reference::{Reference, RepoName, Tag};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    // What parses prints back to itself, and parses again to the same value.
    if let Ok(n) = RepoName::parse(s) {
        assert_eq!(n.as_str(), s);
        assert!(!n.as_str().contains(".."), "a name with `..` would escape its storage directory: {s:?}");
        assert!(!n.as_str().starts_with('/') && !n.as_str().contains("//"));
    }
    if let Ok(t) = Tag::parse(s) {
        assert_eq!(t.as_str(), s);
        assert!(!t.as_str().contains('/'));
    }
    if let Ok(r) = Reference::parse(s) {
        assert_eq!(r.to_string(), s);
    }
    if let Ok(ep) = endpoint::parse(s) {
        // Every name the router hands on is a valid repository name.
        if let Some(name) = ep.repository() {
            assert_eq!(RepoName::parse(name.as_str()).ok().as_ref(), Some(name));
        }
        if let Endpoint::Upload(_, id) = &ep {
            let _ = id.len();
        }
        let _ = ep.kind();
    }
});
