//! ConfigMaps: config.yml, and access.yml for the built-in token service.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use crate::names;

use super::super::validated::ValidatedRegistry;
use super::meta::child_meta;
use super::registry_config::{build_access_file, build_registry_config};

/// Errors of rendering YAML (only possible through a serde bug).
pub type YamlError = serde_yaml::Error;

/// The config.yml text.
pub fn render_config_yaml(v: &ValidatedRegistry) -> Result<String, YamlError> {
    serde_yaml::to_string(&build_registry_config(v))
}

/// The ConfigMap holding config.yml.
pub fn build_config_map(v: &ValidatedRegistry) -> Result<ConfigMap, YamlError> {
    Ok(ConfigMap {
        metadata: child_meta(v, v.names.config_map()),
        data: Some(BTreeMap::from([(names::CONFIG_KEY.to_string(), render_config_yaml(v)?)])),
        ..ConfigMap::default()
    })
}

/// The ConfigMap holding access.yml; the registry reloads it on change, so it
/// is not part of the config hash.
pub fn build_access_config_map(v: &ValidatedRegistry) -> Result<Option<ConfigMap>, YamlError> {
    let Some(access) = build_access_file(v) else { return Ok(None) };
    Ok(Some(ConfigMap {
        metadata: child_meta(v, v.names.access_config_map()),
        data: Some(BTreeMap::from([(names::ACCESS_KEY.to_string(), serde_yaml::to_string(&access)?)])),
        ..ConfigMap::default()
    }))
}
