//! The node's hosts file: lines the agent adds, each ending in a marker
//! comment, so it only ever removes lines it wrote.
//!
//! The file is a bind-mounted hostPath: it is edited in place (write from the
//! start, then cut to length) under an exclusive `flock`, never replaced by a
//! rename, which would leave the mount pointing at the old inode.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::files::{MARKER, Owner};

/// One line the agent wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Address.
    pub ip: std::net::IpAddr,
    /// Fully qualified host name.
    pub host: String,
    /// The resource it serves.
    pub owner: Owner,
}

fn is_ours(line: &str) -> bool {
    line.split_once('#').is_some_and(|(_, comment)| {
        let c = comment.trim();
        c == MARKER || c.strip_prefix(MARKER).is_some_and(|rest| rest.starts_with(' '))
    })
}

/// `text` without the lines the agent wrote.
pub fn without_ours(text: &str) -> String {
    text.split_inclusive('\n').filter(|l| !is_ours(l)).collect()
}

/// `text` with the agent's lines replaced by `lines` (appended at the end).
pub fn with_lines(text: &str, lines: &[Line]) -> String {
    let mut out = without_ours(text);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for l in lines {
        out.push_str(&format!("{}\t{}\t# {}\n", l.ip, l.host, l.owner.marker_comment()));
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

    fn line(ip: &str, host: &str, owner: &str) -> Line {
        Line { ip: ip.parse().expect("ip"), host: host.into(), owner: super::super::parse_owner(owner).expect("owner") }
    }

    const BASE: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n10.0.0.5 node-1 # admin note\n";

    #[test]
    fn adds_marked_lines_and_replaces_its_own() {
        let once = with_lines(BASE, &[line("198.19.0.12", "reg.team-a.svc.cluster.local", "team-a/reg")]);
        assert_eq!(once, format!("{BASE}198.19.0.12\treg.team-a.svc.cluster.local\t# wharf-node-access team-a/reg\n"));
        assert_eq!(with_lines(&once, &[line("198.19.0.12", "reg.team-a.svc.cluster.local", "team-a/reg")]), once);
        let moved = with_lines(
            &once,
            &[
                line("198.19.0.99", "reg.team-a.svc.cluster.local", "team-a/reg"),
                line("198.19.0.13", "hub.team-b.svc.cluster.local", "team-b/hub"),
            ],
        );
        assert!(moved.contains("198.19.0.99") && !moved.contains("198.19.0.12"), "{moved}");
        assert_eq!(without_ours(&moved), BASE);
    }

    #[test]
    fn lines_that_only_look_alike_are_kept() {
        let text = format!("{BASE}1.2.3.4 x # wharf-node-accessory\n5.6.7.8 y # see wharf-node-access docs\n");
        assert_eq!(without_ours(&text), text);
    }

    #[test]
    fn missing_final_newline_is_kept_apart() {
        let text = with_lines("127.0.0.1 localhost", &[line("fd00::1", "r.ns.svc.cluster.local", "ns/r")]);
        assert_eq!(text, "127.0.0.1 localhost\nfd00::1\tr.ns.svc.cluster.local\t# wharf-node-access ns/r\n");
    }

    #[test]
    fn edits_in_place_keeping_the_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = super::super::tests::TempDir::new("hosts-inode");
        let path = dir.path().join("hosts");
        std::fs::write(&path, BASE).expect("write");
        let inode = std::fs::metadata(&path).expect("meta").ino();
        let lines = [line("10.0.0.1", "r.ns.svc.cluster.local", "ns/r")];
        assert!(edit(&path, |t| with_lines(t, &lines)).expect("edit"));
        assert!(!edit(&path, |t| with_lines(t, &lines)).expect("edit again"), "unchanged content is not rewritten");
        assert_eq!(std::fs::metadata(&path).expect("meta").ino(), inode);
        assert!(edit(&path, without_ours).expect("undo"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), BASE);
    }
}
