//! `Range: bytes=...` on blob GETs and `Content-Range` on upload PATCHes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_registry::registry::blobs::ByteRange;
use wharf_registry::registry::upload::ChunkRange;

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes are a blob size, the rest the header value.
    let (size, header) = match data.split_first_chunk::<8>() {
        Some((n, rest)) => (u64::from_le_bytes(*n), rest),
        None => (0, data),
    };
    let Ok(h) = std::str::from_utf8(header) else { return };
    if let Some(r) = ByteRange::parse(h) {
        for size in [size, size % 4096, 0, 1, u64::MAX] {
            if let Some((start, end)) = r.resolve(size) {
                assert!(start <= end && end < size, "{r:?} on {size} bytes resolved to {start}-{end}");
            }
        }
    }
    if let Some(c) = ChunkRange::parse(h) {
        assert!(c.start <= c.end);
    }
});
