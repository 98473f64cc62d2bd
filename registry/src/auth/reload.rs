//! Files that are re-read when they change: htpasswd and access rules
//! mounted from Kubernetes Secrets and ConfigMaps, which the kubelet
//! replaces by swapping a symlink. Each use checks the file's identity
//! (inode, size, mtime), a single `stat`, so an update takes effect on the
//! next request without a restart.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

type Parser<T> = dyn Fn(&str) -> Result<T, String> + Send + Sync;

#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

pub struct ReloadingFile<T> {
    path: PathBuf,
    parse: Box<Parser<T>>,
    current: Mutex<(Option<Stamp>, Arc<T>)>,
}

impl<T: Send + Sync + 'static> ReloadingFile<T> {
    /// Loads the file now; an unreadable or invalid file is an error at start-up.
    pub fn open(
        path: impl Into<PathBuf>,
        parse: impl Fn(&str) -> Result<T, String> + Send + Sync + 'static,
    ) -> Result<Self, String> {
        let path = path.into();
        let (stamp, text) = read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let value = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(ReloadingFile { path, parse: Box::new(parse), current: Mutex::new((Some(stamp), Arc::new(value))) })
    }

    /// The current contents, re-read if the file changed. A file that became
    /// unreadable or invalid keeps the last good contents (and is logged).
    pub fn get(&self) -> Arc<T> {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::fs::metadata(&self.path).ok().map(|m| stamp(&m));
        if now.is_some() && now != cur.0 {
            match read(&self.path).map_err(|e| e.to_string()).and_then(|(s, text)| (self.parse)(&text).map(|v| (s, v)))
            {
                Ok((s, v)) => {
                    tracing::info!(path = %self.path.display(), "reloaded");
                    *cur = (Some(s), Arc::new(v));
                }
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "reload failed; keeping the previous contents");
                    cur.0 = now;
                }
            }
        }
        cur.1.clone()
    }
}

fn stamp(m: &std::fs::Metadata) -> Stamp {
    Stamp { ino: m.ino(), size: m.size(), mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128 }
}

fn read(path: &std::path::Path) -> std::io::Result<(Stamp, String)> {
    let m = std::fs::metadata(path)?;
    Ok((stamp(&m), std::fs::read_to_string(path)?))
}
