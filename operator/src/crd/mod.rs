//! The `wharf.dev/v1alpha1` API: `Registry` and `RegistryMirror`.
//!
//! Types only. Every field carries a doc comment, which becomes its
//! description in the CRD schema and so what `kubectl explain` prints.
//! Impossible combinations are rejected by the API server through CEL rules
//! (`x-kubernetes-validations`) declared next to the fields they constrain;
//! the operator's `validate` step checks the same things again for objects
//! that got in before a rule existed.

pub mod common;
pub mod common_spec;
pub mod conditions;
pub mod mirror;
pub mod registry;

pub use common::*;
pub use common_spec::CommonSpec;
pub use conditions::RegistryStatus;
pub use mirror::{RegistryMirror, RegistryMirrorSpec};
pub use registry::{Registry, RegistrySpec};

use kube::CustomResourceExt;

/// The API group of every Wharf resource.
pub const GROUP: &str = "wharf.dev";

/// The CRDs as one multi-document YAML stream, as `wharf-operator crds` prints it.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in [Registry::crd(), RegistryMirror::crd()] {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

/// The generated file for each CRD under `crds/`, by file name.
pub fn crd_files() -> Result<Vec<(String, String)>, serde_yaml::Error> {
    let mut files = Vec::new();
    for crd in [Registry::crd(), RegistryMirror::crd()] {
        let name = crd.metadata.name.clone().unwrap_or_default();
        files.push((format!("{name}.yaml"), serde_yaml::to_string(&crd)?));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use kube::core::cel::Validator;
    use serde_json::{Value, json};

    use super::*;

    fn crds_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds")
    }

    /// `crds/` holds what `wharf-operator crds` prints. Regenerate with
    /// `WHARF_UPDATE_CRDS=1 cargo test -p wharf-operator crds_are_current`.
    #[test]
    fn crds_are_current() {
        let files = crd_files().expect("CRDs serialise");
        let update = std::env::var_os("WHARF_UPDATE_CRDS").is_some();
        let mut stale = Vec::new();
        for (name, text) in &files {
            let path = crds_dir().join(name);
            if update {
                std::fs::write(&path, text).expect("write crds/");
                continue;
            }
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(path.display().to_string());
            }
        }
        assert!(
            stale.is_empty(),
            "stale CRD files: {stale:?}; regenerate with `WHARF_UPDATE_CRDS=1 cargo test -p wharf-operator crds_are_current`"
        );
    }

    fn schema<K: CustomResourceExt>() -> Value {
        let crd = K::crd();
        let schema = crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).expect("schema");
        serde_json::to_value(schema).expect("json")
    }

    /// `kubectl explain` prints these: a field flattened in from a shared
    /// struct must keep its description in both CRDs.
    #[test]
    fn every_spec_field_has_a_description() {
        for (kind, schema) in [("Registry", schema::<Registry>()), ("RegistryMirror", schema::<RegistryMirror>())] {
            let fields = schema["properties"]["spec"]["properties"].as_object().expect("spec properties");
            for shared in ["replicas", "image", "nodeSelector", "storage", "auth", "service", "tls", "networkPolicy"] {
                assert!(fields.contains_key(shared), "{kind}: spec.{shared} missing");
            }
            for (name, field) in fields {
                let description = field["description"].as_str().unwrap_or_default();
                assert!(!description.trim().is_empty(), "{kind}: spec.{name} has no description");
            }
        }
    }

    fn check<K: CustomResourceExt>(kind: &str, spec: Value) -> Result<(), Vec<String>> {
        let obj = json!({"apiVersion": "wharf.dev/v1alpha1", "kind": kind, "metadata": {"name": "x"}, "spec": spec});
        Validator::new()
            .validate(&schema::<K>(), &obj, None)
            .map_err(|e| e.into_vec().into_iter().map(|e| e.message).collect())
    }

    fn registry(spec: Value) -> Result<(), Vec<String>> {
        check::<Registry>("Registry", spec)
    }

    fn mirror(spec: Value) -> Result<(), Vec<String>> {
        check::<RegistryMirror>("RegistryMirror", spec)
    }

    fn rejected_with(result: Result<(), Vec<String>>, words: &str) {
        let messages = result.expect_err("the API server would reject this");
        assert!(messages.iter().any(|m| m.contains(words)), "no message mentions `{words}`: {messages:?}");
    }

    #[test]
    fn cel_accepts_the_usual_specs() {
        assert_eq!(registry(json!({"storage": {"emptyDir": {}}})), Ok(()));
        assert_eq!(
            registry(
                json!({"replicas": 3, "storage": {"filesystem": {"size": "10Gi", "accessModes": ["ReadWriteMany"]}},
                "auth": {"token": {"users": {"secretName": "u"}, "groups": {"a": ["x"]},
                    "rules": [{"repository": "a/**", "groups": ["a"], "actions": ["pull"]}]}}})
            ),
            Ok(())
        );
        assert_eq!(
            mirror(json!({"upstreams": [{"name": "docker.io", "url": "https://registry-1.docker.io",
                "credentials": {"secretName": "hub"}}], "storage": {"emptyDir": {}},
                "auth": {"htpasswd": {"secret": {"secretName": "h"}}}})),
            Ok(())
        );
    }

    #[test]
    fn cel_rejects_impossible_storage() {
        rejected_with(registry(json!({"storage": {}})), "exactly one of filesystem, emptyDir and s3");
        rejected_with(
            registry(json!({"storage": {"emptyDir": {}, "s3": {"bucket": "b", "region": "r"}}})),
            "exactly one of filesystem, emptyDir and s3",
        );
        rejected_with(registry(json!({"replicas": 2, "storage": {"emptyDir": {}}})), "emptyDir is local to each pod");
        rejected_with(
            registry(json!({"replicas": 2, "storage": {"filesystem": {"size": "1Gi"}}})),
            "needs accessModes [ReadWriteMany]",
        );
        rejected_with(registry(json!({"storage": {"filesystem": {"size": "1Gi", "existingClaim": "c"}}})), "not both");
    }

    #[test]
    fn cel_checks_s3_fields() {
        let s3 = |extra: Value| {
            let mut s3 = json!({"bucket": "b", "region": "r"});
            s3.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
            registry(json!({"replicas": 3, "storage": {"s3": s3}}))
        };
        assert_eq!(
            s3(json!({"endpoint": "http://versitygw.s3.svc.cluster.local:7070", "forcePathStyle": true,
                "chunkSize": "16Mi", "storageClass": "STANDARD_IA", "encrypt": true, "keyId": "k", "redirect": true})),
            Ok(())
        );
        rejected_with(s3(json!({"keyId": "k"})), "keyId applies only with encrypt: true");
        rejected_with(s3(json!({"endpoint": "minio:9000"})), "must be an http:// or https:// URL");
        rejected_with(s3(json!({"storageClass": "cold storage"})), "S3 storage class name");
    }

    #[test]
    fn cel_rejects_conflicting_auth_and_bad_realms() {
        rejected_with(
            registry(json!({"storage": {"emptyDir": {}}, "auth": {"htpasswd": {"secret": {"secretName": "a"}},
                "token": {"users": {"secretName": "b"}}}})),
            "at most one of htpasswd, token and externalToken",
        );
        for realm in ["http://localhost/service/token", "http://auth:5001/token", "https://127.0.0.1/token"] {
            rejected_with(
                registry(json!({"storage": {"emptyDir": {}}, "auth": {"externalToken": {"realm": realm,
                    "service": "s", "issuer": "i", "rootCertBundle": {"secretName": "b"}}}})),
                "not localhost",
            );
        }
        rejected_with(
            registry(json!({"storage": {"emptyDir": {}}, "auth": {"token": {"users": {"secretName": "u"},
                "rules": [{"repository": "a/**", "groups": ["nope"], "actions": ["pull"]}]}}})),
            "must be defined under auth.token.groups",
        );
        rejected_with(
            registry(json!({"storage": {"emptyDir": {}}, "ingress": {"host": "registry"}})),
            "at least one dot",
        );
    }

    #[test]
    fn cel_rejects_a_mirror_that_would_leak_private_images() {
        rejected_with(
            mirror(json!({"upstreams": [{"name": "docker.io", "url": "https://registry-1.docker.io",
                "credentials": {"secretName": "hub"}}], "storage": {"emptyDir": {}}})),
            "upstream credentials need client auth",
        );
        rejected_with(
            mirror(json!({"upstreams": [{"name": "docker.io", "url": "https://a.example"},
                {"name": "docker.io", "url": "https://b.example"}], "storage": {"emptyDir": {}}})),
            "each name may appear once",
        );
    }
}
