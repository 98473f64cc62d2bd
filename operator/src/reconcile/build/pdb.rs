//! A PodDisruptionBudget, when there is more than one replica.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::names;

use super::super::validated::ValidatedRegistry;
use super::meta::child_meta;

/// At most one pod voluntarily evicted at a time; none with a single replica
/// (a budget there would block node drains forever).
pub fn build_pdb(v: &ValidatedRegistry) -> Option<PodDisruptionBudget> {
    if v.pods.replicas <= 1 {
        return None;
    }
    Some(PodDisruptionBudget {
        metadata: child_meta(v, v.names.pdb()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(names::selector_labels(v.kind, v.names.instance())),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}
