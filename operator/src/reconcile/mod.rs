//! The reconcile pipeline both controllers share, beside them.
//! `registry_controller` and `mirror_controller` each hold one `reconcile`
//! and one `error_policy` for their kind and hand the resource to [`run`],
//! which runs five steps in a row, each in its own module with its own error:
//!
//! 1. [`dereference`]: read the Secrets the spec names; create the generated ones once
//!    (before it, [`serving_cert`] issues or renews the serving certificate);
//! 2. [`validate`]: spec + those objects + settings → [`validated::ValidatedRegistry`]
//!    (user errors are found here and nowhere else); a mirror adds
//!    [`validate_mirror`];
//! 3. [`build`]: every child object, purely;
//! 4. [`apply`]: server-side apply in a documented order, then prune;
//! 5. [`update_status`]: conditions, host, URL and realm; Events on transitions.
//!
//! [`finish`] counts the outcome, [`policy`] decides what follows a failure,
//! and [`Error`] has one variant per step. [`render`] runs validate and build
//! without a cluster (`wharf-operator render`).
//!
//! Every reconcile runs in a span with kind, namespace and name (opened by
//! the controller's `reconcile`), and each step in a child span named after
//! it; at debug level each step also says how long it took, so `RUST_LOG`
//! (or a trace collector) shows where a slow reconcile spent its time.

pub mod apply;
pub mod build;
pub mod dereference;
pub mod pod_probe;
pub mod render;
pub mod s3;
pub mod serving_cert;
pub mod update_status;
pub mod upkeep_probe;
pub mod validate;
pub mod validate_gc;
pub mod validate_mirror;
pub mod validate_notifications;
pub mod validated;

mod error;
mod pipeline;

#[cfg(test)]
pub mod test_support;

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
/// How often the last garbage collection and the quotas' use are read again
/// for the status, when configured: they change with no event the operator
/// watches. An online collection is read again after its interval, within these bounds.
pub const UPKEEP_RECHECK: Duration = Duration::from_secs(300);
/// The shortest re-read, however often an online collection runs.
pub const UPKEEP_RECHECK_MIN: Duration = Duration::from_secs(10);
