//! wharf-operator: turns `Registry` and `RegistryMirror` resources into running registries.
//!
//! Layout (a module uses those listed before it; the one exception is noted):
//! - [`crd`]: the API types; their doc comments are the schema's descriptions.
//! - [`names`]: every child name, label, in-cluster host and realm.
//! - [`settings`]: the operator's own configuration (cluster domain, default image).
//! - [`syntax`]: the syntax of spec values (quantities, DNS names, CIDRs, cron); a leaf.
//! - [`registry_controller`]: dereference → validate → build → apply → update_status
//!   for `Registry`; `build` is pure and shared with the mirror.
//! - [`mirror_controller`]: the same steps for `RegistryMirror`, reusing the
//!   registry's build, apply and status steps.
//! - [`reconcile`]: the pipeline both controllers run (the steps in a row,
//!   the error type, the requeue policy), beside them. It runs the steps of
//!   `registry_controller`, whose `reconcile` entry point (and the mirror's)
//!   calls back into it: the only two-way pair, between an entry point and
//!   the pipeline it starts.
//! - [`render`]: validate and build without a cluster (`wharf-operator render`).
//! - [`node_agent`]: `wharf-operator node-agent`, run on every node by the
//!   `nodeAccess` DaemonSet; it edits node files and uses nothing above.
//! - [`context`], [`metrics`], [`telemetry`], [`leader`], [`server`], [`controller`]: the process.

pub mod context;
pub mod controller;
pub mod crd;
pub mod leader;
pub mod metrics;
pub mod mirror_controller;
pub mod names;
pub mod node_access;
pub mod node_agent;
pub mod reconcile;
pub mod registry_controller;
pub mod render;
pub mod server;
pub mod settings;
pub mod syntax;
pub mod telemetry;

#[cfg(test)]
pub mod test_support;
