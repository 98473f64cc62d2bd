//! The node's hosts file: lines the agent adds, each ending in the owner's
//! marker comment, so it only ever removes its own.
//!
//! The file is a bind-mounted hostPath: it is edited in place (write from the
//! start, then cut to length) under an exclusive `flock`, never replaced by a
//! rename, which would leave the mount pointing at the old inode.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::{HostEntry, Owner};

/// `text` without the lines that carry `owner`'s marker.
pub fn without_owner(text: &str, owner: &Owner) -> String {
    let marker = owner.marker_comment();
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let is_ours = line.split_once('#').is_some_and(|(_, comment)| comment.trim() == marker);
        if !is_ours {
            out.push_str(line);
        }
    }
    out
}

/// `text` with `owner`'s lines replaced by `entries` (appended at the end).
pub fn with_entries(text: &str, owner: &Owner, entries: &[HostEntry]) -> String {
    let mut out = without_owner(text, owner);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for e in entries {
        out.push_str(&format!("{}\t{}\t# {}\n", e.ip, e.host, owner.marker_comment()));
    }
    out
}

/// Rewrites the file at `path` with `edit` under an exclusive lock. Returns
/// whether the content changed; an unchanged file is not written.
pub fn edit(path: &Path, edit: impl FnOnce(&str) -> String) -> std::io::Result<bool> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    file.lock()?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let next = edit(&text);
    if next == text {
        return Ok(false);
    }
    // Overwrite from the start, then cut: a reader never sees an empty file.
    file.seek(SeekFrom::Start(0))?;
    file.write_all(next.as_bytes())?;
    file.set_len(next.len() as u64)?;
    file.sync_all()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(s: &str) -> Owner {
        super::super::parse_owner(s).expect("owner")
    }

    fn entry(ip: &str, host: &str) -> HostEntry {
        super::super::parse_host_entry(&format!("{ip}={host}")).expect("entry")
    }

    const BASE: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n10.0.0.5 node-1 # admin note\n";

    #[test]
    fn adds_marked_lines_and_replaces_its_own() {
        let a = owner("team-a/reg");
        let once = with_entries(BASE, &a, &[entry("10.96.0.12", "reg.team-a.svc.cluster.local")]);
        assert_eq!(once, format!("{BASE}10.96.0.12\treg.team-a.svc.cluster.local\t# wharf-node-access team-a/reg\n"));
        let again = with_entries(&once, &a, &[entry("10.96.0.12", "reg.team-a.svc.cluster.local")]);
        assert_eq!(again, once, "idempotent");
        let moved = with_entries(&once, &a, &[entry("10.96.0.99", "reg.team-a.svc.cluster.local")]);
        assert!(moved.contains("10.96.0.99") && !moved.contains("10.96.0.12"), "{moved}");
        assert_eq!(without_owner(&moved, &a), BASE);
    }

    #[test]
    fn two_owners_coexist_and_markers_match_exactly() {
        let a = owner("team-a/reg");
        let b = owner("team-a/reg2");
        let text = with_entries(BASE, &a, &[entry("10.96.0.12", "reg.team-a.svc.cluster.local")]);
        let text = with_entries(&text, &b, &[entry("10.96.0.13", "reg2.team-a.svc.cluster.local")]);
        let only_b = without_owner(&text, &a);
        assert!(only_b.contains("reg2.team-a") && !only_b.contains("10.96.0.12"), "{only_b}");
        assert_eq!(without_owner(&only_b, &b), BASE);
    }

    #[test]
    fn missing_final_newline_is_kept_apart() {
        let a = owner("ns/r");
        let text = with_entries("127.0.0.1 localhost", &a, &[entry("fd00::1", "r.ns.svc.cluster.local")]);
        assert_eq!(text, "127.0.0.1 localhost\nfd00::1\tr.ns.svc.cluster.local\t# wharf-node-access ns/r\n");
    }

    #[test]
    fn edits_in_place_keeping_the_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = super::super::tests::TempDir::new("hosts-inode");
        let path = dir.path().join("hosts");
        std::fs::write(&path, BASE).expect("write");
        let inode = std::fs::metadata(&path).expect("meta").ino();
        let a = owner("ns/r");
        let e = [entry("10.0.0.1", "r.ns.svc.cluster.local")];
        assert!(edit(&path, |t| with_entries(t, &a, &e)).expect("edit"));
        assert!(!edit(&path, |t| with_entries(t, &a, &e)).expect("edit again"), "unchanged content is not rewritten");
        assert_eq!(std::fs::metadata(&path).expect("meta").ino(), inode);
        assert!(edit(&path, |t| without_owner(t, &a)).expect("undo"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), BASE);
    }
}
