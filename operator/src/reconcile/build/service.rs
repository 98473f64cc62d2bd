//! The Service; its name and port make the in-cluster host.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::ServiceType;
use crate::names;

use super::super::validated::ValidatedRegistry;
use super::meta::child_meta_annotated;

/// The Service, with one port named `registry`.
pub fn build_service(v: &ValidatedRegistry) -> Service {
    let type_ = match v.service.type_ {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
    };
    Service {
        metadata: child_meta_annotated(v, v.names.service(), v.service.annotations.clone()),
        spec: Some(ServiceSpec {
            type_: Some(type_.into()),
            selector: Some(names::selector_labels(v.kind, v.names.instance())),
            ports: Some(vec![ServicePort {
                name: Some(names::PORT_NAME_REGISTRY.into()),
                port: v.service.port,
                target_port: Some(IntOrString::String(names::PORT_NAME_REGISTRY.into())),
                node_port: v.service.node_port,
                protocol: Some("TCP".into()),
                app_protocol: None,
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
