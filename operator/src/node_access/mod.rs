//! Node access: the cluster's container runtime pulling from in-cluster
//! registries and mirrors, as cluster infrastructure under the cluster
//! admin's control (see docs/node-access.md).
//!
//! - [`policy`]: the admin's rules (chart values, never a tenant's spec);
//! - [`claims`]: what each resource with `nodeAccess.enabled` asks, purely;
//! - [`plan`]: the decision, purely: granted or refused, one owner per host;
//! - [`board`]: the latest decision, shared with the reconcilers, and the
//!   channel that wakes the resources whose answer changed.
//!
//! The task that watches the resources, decides and publishes the plan for
//! the node agent runs with the controllers (`crate::controller::node_access`).
//!
//! The node side is `crate::node_agent`: one DaemonSet, installed by the
//! chart in the operator's namespace, that only writes what the plan says.

pub mod board;
pub mod claims;
pub mod plan;
pub mod policy;
