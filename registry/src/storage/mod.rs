//! Storage: registry:2's on-disk layout over a narrow key/bytes backend.
//!
//! `paths` names every key; `backend` is the trait; `fs` implements it on a
//! local directory and `s3` on a bucket; `instrumented` wraps either in spans;
//! `walk` lists repositories and digests. Only `crate::registry` calls into this module, and this
//! module calls nothing above it.

pub mod backend;
#[cfg(test)]
pub mod conformance;
pub mod fs;
pub mod instrumented;
pub mod paths;
pub mod s3;
pub mod sync;
pub mod walk;

pub use backend::{Backend, ByteStream, Meta, PartRule, StorageError};
