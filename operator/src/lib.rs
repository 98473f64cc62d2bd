//! wharf-operator: turns `Registry` and `RegistryMirror` resources into running registries.
//!
//! Layout (a module uses only those listed before it):
//! - [`crd`]: the API types; their doc comments are the schema's descriptions.
//! - [`names`]: every child name, label, in-cluster host and realm.
//! - [`syntax`]: the syntax of spec values (quantities, DNS names, CIDRs, cron).
//! - [`node_access`]: the admin's policy, what each resource asks and the
//!   decision, all pure; the board that shares the decision with reconciles.
//! - [`settings`]: the operator's own configuration (cluster domain, default
//!   image, node-access policy).
//! - [`metrics`], [`context`]: what every reconcile is handed.
//! - [`reconcile`]: the pipeline both controllers share: dereference →
//!   validate → build → apply → update_status, each step a module, `run`
//!   chaining them; [`render`] runs validate and build without a cluster.
//! - [`registry_controller`], [`mirror_controller`]: one `reconcile` and one
//!   `error_policy` per kind, on that pipeline.
//! - [`controller`]: the wiring: one kube-runtime controller per kind and
//!   scope, and the node-access task beside them.
//! - [`node_agent`]: `wharf-operator node-agent`, run on every node by the
//!   chart's DaemonSet; it edits node files and uses none of the above.
//! - [`leader`], [`server`], [`telemetry`]: the process.

pub mod context;
pub mod controller;
pub mod crd;
pub mod leader;
pub mod metrics;
pub mod mirror_controller;
pub mod names;
pub mod node_access;
pub mod node_agent;
pub mod pki;
pub mod reconcile;
pub mod registry_controller;
pub mod server;
pub mod settings;
pub mod syntax;
pub mod telemetry;

/// `wharf-operator render` runs the pipeline's validate and build steps offline.
pub use reconcile::render;
