//! Durability of the filesystem backend: what reaches stable storage before
//! a write counts as done.
//!
//! A commit (an atomic `put`, or the `rename` that publishes an upload under
//! its digest) flushes the file's bytes before the rename and the directory
//! entry after it, and flushes the parent of every directory it created. A
//! power loss then leaves the old object or the whole new one, never a name
//! that points at bytes the disk never got. `kill -9` cannot show a missing
//! flush (the page cache survives it), so the flushes go through [`Syncer`],
//! which tests replace with one that records them.

use std::fs::File;
use std::io;
use std::path::Path;

/// Flushes files and directories. [`Fsync`] is the real one.
pub trait Syncer: Send + Sync + 'static {
    /// Flushes an open file's bytes (and its size) to stable storage.
    fn sync_file(&self, file: &File, path: &Path) -> io::Result<()>;
    /// Flushes a directory's entries to stable storage.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// `fdatasync` for files, `fsync` for directories.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fsync;

impl Syncer for Fsync {
    fn sync_file(&self, file: &File, _path: &Path) -> io::Result<()> {
        file.sync_data()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// Flushes nothing: for scratch state that a power loss may lose.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSync;

impl Syncer for NoSync {
    fn sync_file(&self, _file: &File, _path: &Path) -> io::Result<()> {
        Ok(())
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
}

/// Creates `dir` and any missing ancestors below `root`, flushing the parent
/// of each one created so the new entries survive a power loss.
pub fn create_dirs(sync: &dyn Syncer, root: &Path, dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut cur = dir;
    while !cur.is_dir() && cur != root {
        missing.push(cur);
        match cur.parent() {
            Some(p) => cur = p,
            None => break,
        }
    }
    if !root.is_dir() {
        std::fs::create_dir_all(root)?;
    }
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => {}
            // A concurrent writer created it; flush the parent anyway, as it
            // may not have done so yet.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        if let Some(parent) = d.parent() {
            sync.sync_dir(parent)?;
        }
    }
    Ok(())
}
