//! An optional NetworkPolicy admitting the listed peers to the registry's
//! ports, and the operator's pods to the debug port (it reads `/debug/ready`
//! to say why a pod is not ready).

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::names;

use super::super::validated::ValidatedRegistry;
use super::meta::child_meta;

/// The operator's pods, in its namespace.
fn operator_peer(namespace: &str) -> NetworkPolicyPeer {
    let labels = |k: &str, v: &str| LabelSelector {
        match_labels: Some([(k.to_string(), v.to_string())].into()),
        ..LabelSelector::default()
    };
    NetworkPolicyPeer {
        namespace_selector: Some(labels("kubernetes.io/metadata.name", namespace)),
        pod_selector: Some(labels(names::LABEL_NAME, names::OPERATOR_APP_NAME)),
        ip_block: None,
    }
}

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
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    from: Some(peers),
                    ports: Some(vec![port(names::REGISTRY_CONTAINER_PORT), port(names::DEBUG_CONTAINER_PORT)]),
                },
                NetworkPolicyIngressRule {
                    from: Some(vec![operator_peer(&v.operator_namespace)]),
                    ports: Some(vec![port(names::DEBUG_CONTAINER_PORT)]),
                },
            ]),
            egress: None,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::test_support::validated;

    /// With `from` listed, the operator still reaches the debug port (and only
    /// that), so Degraded can quote why a pod is not ready.
    #[test]
    fn the_operator_may_ask_the_debug_port() {
        let v = validated(&format!(
            "{}  networkPolicy:\n    enabled: true\n    from: [{{podSelector: {{matchLabels: {{app: client}}}}}}]\n",
            crate::reconcile::test_support::TOKEN_REGISTRY
        ));
        let policy = build_network_policy(&v).expect("policy");
        let rules = policy.spec.and_then(|s| s.ingress).expect("rules");
        let operator = rules
            .iter()
            .find(|r| r.from.iter().flatten().any(|p| p.namespace_selector.is_some() && p.pod_selector.is_some()))
            .expect("a rule for the operator");
        let ports: Vec<_> = operator.ports.iter().flatten().filter_map(|p| p.port.clone()).collect();
        assert_eq!(ports, [IntOrString::Int(names::DEBUG_CONTAINER_PORT)]);
        let peer = &operator.from.as_ref().expect("from")[0];
        let ns = peer.namespace_selector.as_ref().and_then(|s| s.match_labels.as_ref()).expect("labels");
        assert_eq!(ns.get("kubernetes.io/metadata.name").map(String::as_str), Some("wharf-system"));
    }
}
