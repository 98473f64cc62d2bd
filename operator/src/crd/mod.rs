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
pub mod maintenance;
pub mod mirror;
pub mod notifications;
pub mod registry;
pub mod tls;

pub use common::*;
pub use common_spec::{CommonSpec, TlsSource};
pub use conditions::{LastCollection, QuotaUse, RegistryStatus};
pub use maintenance::*;
pub use mirror::{RegistryMirror, RegistryMirrorSpec};
pub use notifications::*;
pub use registry::{Registry, RegistrySpec};
pub use tls::{IssuerKind, IssuerRef, TlsSpec};

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
    fn cel_checks_garbage_collection_retention_and_quotas() {
        let with = |extra: Value| {
            let mut spec = json!({"storage": {"emptyDir": {}}});
            spec.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
            registry(spec)
        };
        let online = json!({"online": true, "interval": "30m", "minAge": "2h", "deleteUntagged": true});
        assert_eq!(with(json!({"garbageCollection": {"schedule": "0 3 * * 0"}})), Ok(()), "stored objects stay valid");
        assert_eq!(
            with(json!({"garbageCollection": {"schedule": "@daily", "minAge": "90m", "deleteUntagged": true}})),
            Ok(())
        );
        assert_eq!(
            with(json!({"garbageCollection": online, "quotas": [{"repositories": "team-a/**", "limit": "50Gi"}],
                "retention": {"dryRun": true, "delay": "1h", "policies": [{"repositories": ["ci/**"],
                    "deleteReferrers": true, "deleteUntagged": true, "keepTags": [{"patterns": ["^v[0-9]+"],
                    "pulledWithin": "720h", "pushedWithin": "168h", "mostRecentlyPushedCount": 5,
                    "mostRecentlyPulledCount": 0}]}]}})),
            Ok(())
        );
        let exactly_one = "exactly one of schedule (a CronJob) and online: true";
        rejected_with(with(json!({"garbageCollection": {"schedule": "@daily", "online": true}})), exactly_one);
        rejected_with(with(json!({"garbageCollection": {}})), exactly_one);
        rejected_with(with(json!({"garbageCollection": {"online": false}})), exactly_one);
        rejected_with(
            with(json!({"garbageCollection": {"schedule": "@daily", "interval": "1h"}})),
            "interval applies only with online: true",
        );
        rejected_with(
            with(json!({"garbageCollection": {"online": true, "minAge": "1d"}})),
            "minAge must be a Go duration",
        );
        rejected_with(
            with(json!({"garbageCollection": {"online": true, "interval": "hourly"}})),
            "interval must be a Go duration",
        );
        let retention = json!({"policies": [{"repositories": ["**"]}]});
        rejected_with(with(json!({"retention": retention})), "needs garbageCollection.online: true");
        rejected_with(
            with(json!({"retention": retention, "garbageCollection": {"schedule": "@daily"}})),
            "needs garbageCollection.online: true",
        );
        let gc = json!({"online": true});
        rejected_with(
            with(json!({"garbageCollection": gc, "retention": {"delay": "a day"}})),
            "retention.delay must be a Go duration",
        );
        rejected_with(
            with(json!({"garbageCollection": gc, "retention": {"policies": [{"repositories": ["**"],
                "keepTags": [{"pushedWithin": "7d"}]}]}})),
            "keepTags[].pushedWithin must be a Go duration",
        );
        rejected_with(
            with(json!({"garbageCollection": gc, "retention": {"policies": [{"repositories": [""]}]}})),
            "each glob is 1 to 256 characters",
        );
        rejected_with(
            with(json!({"garbageCollection": gc, "retention": {"policies": [{"repositories": ["**"],
                "keepTags": [{"mostRecentlyPulledCount": -1}]}]}})),
            "must not be negative",
        );
        rejected_with(
            with(json!({"garbageCollection": gc, "retention": {"policies": [{"repositories": []}]}})),
            "name at least one glob",
        );
        for limit in ["1.5Gi", "50GB", "-1", "lots", "1Pi"] {
            rejected_with(
                with(json!({"quotas": [{"repositories": "team-a/**", "limit": limit}]})),
                "quotas[].limit must be bytes or a whole number",
            );
        }
        assert_eq!(with(json!({"quotas": [{"repositories": "a/**", "limit": "1073741824"}]})), Ok(()));
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
