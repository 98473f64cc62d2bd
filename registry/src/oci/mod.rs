//! The OCI names everything else speaks in: content digests, repository
//! names, tags and references, and manifest documents (parsing only). A
//! leaf: it imports nothing from this crate, so `registry` and `storage`
//! can both use it without depending on each other.

pub mod digest;
pub mod glob;
pub mod manifest;
pub mod reference;
