//! The filesystem backend: registry:2's `filesystem` driver layout on a local
//! directory.
//!
//! Small writes go to a temporary file in the same directory and are renamed
//! into place, so readers never see a partial object; commits are flushed to
//! stable storage as [`super::sync`] describes. Reads stream from a
//! blocking thread in large chunks, which keeps blob serving close to the
//! speed of reading the file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::task::spawn_blocking;

use super::backend::{Backend, ByteStream, Meta, PartRule, Result, StorageError, check_key};
use super::sync::{Fsync, NoSync, Syncer, create_dirs};

/// How much one read pulls from disk. Large enough to amortise the thread
/// hop, small enough that many concurrent pulls stay cheap in memory.
const READ_CHUNK: usize = 128 * 1024;
/// Scratch writes up to this size skip the blocking thread (`put_scratch`).
const INLINE_SCRATCH: usize = 16 * 1024;

#[derive(Clone)]
pub struct Filesystem {
    root: PathBuf,
    sync: Arc<dyn Syncer>,
}

impl std::fmt::Debug for Filesystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filesystem").field("root", &self.root).finish_non_exhaustive()
    }
}

impl Filesystem {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Filesystem::with_syncer(root, Arc::new(Fsync))
    }

    /// A backend whose flushes go through `sync` (tests record them).
    pub fn with_syncer(root: impl Into<PathBuf>, sync: Arc<dyn Syncer>) -> Self {
        Filesystem { root: root.into(), sync }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

async fn blocking<T, F>(op: &'static str, key: &str, f: F) -> Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| StorageError::io(op, key, e)),
        Err(join) => Err(StorageError::Other { op, key: key.to_string(), message: join.to_string() }),
    }
}

fn ensure_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) => fs::create_dir_all(parent),
        None => Ok(()),
    }
}

/// Creates `path`'s parent durably and returns it.
fn durable_parent<'p>(sync: &dyn Syncer, root: &Path, path: &'p Path) -> io::Result<&'p Path> {
    let parent = path.parent().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a key has a parent"))?;
    create_dirs(sync, root, parent)?;
    Ok(parent)
}

