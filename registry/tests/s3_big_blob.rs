//! A blob larger than 5 GiB on S3 (versitygw): more than a single
//! CopyObject may move, so the commit to its digest's key must go by
//! UploadPartCopy, and its upload spans hundreds of equal parts. Pushed as
//! one streamed PATCH and pulled back, both hashed on the fly: nothing here
//! holds the blob in memory.

mod common;

use std::io::Read;

use common::s3::S3Server;
use common::*;
use sha2::{Digest as _, Sha256};

/// 5 GiB + 3 MiB + 5 bytes of a repeated random block, hashed as it is read.
struct Source {
    block: Vec<u8>,
    left: u64,
    pos: usize,
    hash: std::sync::Arc<std::sync::Mutex<Sha256>>,
}

const SIZE: u64 = (5 << 30) + (3 << 20) + 5;

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = buf.len().min(self.block.len() - self.pos).min(self.left as usize);
        buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.hash.lock().unwrap().update(&buf[..n]);
        self.pos = (self.pos + n) % self.block.len();
        self.left -= n as u64;
        Ok(n)
    }
}

#[test]
fn a_blob_over_5_gib_is_pushed_and_pulled_on_s3() {
    let s3 = S3Server::start("big");
    let reg = RegistryProcess::start(Kind::Wharf, &s3.registry_config("big", "/", "", "big-secret"));
    let client = reqwest::blocking::Client::builder().no_proxy().timeout(None).build().unwrap();
    wharf_registry::install_crypto_provider();
    let hash = std::sync::Arc::new(std::sync::Mutex::new(Sha256::new()));
    // An odd block size, so part boundaries never line up with it.
    let block = Rng::new(55).bytes((1 << 20) + 7);
    let source = Source { block, left: SIZE, pos: 0, hash: hash.clone() };

    let resp = client.post(reg.url("/v2/big/blobs/uploads/")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let next = header(&resp, "location");
    let resp = client
        .patch(reg.url(&next[next.find("/v2/").unwrap()..]))
        .header("content-type", "application/octet-stream")
        .body(reqwest::blocking::Body::sized(source, SIZE))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202, "{:?}", resp.text());
    assert_eq!(header(&resp, "range"), format!("0-{}", SIZE - 1));
    let next = header(&resp, "location");
    let digest = format!("sha256:{}", hex::encode(hash.lock().unwrap().clone().finalize()));
    let sep = if next.contains('?') { '&' } else { '?' };
    let put = format!("{}{sep}digest={digest}", &next[next.find("/v2/").unwrap()..]);
    let resp = client.put(reg.url(&put)).send().unwrap();
    assert_eq!(resp.status().as_u16(), 201, "{:?}", resp.text());

    let head = client.head(reg.url(&format!("/v2/big/blobs/{digest}"))).send().unwrap();
    assert_eq!(header(&head, "content-length"), SIZE.to_string());
    let mut resp = client.get(reg.url(&format!("/v2/big/blobs/{digest}"))).send().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (mut pulled, mut got) = (Sha256::new(), 0u64);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = resp.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        pulled.update(&buf[..n]);
        got += n as u64;
    }
    assert_eq!(got, SIZE);
    assert_eq!(format!("sha256:{}", hex::encode(pulled.finalize())), digest);
    // The move was server-side, in parts: the log says nothing failed, and
    // no upload session or part is left in the bucket.
    let uploads = s3.bucket_dir("big").join("docker/registry/v2/repositories/big/_uploads");
    let left: Vec<_> = std::fs::read_dir(&uploads).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
