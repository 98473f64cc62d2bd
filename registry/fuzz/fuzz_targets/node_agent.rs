//! The operator's node agent: its `--owner`, `--host-entry`, `--registry` and
//! `--mirror` arguments, and its edits of the node's hosts file (which holds
//! whatever the node's administrator wrote).
//!
//! The module's source is compiled here directly: the operator crate would
//! bring kube and k8s-openapi into the sanitizer build, minutes of compile
//! for code this target never calls.
//!
//! Input: lines; the first is an owner, the second a host entry, the third a
//! route, the rest a hosts file.
#![no_main]
#![allow(dead_code)]

#[path = "../../../operator/src/node_agent/mod.rs"]
mod node_agent;

use libfuzzer_sys::fuzz_target;
use node_agent::{certs, hosts_file, parse_host_entry, parse_owner, parse_route};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let mut lines = s.splitn(4, '\n');
    let (owner, entry, route, text) = (
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
    );
    let route = parse_route(route).ok();
    if let Some(r) = &route {
        // The host names a directory under the certs dir: one plain component.
        assert!(!r.host.is_empty() && !r.host.contains('/') && r.host != "." && r.host != "..", "{r:?}");
    }
    let entry = parse_host_entry(entry).ok();
    if let Some(e) = &entry {
        assert!(!e.host.contains(char::is_whitespace) && !e.host.contains('#'), "{e:?}");
    }
    let Ok(owner) = parse_owner(owner) else { return };
    // Adding this owner's lines, then removing them, gives back the other
    // owners' lines untouched; adding twice is adding once.
    let entries: Vec<_> = entry.into_iter().collect();
    let added = hosts_file::with_entries(text, &owner, &entries);
    assert_eq!(hosts_file::with_entries(&added, &owner, &entries), added);
    let removed = hosts_file::without_owner(&added, &owner);
    let others = hosts_file::without_owner(text, &owner);
    assert!(removed == others || removed == format!("{others}\n"), "{text:?} -> {added:?} -> {removed:?}");
    if let Some(r) = &route {
        let toml = certs::hosts_toml(&owner, r, false, true, None);
        assert!(certs::owned_by(&toml, &owner));
    }
});
