//! Fixtures: minimal resource YAML run through the real validate step.

use crate::settings::Settings;

use super::render::{parse, validate_input};
use super::validated::ValidatedRegistry;

/// Settings with a fixed cluster domain and image.
pub fn settings() -> Settings {
    Settings {
        cluster_domain: "cluster.local".into(),
        default_image: "ghcr.io/wharf-dev/wharf-registry:test".into(),
        node: crate::settings::NodeSettings::default(),
        tls: crate::settings::TlsSettings::default(),
    }
}

/// Validates the single resource in `yaml` (namespace `team-a` unless it names one).
pub fn validated(yaml: &str) -> ValidatedRegistry {
    validated_with(yaml, &settings())
}

/// Like [`validated`], with other settings.
pub fn validated_with(yaml: &str, settings: &Settings) -> ValidatedRegistry {
    let mut inputs = parse(yaml).expect("fixture parses");
    assert_eq!(inputs.len(), 1, "one resource per fixture");
    validate_input(&mut inputs[0], "team-a", settings).expect("fixture validates")
}

/// A Registry `reg` with token auth and a claim, two replicas on ReadWriteMany.
pub const TOKEN_REGISTRY: &str = r#"
apiVersion: wharf.dev/v1alpha1
kind: Registry
metadata: { name: reg }
spec:
  replicas: 2
  storage: { filesystem: { size: 10Gi, accessModes: [ReadWriteMany] } }
  auth:
    token:
      users: { secretName: reg-users }
      groups: { team-a: [alice, bob] }
      rules:
        - { repository: "team-a/**", groups: [team-a], actions: [pull, push] }
"#;

/// [`TOKEN_REGISTRY`], validated.
pub fn validated_registry() -> ValidatedRegistry {
    validated(TOKEN_REGISTRY)
}
