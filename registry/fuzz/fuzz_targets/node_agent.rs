//! The operator's node agent: the plan it reads from the operator's
//! ConfigMap (checked before anything is written on a node) and its edits of
//! the node's hosts file, which holds whatever the node's administrator wrote.
//!
//! The agent's plan checks and file edits are compiled here directly: the
//! operator crate would bring kube and k8s-openapi into the sanitizer build,
//! minutes of compile for code this target never calls.
//!
//! Input: the plan as one line of JSON, then the hosts file.
#![no_main]
#![allow(dead_code)]

// At the crate root, as siblings, the way they sit in the operator's
// `node_agent` module (they name each other through `super::`).
#[path = "../../../operator/src/node_agent/certs.rs"]
mod certs;
#[path = "../../../operator/src/node_agent/files.rs"]
mod files;
#[path = "../../../operator/src/node_agent/hosts_file.rs"]
mod hosts_file;

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let (plan, text) = s.split_once('\n').unwrap_or((s, ""));
    let Ok(plan) = serde_json::from_str::<files::NodePlan>(plan) else { return };
    let f = files::files(&plan, Path::new("/etc/containerd/certs.d"));
    assert_eq!(f.lines.len() + f.hosts.len() + f.rejected.len(), plan.entries.len() + plan.hosts.len());
    for h in &f.hosts {
        // The host names a directory under the certs dir: one plain component.
        assert!(!h.host.is_empty() && !h.host.contains('/') && h.host != "." && h.host != "..", "{h:?}");
        assert!(certs::is_ours(&h.toml), "{h:?}");
        // One line of marker, nothing injected into the TOML through the URL.
        assert!(!h.toml.lines().skip(2).any(|l| l.starts_with('#')), "{h:?}");
    }
    for l in &f.lines {
        assert!(!l.host.contains(char::is_whitespace) && !l.host.contains('#'), "{l:?}");
    }
    // Writing the plan twice is writing it once; removing it gives back the
    // administrator's lines untouched.
    let added = hosts_file::with_lines(text, &f.lines);
    assert_eq!(hosts_file::with_lines(&added, &f.lines), added);
    let removed = hosts_file::without_ours(&added);
    let others = hosts_file::without_ours(text);
    assert!(removed == others || removed == format!("{others}\n"), "{text:?} -> {added:?} -> {removed:?}");
});
