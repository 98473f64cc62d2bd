//! The one place object metadata is made: name, namespace, labels, owner reference.

use std::collections::BTreeMap;

use kube::api::ObjectMeta;

use crate::names;

use super::super::validated::ValidatedRegistry;

/// Metadata of a child called `name`, owned by the resource.
pub fn child_meta(v: &ValidatedRegistry, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(v.namespace.clone()),
        labels: Some(names::labels(v.kind, v.names.instance())),
        owner_references: Some(vec![v.owner.clone()]),
        ..ObjectMeta::default()
    }
}

/// Like [`child_meta`], with annotations (left out when empty).
pub fn child_meta_annotated(v: &ValidatedRegistry, name: String, annotations: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta { annotations: (!annotations.is_empty()).then_some(annotations), ..child_meta(v, name) }
}

/// Metadata of an object that outlives the resource: labelled, but without owner reference.
pub fn unowned_meta(v: &ValidatedRegistry, name: String) -> ObjectMeta {
    ObjectMeta { owner_references: None, ..child_meta(v, name) }
}
