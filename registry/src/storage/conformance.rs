//! One behavioural suite that every [`Backend`] must pass (filesystem now,
//! S3 against MinIO later). Keys are written under `suite/` only.

use bytes::Bytes;
use futures::TryStreamExt;

use super::backend::{Backend, StorageError};

async fn read_all(b: &dyn Backend, key: &str, offset: u64, len: Option<u64>) -> Vec<u8> {
    let stream = b.read(key, offset, len).await.unwrap();
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    chunks.concat()
}

/// Runs every check, panicking with a message naming the one that failed.
pub async fn run(b: &dyn Backend) {
    // put / get / stat
    b.put("suite/a/one", Bytes::from_static(b"hello")).await.unwrap();
    assert_eq!(&b.get("suite/a/one").await.unwrap()[..], b"hello");
    assert_eq!(b.stat("suite/a/one").await.unwrap().size, 5);
    b.put("suite/a/one", Bytes::from_static(b"replaced")).await.unwrap();
    assert_eq!(&b.get("suite/a/one").await.unwrap()[..], b"replaced", "put replaces");

    // missing objects are NotFound, not some other error
    assert!(b.get("suite/missing").await.unwrap_err().is_not_found());
    assert!(b.stat("suite/missing").await.unwrap_err().is_not_found());
    assert!(b.list("suite/missing").await.unwrap_err().is_not_found());
    assert!(b.delete("suite/missing").await.unwrap_err().is_not_found());
    assert!(matches!(b.read("suite/missing", 0, None).await, Err(e) if e.is_not_found()));

    // ranged reads, larger than one chunk
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut w = b.append("suite/big", 0).await.unwrap();
    for part in big.chunks(300_000) {
        w.write(vec![Bytes::copy_from_slice(part)]).await.unwrap();
    }
    assert_eq!(w.close().await.unwrap(), big.len() as u64);
    assert_eq!(read_all(b, "suite/big", 0, None).await, big);
    assert_eq!(read_all(b, "suite/big", 10, Some(20)).await, &big[10..30]);
    assert_eq!(read_all(b, "suite/big", 999_990, Some(100)).await, &big[999_990..]);
    assert!(matches!(b.read("suite/big", 2_000_000, None).await, Err(StorageError::InvalidOffset { .. })));

    // append continues where the object ends, and refuses a wrong offset
    let mut w = b.append("suite/up", 0).await.unwrap();
    w.write(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"c")]).await.unwrap();
    w.close().await.unwrap();
    assert!(b.append("suite/up", 1).await.is_err(), "append at a wrong offset");
    let mut w = b.append("suite/up", 3).await.unwrap();
    w.write(vec![Bytes::from_static(b"def")]).await.unwrap();
    assert_eq!(w.close().await.unwrap(), 6);
    assert_eq!(&b.get("suite/up").await.unwrap()[..], b"abcdef");

    // list returns direct children, sorted
    b.put("suite/a/two", Bytes::from_static(b"2")).await.unwrap();
    b.put("suite/a/sub/three", Bytes::from_static(b"3")).await.unwrap();
    assert_eq!(b.list("suite/a").await.unwrap(), vec!["one", "sub", "two"]);

    // rename is a move: to a new key (parents made as needed), and over an
    // existing one, which it replaces whole (a longer old object leaves no tail)
    b.rename("suite/up", "suite/moved/here").await.unwrap();
    assert!(b.stat("suite/up").await.unwrap_err().is_not_found());
    assert_eq!(&b.get("suite/moved/here").await.unwrap()[..], b"abcdef");
    b.put("suite/moved/there", Bytes::from_static(b"the old, longer destination")).await.unwrap();
    b.rename("suite/moved/here", "suite/moved/there").await.unwrap();
    assert!(b.stat("suite/moved/here").await.unwrap_err().is_not_found());
    assert_eq!(&b.get("suite/moved/there").await.unwrap()[..], b"abcdef", "rename replaces the destination");
    assert_eq!(b.stat("suite/moved/there").await.unwrap().size, 6);

    // delete removes a whole prefix
    b.delete("suite/a").await.unwrap();
    assert!(b.get("suite/a/sub/three").await.unwrap_err().is_not_found());

    // keys that would escape the root are refused
    for bad in ["../x", "suite/../../x", "/etc/passwd"] {
        assert!(matches!(b.get(bad).await, Err(StorageError::InvalidKey { .. })), "{bad}");
    }
    b.delete("suite").await.unwrap();
}
