//! The S3 backend: registry:2's `s3` driver layout in a bucket
//! (`<rootdirectory>/docker/registry/v2/...`), on the `object_store` crate.
//!
//! Objects written in parts are S3 multipart uploads whose id lives in the
//! upload session's state, so every replica can add the next part. A
//! finished upload moves to its digest's key by CopyObject, or, above
//! `multipartcopythresholdsize` (a single CopyObject stops at 5 GiB), by
//! UploadPartCopy in `multipartcopychunksize` ranges.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::{
    Attribute, Attributes, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMultipartOptions,
    PutOptions, PutPayload, RetryConfig,
};
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};

use super::backend::{Backend, ByteStream, Meta, PartRule, Result, StorageError, check_key};
use crate::config;

/// S3 allows this many parts in one multipart upload.
const MAX_PARTS: u64 = 10_000;

pub struct S3 {
    store: Arc<AmazonS3>,
    bucket: String,
    endpoint: String,
    /// `<rootdirectory>/` without a leading slash, or empty.
    prefix: String,
    part_size: u64,
    copy_chunk: u64,
    copy_concurrency: usize,
    copy_threshold: u64,
    storage_class: Option<String>,
    /// Sends the presigned UploadPartCopy requests object_store has no call for.
    http: reqwest::Client,
}

impl std::fmt::Debug for S3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3").field("bucket", &self.bucket).field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// Where the bucket is served: `regionendpoint` (a bare host gets the
/// scheme `secure` asks for), or AWS's endpoint for the region.
fn endpoint(c: &config::S3) -> Option<String> {
    let e = c.regionendpoint.as_deref().map(str::trim).filter(|e| !e.is_empty())?;
    if e.contains("://") {
        Some(e.trim_end_matches('/').to_string())
    } else {
        let scheme = if c.secure == Some(false) { "http" } else { "https" };
        Some(format!("{scheme}://{}", e.trim_end_matches('/')))
    }
}

