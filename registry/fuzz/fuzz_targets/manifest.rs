//! Manifests and indexes as pushed: the body with the request's Content-Type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_registry::oci::manifest::{self, Kind};

const TYPES: [Option<&str>; 6] = [
    None,
    Some("application/vnd.oci.image.manifest.v1+json"),
    Some("application/vnd.oci.image.index.v1+json"),
    Some("application/vnd.docker.distribution.manifest.v2+json"),
    Some("application/vnd.docker.distribution.manifest.list.v2+json"),
    Some("application/json; charset=utf-8"),
];

fuzz_target!(|data: &[u8]| {
    // The first byte picks the Content-Type; the rest is the body.
    let Some((&pick, body)) = data.split_first() else { return };
    if let Ok(p) = manifest::parse(body, TYPES[usize::from(pick) % TYPES.len()]) {
        match p.kind {
            Kind::Image => assert!(p.children.is_empty()),
            Kind::Index => assert!(p.blobs.is_empty()),
        }
    }
});
