//! One behavioural suite that every [`Backend`] must pass: the filesystem,
//! and S3 against a real S3 server (versitygw). Keys are written under
//! `suite/` only.

use bytes::Bytes;
use futures::TryStreamExt;

use super::backend::{Backend, PartRule, StorageError};

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

    // an object written in parts: equal parts but the last, one part
    // rewritten (a retried request), then finished; ranged reads over it
    let part = match b.part_rule() {
        PartRule::Append => 300_000usize,
        PartRule::Fixed(n) => n as usize,
    };
    let big: Vec<u8> = (0..(part * 3 + 12_345) as u32).map(|i| (i % 251) as u8).collect();
    let id = b.parts_start("suite/big").await.unwrap();
    let mut tags = Vec::new();
    for (i, p) in big.chunks(part).enumerate() {
        tags.push(b.put_part("suite/big", &id, i, (i * part) as u64, vec![Bytes::copy_from_slice(p)]).await.unwrap());
    }
    // A retried request writes its parts again from where the session
    // stood: part 1 on, with the bytes split differently.
    for (i, p) in big.chunks(part).enumerate().skip(1) {
        let (x, y) = p.split_at(p.len() / 2);
        let again = vec![Bytes::copy_from_slice(x), Bytes::copy_from_slice(y)];
        tags[i] = b.put_part("suite/big", &id, i, (i * part) as u64, again).await.unwrap();
    }
    b.parts_finish("suite/big", &id, tags).await.unwrap();
    let n = big.len() as u64;
    assert_eq!(b.stat("suite/big").await.unwrap().size, n);
    assert_eq!(read_all(b, "suite/big", 0, None).await, big);
    assert_eq!(read_all(b, "suite/big", 10, Some(20)).await, &big[10..30]);
    assert_eq!(read_all(b, "suite/big", n - 10, Some(100)).await, &big[big.len() - 10..]);
    assert!(matches!(b.read("suite/big", 2 * n, None).await, Err(StorageError::InvalidOffset { .. })));

    // an abandoned object in parts leaves nothing readable
    let id = b.parts_start("suite/dropped").await.unwrap();
    b.put_part("suite/dropped", &id, 0, 0, vec![Bytes::from_static(b"abc")]).await.unwrap();
    b.parts_abort("suite/dropped", &id).await.unwrap();
    assert!(b.get("suite/dropped").await.unwrap_err().is_not_found());

    // a one-part object may be small, and an empty one is an object too
    let id = b.parts_start("suite/small").await.unwrap();
    let t = b
        .put_part("suite/small", &id, 0, 0, vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cdef")])
        .await
        .unwrap();
    b.parts_finish("suite/small", &id, vec![t]).await.unwrap();
    assert_eq!(&b.get("suite/small").await.unwrap()[..], b"abcdef");
    let id = b.parts_start("suite/empty").await.unwrap();
    b.parts_finish("suite/empty", &id, vec![]).await.unwrap();
    assert_eq!(b.stat("suite/empty").await.unwrap().size, 0);

    // list returns direct children, sorted
    b.put("suite/a/two", Bytes::from_static(b"2")).await.unwrap();
    b.put("suite/a/sub/three", Bytes::from_static(b"3")).await.unwrap();
    assert_eq!(b.list("suite/a").await.unwrap(), vec!["one", "sub", "two"]);

    // commit is a move: to a new key, and over an existing one, which it
    // replaces whole (a longer old object leaves no tail)
    b.commit("suite/small", "suite/moved/here").await.unwrap();
    assert!(b.stat("suite/small").await.unwrap_err().is_not_found());
    assert_eq!(&b.get("suite/moved/here").await.unwrap()[..], b"abcdef");
    b.put("suite/moved/there", Bytes::from_static(b"the old, longer destination")).await.unwrap();
    b.commit("suite/moved/here", "suite/moved/there").await.unwrap();
    assert!(b.stat("suite/moved/here").await.unwrap_err().is_not_found());
    assert_eq!(&b.get("suite/moved/there").await.unwrap()[..], b"abcdef", "commit replaces the destination");
    assert_eq!(b.stat("suite/moved/there").await.unwrap().size, 6);
    // a large object moves whole too
    b.commit("suite/big", "suite/moved/big").await.unwrap();
    assert_eq!(read_all(b, "suite/moved/big", 0, None).await, big);

    // a prefix is not an object
    assert!(b.stat("suite/moved").await.unwrap_err().is_not_found());
    b.check().await.unwrap();

    // delete removes a whole prefix
    b.delete("suite/a").await.unwrap();
    assert!(b.get("suite/a/sub/three").await.unwrap_err().is_not_found());

    // delete_objects removes exactly those keys, in one go; keys already
    // gone are no error, and neighbours (and prefixes) are left alone
    let keys: Vec<String> = (0..150).map(|i| format!("suite/q/{i:03}")).collect();
    for k in &keys {
        b.put_scratch(k, Bytes::from_static(b"{}")).await.unwrap();
    }
    b.put("suite/q/sub/kept", Bytes::from_static(b"k")).await.unwrap();
    let mut doomed: Vec<String> = keys[..120].to_vec();
    doomed.push("suite/q/never-written".into());
    b.delete_objects(&doomed).await.unwrap();
    b.delete_objects(&doomed[..10]).await.unwrap();
    b.delete_objects(&[]).await.unwrap();
    let mut left: Vec<String> = keys[120..].iter().map(|k| k["suite/q/".len()..].to_string()).collect();
    left.push("sub".into());
    assert_eq!(b.list("suite/q").await.unwrap(), left, "delete_objects removes exactly its keys");
    assert!(matches!(b.delete_objects(&["../x".to_string()]).await, Err(StorageError::InvalidKey { .. })));

    // keys that would escape the root are refused
    for bad in ["../x", "suite/../../x", "/etc/passwd"] {
        assert!(matches!(b.get(bad).await, Err(StorageError::InvalidKey { .. })), "{bad}");
    }
    b.delete("suite").await.unwrap();
}