impl S3 {
    /// Builds the client. Nothing is contacted yet: an unreachable store
    /// makes the registry unready (`check`), not unable to start.
    pub fn new(c: &config::S3) -> Result<S3, String> {
        let bucket = c.bucket.clone().unwrap_or_default();
        let region = c.region.clone().unwrap_or_default();
        // The standard AWS chain (environment, web identity for IRSA,
        // instance metadata) applies when the config names no keys.
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&bucket).with_region(&region);
        if let (Some(k), Some(s)) = (&c.accesskey, &c.secretkey) {
            b = b.with_access_key_id(k).with_secret_access_key(s);
            if let Some(t) = &c.sessiontoken {
                b = b.with_token(t);
            }
        }
        let endpoint = endpoint(c);
        if let Some(e) = &endpoint {
            b = b.with_endpoint(e);
        }
        // registry:2 addresses the bucket by host name unless told otherwise.
        b = b.with_virtual_hosted_style_request(!c.forcepathstyle.unwrap_or(false));
        let mut options = ClientOptions::new()
            .with_allow_http(endpoint.as_deref().is_some_and(|e| e.starts_with("http://")))
            .with_allow_invalid_certificates(c.skipverify.unwrap_or(false))
            .with_connect_timeout(Duration::from_secs(5))
            // Blob reads stream for as long as the client keeps up; a stalled
            // store is caught between reads instead.
            .with_timeout_disabled()
            .with_read_timeout(Duration::from_secs(60));
        if let Some(ua) = &c.useragent {
            let ua =
                HeaderValue::from_str(ua).map_err(|_| "storage.s3.useragent: not a valid header value".to_string())?;
            options = options.with_user_agent(ua);
        }
        // Over TLS the payload's integrity is TLS's: signing it would hash
        // every part a second time (the digest already hashes it once).
        let tls = endpoint.as_deref().is_none_or(|e| e.starts_with("https://"));
        b = b.with_unsigned_payload(tls);
        b = b.with_client_options(options).with_retry(RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(20),
            ..RetryConfig::default()
        });
        if c.encrypt == Some(true) {
            b = match &c.keyid {
                Some(k) => b.with_sse_kms_encryption(k),
                None => b.with_config(
                    "aws_server_side_encryption".parse().map_err(|e| format!("storage.s3.encrypt: {e}"))?,
                    "AES256",
                ),
            };
        }
        crate::install_crypto_provider();
        let store = b.build().map_err(|e| format!("storage.s3: {e}"))?;
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(c.skipverify.unwrap_or(false))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("storage.s3: building the HTTP client: {e}"))?;
        let root = c.rootdirectory.as_deref().unwrap_or("").trim_matches('/');
        let storage_class = c.storageclass.clone().filter(|s| !s.eq_ignore_ascii_case("NONE") && s != "STANDARD");
        Ok(S3 {
            store: Arc::new(store),
            endpoint: endpoint.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com")),
            bucket,
            prefix: if root.is_empty() { String::new() } else { format!("{root}/") },
            part_size: c.chunk_size(),
            copy_chunk: c.copy_chunk_size(),
            copy_concurrency: c.copy_concurrency(),
            copy_threshold: c.copy_threshold(),
            storage_class,
            http,
        })
    }

    fn path(&self, key: &str) -> Result<ObjectPath> {
        check_key(key)?;
        ObjectPath::parse(format!("{}{key}", self.prefix))
            .map_err(|_| StorageError::InvalidKey { key: key.to_string() })
    }

    fn attributes(&self) -> Attributes {
        let mut a = Attributes::new();
        if let Some(class) = &self.storage_class {
            a.insert(Attribute::StorageClass, class.clone().into());
        }
        a
    }

    /// Every object below `key/`, all pages.
    async fn objects_under(&self, key: &str) -> Result<Vec<ObjectPath>> {
        let dir = self.path(key)?;
        self.store.list(Some(&dir)).map_ok(|m| m.location).try_collect().await.map_err(|e| err("list", key, e))
    }

    /// Moves a large object with UploadPartCopy, `copy_chunk` bytes a part.
    async fn copy_in_parts(&self, from: &str, to: &str, size: u64) -> Result<()> {
        let (src, dst) = (self.path(from)?, self.path(to)?);
        // Equal parts but the last, and never more than S3's part limit.
        let mib = 1 << 20;
        let chunk = self.copy_chunk.max(size.div_ceil(MAX_PARTS).div_ceil(mib) * mib);
        let opts = PutMultipartOptions { attributes: self.attributes(), ..Default::default() };
        let id = self.store.create_multipart_opts(&dst, opts).await.map_err(|e| err("copy", to, e))?;
        let source = format!("/{}/{}", self.bucket, src.as_ref());
        let ranges: Vec<(usize, u64, u64)> =
            (0..size.div_ceil(chunk)).map(|i| (i as usize, i * chunk, ((i + 1) * chunk).min(size) - 1)).collect();
        let parts = futures::stream::iter(ranges)
            .map(|(i, first, last)| self.copy_part(&dst, &id, i, &source, first, last))
            .buffered(self.copy_concurrency)
            .try_collect::<Vec<PartId>>()
            .await;
        let finished = match parts {
            Ok(parts) => {
                self.store.complete_multipart(&dst, &id, parts).await.map(drop).map_err(|e| err("copy", to, e))
            }
            Err(e) => Err(e),
        };
        if finished.is_err() {
            let _ = self.store.abort_multipart(&dst, &id).await;
        }
        finished
    }

    async fn copy_part(
        &self,
        dst: &ObjectPath,
        id: &str,
        index: usize,
        source: &str,
        first: u64,
        last: u64,
    ) -> Result<PartId> {
        let key = dst.as_ref();
        let fail = |message: String| StorageError::Unavailable(format!("copy part {} of {key}: {message}", index + 1));
        let header = |v: String| HeaderValue::from_str(&v).map_err(|e| fail(e.to_string()));
        let copy_source = header(source.to_string())?;
        let copy_range = header(format!("bytes={first}-{last}"))?;
        let opts = SignedUrlOptions::default()
            .with_query([("partNumber", (index + 1).to_string()), ("uploadId", id.to_string())])
            .with_signed_header(HeaderName::from_static("x-amz-copy-source"), copy_source.clone())
            .with_signed_header(HeaderName::from_static("x-amz-copy-source-range"), copy_range.clone());
        let url = self
            .store
            .signed_url_opts(Method::PUT, dst, Duration::from_secs(3600), &opts)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let response = self
            .http
            .put(url)
            .header("x-amz-copy-source", copy_source)
            .header("x-amz-copy-source-range", copy_range)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| fail(e.to_string()))?;
        if !status.is_success() {
            return Err(fail(format!("{status}: {}", body.chars().take(300).collect::<String>())));
        }
        // <CopyPartResult><ETag>"..."</ETag>...
        let etag = body
            .split_once("<ETag>")
            .and_then(|(_, rest)| rest.split_once("</ETag>"))
            // Servers escape the quotes either way (`&quot;`, `&#34;`).
            .map(|(tag, _)| tag.replace("&quot;", "\"").replace("&#34;", "\""))
            .ok_or_else(|| fail("the answer has no ETag".into()))?;
        Ok(PartId { content_id: etag })
    }
}

/// Maps object_store's errors: a missing object is `NotFound`; anything
/// else means the store failed us, and the request may work later.
fn err(op: &'static str, key: &str, e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { .. } => StorageError::NotFound { key: key.to_string() },
        e => StorageError::Unavailable(format!("{op} {key}: {}", describe(&e))),
    }
}

