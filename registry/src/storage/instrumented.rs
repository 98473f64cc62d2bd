//! The span every backend call gets, written once around any [`Backend`]:
//! `storage.<op>` at debug level (it costs nothing when off), with the key
//! and the bytes. Each backend still checks its keys itself (`check_key`),
//! since the conformance suite drives backends without this wrapper.

use async_trait::async_trait;
use bytes::Bytes;
use tracing::instrument;

use super::backend::{Backend, ByteStream, Meta, PartRule, Result};

pub struct Instrumented<B: ?Sized>(pub std::sync::Arc<B>);

fn bytes_of(parts: &[Bytes]) -> usize {
    parts.iter().map(Bytes::len).sum()
}

#[async_trait]
impl<B: Backend + ?Sized> Backend for Instrumented<B> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    #[instrument(level = "debug", name = "storage.get", skip_all, fields(key = key, bytes = tracing::field::Empty))]
    async fn get(&self, key: &str) -> Result<Bytes> {
        let data = self.0.get(key).await?;
        tracing::Span::current().record("bytes", data.len());
        Ok(data)
    }

    #[instrument(level = "debug", name = "storage.put", skip_all, fields(key = key, bytes = data.len()))]
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.0.put(key, data).await
    }

    #[instrument(level = "debug", name = "storage.put_scratch", skip_all, fields(key = key, bytes = data.len()))]
    async fn put_scratch(&self, key: &str, data: Bytes) -> Result<()> {
        self.0.put_scratch(key, data).await
    }

    #[instrument(level = "debug", name = "storage.stat", skip_all, fields(key = key))]
    async fn stat(&self, key: &str) -> Result<Meta> {
        self.0.stat(key).await
    }

    /// The span covers opening the stream; the bytes flow after it closes.
    #[instrument(level = "debug", name = "storage.read", skip_all, fields(key = key, offset = offset, len = len))]
    async fn read(&self, key: &str, offset: u64, len: Option<u64>) -> Result<ByteStream> {
        self.0.read(key, offset, len).await
    }

    #[instrument(level = "debug", name = "storage.list", skip_all, fields(prefix = prefix))]
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.0.list(prefix).await
    }

    #[instrument(level = "debug", name = "storage.delete", skip_all, fields(key = key))]
    async fn delete(&self, key: &str) -> Result<()> {
        self.0.delete(key).await
    }

    #[instrument(level = "debug", name = "storage.delete_objects", skip_all, fields(keys = keys.len()))]
    async fn delete_objects(&self, keys: &[String]) -> Result<()> {
        self.0.delete_objects(keys).await
    }

    #[instrument(level = "debug", name = "storage.commit", skip_all, fields(from = from, to = to))]
    async fn commit(&self, from: &str, to: &str) -> Result<()> {
        self.0.commit(from, to).await
    }

    fn part_rule(&self) -> PartRule {
        self.0.part_rule()
    }

    #[instrument(level = "debug", name = "storage.parts_start", skip_all, fields(key = key))]
    async fn parts_start(&self, key: &str) -> Result<String> {
        self.0.parts_start(key).await
    }

    #[instrument(level = "debug", name = "storage.put_part", skip_all, fields(key = key, index = index, offset = offset, bytes = bytes_of(&data)))]
    async fn put_part(&self, key: &str, upload: &str, index: usize, offset: u64, data: Vec<Bytes>) -> Result<String> {
        self.0.put_part(key, upload, index, offset, data).await
    }

    #[instrument(level = "debug", name = "storage.parts_finish", skip_all, fields(key = key, parts = tags.len()))]
    async fn parts_finish(&self, key: &str, upload: &str, tags: Vec<String>) -> Result<()> {
        self.0.parts_finish(key, upload, tags).await
    }

    #[instrument(level = "debug", name = "storage.parts_abort", skip_all, fields(key = key))]
    async fn parts_abort(&self, key: &str, upload: &str) -> Result<()> {
        self.0.parts_abort(key, upload).await
    }

    #[instrument(level = "debug", name = "storage.presign_get", skip_all, fields(key = key))]
    async fn presign_get(&self, key: &str, ttl: std::time::Duration) -> Result<Option<String>> {
        self.0.presign_get(key, ttl).await
    }

    #[instrument(level = "debug", name = "storage.check", skip_all)]
    async fn check(&self) -> Result<()> {
        self.0.check().await
    }
}
