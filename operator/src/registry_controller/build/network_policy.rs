//! An optional NetworkPolicy admitting the listed peers to the registry's ports.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::names;

use super::super::validate::ValidatedRegistry;
use super::meta::child_meta;

/// The NetworkPolicy; with no peers listed, every pod of every namespace is admitted.
pub fn build_network_policy(v: &ValidatedRegistry) -> Option<NetworkPolicy> {
    let from = v.network_policy.as_ref()?;
    let peers = if from.is_empty() {
        vec![NetworkPolicyPeer { namespace_selector: Some(LabelSelector::default()), ..NetworkPolicyPeer::default() }]
    } else {
        from.clone()
    };
    let port =
        |p: i32| NetworkPolicyPort { port: Some(IntOrString::Int(p)), protocol: Some("TCP".into()), end_port: None };
    Some(NetworkPolicy {
        metadata: child_meta(v, v.names.network_policy()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(names::selector_labels(v.kind, v.names.instance())),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(peers),
                ports: Some(vec![port(names::REGISTRY_CONTAINER_PORT), port(names::DEBUG_CONTAINER_PORT)]),
            }]),
            egress: None,
        }),
    })
}
