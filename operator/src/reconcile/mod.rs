//! The reconcile pipeline both controllers share, beside them: the five
//! steps in a row ([`pipeline::run`]), what happens after a failure
//! ([`pipeline::policy`]) and the one error type ([`Error`]).
//!
//! `registry_controller` and `mirror_controller` each hold one `reconcile`
//! and one `error_policy` for their kind and call into here; the steps
//! themselves (dereference, validate, build, apply, update_status) live in
//! `registry_controller`, and the mirror adds its own validation.
//!
//! Every reconcile runs in a span with kind, namespace and name (opened by
//! the controller's `reconcile`), and each step in a child span named after
//! it; at debug level each step also says how long it took, so `RUST_LOG`
//! (or a trace collector) shows where a slow reconcile spent its time.

mod error;
mod pipeline;

use std::time::Duration;

pub use error::Error;
pub use pipeline::{finish, identity, policy, run};

/// How often a healthy resource is looked at again without any event.
pub const RESYNC: Duration = Duration::from_secs(3600);
/// How often a resource with missing replicas is looked at again: a pod that
/// runs but never becomes ready changes no Deployment status, so no event
/// would tell the operator to ask it why.
pub const NOT_READY_RECHECK: Duration = Duration::from_secs(10);
/// How often a resource whose pods have no running registry container yet
/// (waiting for a node, an image) is looked at: nothing to ask them, and a
/// hundred of them must not keep the operator busy.
pub const WAITING_RECHECK: Duration = Duration::from_secs(300);
