//! The PersistentVolumeClaim the operator creates for filesystem storage.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements};

use super::super::validated::{Storage, ValidatedRegistry};
use super::meta::{child_meta, unowned_meta};

/// The claim, unless storage is not a claim or is the user's own.
pub fn build_pvc(v: &ValidatedRegistry) -> Option<PersistentVolumeClaim> {
    let Storage::Claim { claim_name, create: Some(new), .. } = &v.storage else { return None };
    let metadata = if new.retain { unowned_meta(v, claim_name.clone()) } else { child_meta(v, claim_name.clone()) };
    Some(PersistentVolumeClaim {
        metadata,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(new.access_modes.clone()),
            storage_class_name: new.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), new.size.clone())])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    })
}
