//! An Ingress, whose host becomes the advertised host and realm.

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend, IngressSpec,
    IngressTLS, ServiceBackendPort,
};

use crate::names;

use super::super::validated::ValidatedRegistry;
use super::meta::child_meta_annotated;

/// The Ingress, routing every path of the host to the `registry` port.
pub fn build_ingress(v: &ValidatedRegistry) -> Option<Ingress> {
    let i = v.ingress.as_ref()?;
    Some(Ingress {
        metadata: child_meta_annotated(v, v.names.ingress(), i.annotations.clone()),
        spec: Some(IngressSpec {
            ingress_class_name: i.class_name.clone(),
            tls: i
                .tls_secret_name
                .as_ref()
                .map(|s| vec![IngressTLS { hosts: Some(vec![i.host.clone()]), secret_name: Some(s.clone()) }]),
            rules: Some(vec![IngressRule {
                host: Some(i.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: v.names.service(),
                                port: Some(ServiceBackendPort {
                                    name: Some(names::PORT_NAME_REGISTRY.into()),
                                    number: None,
                                }),
                            }),
                            resource: None,
                        },
                    }],
                }),
            }]),
            default_backend: None,
        }),
        ..Ingress::default()
    })
}