/// Writes `data` next to `path`, flushes it, renames it over `path` and
/// flushes the directory: durable once this returns.
fn write_atomic(sync: &dyn Syncer, root: &Path, path: &Path, data: &[u8]) -> io::Result<()> {
    let parent = durable_parent(sync, root, path)?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("object"),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        sync.sync_file(&f, &tmp)?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync.sync_dir(parent)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[async_trait]
impl Backend for Filesystem {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    // Small objects (links, manifests) are read inline: on a warm page cache
    // that costs microseconds, less than handing the call to a thread, and it
    // is the hot path of every manifest GET.
    async fn get(&self, key: &str) -> Result<Bytes> {
        let path = self.path(key)?;
        fs::read(path).map(Bytes::from).map_err(|e| StorageError::io("get", key, e))
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let path = self.path(key)?;
        let (sync, root) = (self.sync.clone(), self.root.clone());
        blocking("put", key, move || write_atomic(&*sync, &root, &path, &data)).await
    }

    // Small scratch objects (upload state, queued notification events) are
    // written inline, as small objects are read: unflushed, that is a few
    // syscalls, less than the two context switches of a trip to a blocking
    // thread, and a registry with notifications makes one per request.
    async fn put_scratch(&self, key: &str, data: Bytes) -> Result<()> {
        let path = self.path(key)?;
        if data.len() <= INLINE_SCRATCH {
            return write_atomic(&NoSync, &self.root, &path, &data).map_err(|e| StorageError::io("put", key, e));
        }
        let root = self.root.clone();
        blocking("put", key, move || write_atomic(&NoSync, &root, &path, &data)).await
    }

    async fn stat(&self, key: &str) -> Result<Meta> {
        let path = self.path(key)?;
        let m = fs::metadata(path).map_err(|e| StorageError::io("stat", key, e))?;
        // A directory is a prefix, not an object (as in an object store).
        if m.is_dir() {
            return Err(StorageError::NotFound { key: key.to_string() });
        }
        Ok(Meta { size: m.len(), modified: m.modified().ok() })
    }

    async fn read(&self, key: &str, offset: u64, len: Option<u64>) -> Result<ByteStream> {
        let path = self.path(key)?;
        let k = key.to_string();
        let (file, size) = blocking("open", key, move || {
            let f = File::open(path)?;
            let size = f.metadata()?.len();
            Ok((f, size))
        })
        .await?;
        if offset > size {
            return Err(StorageError::InvalidOffset { key: k, offset, size });
        }
        let remaining = len.map_or(size - offset, |l| l.min(size - offset));
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(1);
        spawn_blocking(move || stream_file(file, offset, remaining, tx));
        Ok(tokio_stream_from(rx))
    }

    async fn list(&self, key: &str) -> Result<Vec<String>> {
        let path = self.path(key)?;
        blocking("list", key, move || {
            let mut names = Vec::new();
            for entry in fs::read_dir(path)? {
                let entry = entry?;
                if let Some(name) = entry.file_name().to_str() {
                    // Temporary files of in-flight atomic writes are not objects.
                    if !name.starts_with('.') {
                        names.push(name.to_string());
                    }
                }
            }
            names.sort();
            Ok(names)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        blocking("delete", key, move || {
            let m = fs::symlink_metadata(&path)?;
            if m.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) }
        })
        .await
    }

    /// One trip to a blocking thread for all of them: a delivered
    /// notification chunk is up to 100 small files.
    async fn delete_objects(&self, keys: &[String]) -> Result<()> {
        let paths = keys.iter().map(|k| self.path(k)).collect::<Result<Vec<_>>>()?;
        let first = keys.first().cloned().unwrap_or_default();
        blocking("delete", &first, move || {
            for path in paths {
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            Ok(())
        })
        .await
    }

    async fn commit(&self, from: &str, to: &str) -> Result<()> {
        let src = self.path(from)?;
        let dst = self.path(to)?;
        let (sync, root) = (self.sync.clone(), self.root.clone());
        // A commit publishes a finished object (an upload under its digest):
        // its bytes are flushed before it gets the new name, and the new
        // name is flushed before this returns.
        blocking("commit", from, move || {
            sync.sync_file(&File::open(&src)?, &src)?;
            let parent = durable_parent(&*sync, &root, &dst)?;
            fs::rename(&src, &dst)?;
            sync.sync_dir(parent)
        })
        .await
    }

    /// Parts are appended in place, so an upload's `data` is one growing
    /// file as in registry:2's filesystem driver.
    fn part_rule(&self) -> PartRule {
        PartRule::Append
    }

    async fn parts_start(&self, key: &str) -> Result<String> {
        let path = self.path(key)?;
        blocking("create", key, move || {
            ensure_parent(&path)?;
            File::create(&path).map(drop)
        })
        .await?;
        Ok(String::new())
    }

    async fn put_part(&self, key: &str, _upload: &str, _index: usize, offset: u64, data: Vec<Bytes>) -> Result<String> {
        let path = self.path(key)?;
        let k = key.to_string();
        blocking("write", key, move || {
            let mut f = OpenOptions::new().write(true).open(&path)?;
            let size = f.metadata()?.len();
            if size < offset {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{k} holds {size} bytes, a part at {offset} would leave a hole"),
                ));
            }
            // Bytes past `offset` are a part that an interrupted request
            // wrote but never recorded: the rewrite replaces them.
            if size > offset {
                f.set_len(offset)?;
            }
            f.seek(SeekFrom::Start(offset))?;
            write_all_vectored(&mut f, &data)
        })
        .await?;
        Ok(String::new())
    }

    async fn parts_finish(&self, key: &str, _upload: &str, _tags: Vec<String>) -> Result<()> {
        // The file already is the object; `commit` flushes it.
        self.stat(key).await.map(drop)
    }

    async fn parts_abort(&self, key: &str, _upload: &str) -> Result<()> {
        match self.delete(key).await {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }

    async fn check(&self) -> Result<()> {
        let root = self.root.clone();
        blocking("check", "", move || fs::read_dir(&root).map(drop)).await
    }
}

fn stream_file(mut file: File, offset: u64, mut remaining: u64, tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>) {
    if offset > 0
        && let Err(e) = file.seek(SeekFrom::Start(offset))
    {
        let _ = tx.blocking_send(Err(e));
        return;
    }
    while remaining > 0 {
        let want = remaining.min(READ_CHUNK as u64) as usize;
        let mut buf = BytesMut::zeroed(want);
        let mut filled = 0;
        while filled < want {
            match file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
        if filled == 0 {
            let _ = tx.blocking_send(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while reading")));
            return;
        }
        buf.truncate(filled);
        remaining -= filled as u64;
        // The receiver is gone when the client disconnected: stop reading.
        if tx.blocking_send(Ok(buf.freeze())).is_err() {
            return;
        }
    }
}

fn tokio_stream_from(rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>) -> ByteStream {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

/// Writes every chunk with as few `writev` calls as the kernel allows.
fn write_all_vectored(file: &mut File, chunks: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = chunks.iter().map(|c| io::IoSlice::new(c)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "storage accepted no bytes")),
            Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::conformance;

    #[tokio::test]
    async fn passes_the_backend_suite() {
        let dir = tempfile::tempdir().unwrap();
        conformance::run(&Filesystem::new(dir.path())).await;
    }
}