/// The error and its causes on one line (object_store nests them deeply).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text
}

#[async_trait]
impl Backend for S3 {
    fn name(&self) -> &'static str {
        "s3"
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        let path = self.path(key)?;
        let got = self.store.get(&path).await.map_err(|e| err("get", key, e))?;
        got.bytes().await.map_err(|e| err("get", key, e))
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let path = self.path(key)?;
        let opts = PutOptions { attributes: self.attributes(), ..Default::default() };
        self.store.put_opts(&path, PutPayload::from(data), opts).await.map(drop).map_err(|e| err("put", key, e))
    }

    async fn stat(&self, key: &str) -> Result<Meta> {
        let path = self.path(key)?;
        let m = self.store.head(&path).await.map_err(|e| err("stat", key, e))?;
        Ok(Meta { size: m.size, modified: Some(m.last_modified.into()) })
    }

    async fn read(&self, key: &str, offset: u64, len: Option<u64>) -> Result<ByteStream> {
        let path = self.path(key)?;
        let range = if offset == 0 && len.is_none() {
            None
        } else {
            let size = self.stat(key).await?.size;
            if offset > size {
                return Err(StorageError::InvalidOffset { key: key.to_string(), offset, size });
            }
            let end = len.map_or(size, |l| (offset + l).min(size));
            if end == offset {
                return Ok(futures::stream::empty().boxed());
            }
            Some(GetRange::Bounded(offset..end))
        };
        let got = self
            .store
            .get_opts(&path, GetOptions { range, ..Default::default() })
            .await
            .map_err(|e| err("read", key, e))?;
        Ok(got.into_stream().map_err(|e| io::Error::other(describe(&e))).boxed())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let dir = self.path(prefix)?;
        let listing = self.store.list_with_delimiter(Some(&dir)).await.map_err(|e| err("list", prefix, e))?;
        let mut names: Vec<String> = listing
            .common_prefixes
            .iter()
            .chain(listing.objects.iter().map(|o| &o.location))
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        if names.is_empty() {
            return Err(StorageError::NotFound { key: prefix.to_string() });
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        let mut doomed = self.objects_under(key).await?;
        match self.store.head(&path).await {
            Ok(_) => doomed.push(path),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(err("delete", key, e)),
        }
        if doomed.is_empty() {
            return Err(StorageError::NotFound { key: key.to_string() });
        }
        let doomed = futures::stream::iter(doomed.into_iter().map(Ok)).boxed();
        self.store.delete_stream(doomed).try_collect::<Vec<_>>().await.map(drop).map_err(|e| err("delete", key, e))
    }

    /// S3's bulk delete (up to 1,000 keys a request), without `delete`'s
    /// listing and HEAD: these are exact keys.
    async fn delete_objects(&self, keys: &[String]) -> Result<()> {
        let paths = keys.iter().map(|k| self.path(k)).collect::<Result<Vec<_>>>()?;
        let first = keys.first().map(String::as_str).unwrap_or_default();
        let mut done = self.store.delete_stream(futures::stream::iter(paths.into_iter().map(Ok)).boxed());
        while let Some(r) = done.next().await {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(err("delete", first, e)),
            }
        }
        Ok(())
    }

    async fn commit(&self, from: &str, to: &str) -> Result<()> {
        let size = self.stat(from).await?.size;
        if size <= self.copy_threshold {
            let (src, dst) = (self.path(from)?, self.path(to)?);
            self.store.copy(&src, &dst).await.map_err(|e| err("copy", to, e))?;
        } else {
            self.copy_in_parts(from, to, size).await?;
        }
        self.delete(from).await
    }

    fn part_rule(&self) -> PartRule {
        PartRule::Fixed(self.part_size)
    }

    async fn parts_start(&self, key: &str) -> Result<String> {
        let path = self.path(key)?;
        let opts = PutMultipartOptions { attributes: self.attributes(), ..Default::default() };
        self.store.create_multipart_opts(&path, opts).await.map_err(|e| err("create upload", key, e))
    }

    async fn put_part(&self, key: &str, upload: &str, index: usize, _offset: u64, data: Vec<Bytes>) -> Result<String> {
        if index as u64 >= MAX_PARTS {
            return Err(StorageError::Other {
                op: "write",
                key: key.to_string(),
                message: format!(
                    "S3 allows {MAX_PARTS} parts of storage.s3.chunksize ({} bytes): the blob is larger than that",
                    self.part_size
                ),
            });
        }
        let path = self.path(key)?;
        let upload = upload.to_string();
        let part = self
            .store
            .put_part(&path, &upload, index, PutPayload::from_iter(data))
            .await
            .map_err(|e| err("write", key, e))?;
        Ok(part.content_id)
    }

    async fn parts_finish(&self, key: &str, upload: &str, tags: Vec<String>) -> Result<()> {
        let path = self.path(key)?;
        let upload = upload.to_string();
        if tags.is_empty() {
            // S3 completes no upload without parts: an empty object is a put.
            let _ = self.store.abort_multipart(&path, &upload).await;
            return self.put(key, Bytes::new()).await;
        }
        let parts = tags.into_iter().map(|content_id| PartId { content_id }).collect();
        self.store.complete_multipart(&path, &upload, parts).await.map(drop).map_err(|e| err("finish upload", key, e))
    }

    async fn parts_abort(&self, key: &str, upload: &str) -> Result<()> {
        let path = self.path(key)?;
        match self.store.abort_multipart(&path, &upload.to_string()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(err("abort upload", key, e)),
        }
    }

    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<Option<String>> {
        let path = self.path(key)?;
        let url = self.store.signed_url(Method::GET, &path, ttl).await.map_err(|e| err("presign", key, e))?;
        Ok(Some(url.to_string()))
    }

    async fn check(&self) -> Result<()> {
        let root = ObjectPath::parse(self.prefix.trim_end_matches('/')).unwrap_or_default();
        let root = if self.prefix.is_empty() { None } else { Some(&root) };
        let where_ = format!("bucket {} at {}", self.bucket, self.endpoint);
        match self.store.list_with_delimiter(root).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => {
                Err(StorageError::Unavailable(format!("{where_}: the bucket does not exist (NoSuchBucket)")))
            }
            Err(e @ (object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. })) => {
                Err(StorageError::Unavailable(format!("{where_}: the credentials are refused: {}", describe(&e))))
            }
            // Some servers answer a listing of a missing bucket with a bare
            // 404 that object_store does not read as NotFound.
            Err(e) if describe(&e).contains("NoSuchBucket") || describe(&e).contains("404 Not Found") => {
                Err(StorageError::Unavailable(format!("{where_}: the bucket does not exist (NoSuchBucket)")))
            }
            Err(e) => Err(StorageError::Unavailable(format!("{where_}: {}", describe(&e)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::conformance;

    /// versitygw on a loopback port, killed on drop (scripts/tools.sh installs it).
    struct Versity(std::process::Child, tempfile::TempDir, u16);

    impl Drop for Versity {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn versitygw() -> Versity {
        let home = std::env::var("WHARF_CACHE")
            .unwrap_or_else(|_| format!("{}/.cache/wharf", std::env::var("HOME").unwrap_or_default()));
        let bin = std::path::Path::new(&home).join("bin/versitygw");
        assert!(bin.exists(), "{} is missing: run `bash scripts/tools.sh`", bin.display());
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("suite")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(bin)
            .args(["--access", "k", "--secret", "s", "--port", &format!("127.0.0.1:{port}"), "posix"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "versitygw did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Versity(child, dir, port)
    }

    fn config(port: u16) -> config::S3 {
        config::S3 {
            accesskey: Some("k".into()),
            secretkey: Some("s".into()),
            region: Some("us-east-1".into()),
            regionendpoint: Some(format!("http://127.0.0.1:{port}")),
            forcepathstyle: Some(true),
            bucket: Some("suite".into()),
            rootdirectory: Some("/root/dir".into()),
            // The smallest parts S3 takes, and moves by UploadPartCopy above
            // 5 MiB in 5 MiB ranges: the suite's 15 MiB object takes that path.
            chunksize: Some(5 << 20),
            multipartcopythresholdsize: Some(5 << 20),
            multipartcopychunksize: Some(5 << 20),
            ..Default::default()
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn passes_the_backend_suite_on_a_real_s3_server() {
        crate::install_crypto_provider();
        let server = versitygw();
        let s3 = S3::new(&config(server.2)).unwrap();
        conformance::run(&s3).await;
        // Keys live under the root directory (without its leading slash).
        s3.put("docker/registry/v2/x", Bytes::from_static(b"1")).await.unwrap();
        assert!(server.1.path().join("suite/root/dir/docker/registry/v2/x").is_file());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn listings_see_every_page() {
        crate::install_crypto_provider();
        let server = versitygw();
        let s3 = S3::new(&config(server.2)).unwrap();
        // More than S3's 1,000 keys a page, written straight into the bucket.
        let base = server.1.path().join("suite/root/dir/many");
        for i in 0..1_234 {
            std::fs::create_dir_all(base.join(format!("d{i:04}"))).unwrap();
            std::fs::write(base.join(format!("d{i:04}/x")), b"1").unwrap();
        }
        let names = s3.list("many").await.unwrap();
        assert_eq!(names.len(), 1_234);
        assert_eq!(names.first().map(String::as_str), Some("d0000"));
        s3.delete("many").await.unwrap();
        assert!(s3.list("many").await.unwrap_err().is_not_found());
    }
}
