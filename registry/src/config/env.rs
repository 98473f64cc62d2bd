//! registry:2's `REGISTRY_*` environment overrides, applied to the YAML tree
//! before it is typed.

use serde_yaml::{Mapping, Value};

use super::values::ConfigError;

/// Applies registry:2's environment overrides: `REGISTRY_A_B_C=v` sets
/// `a.b.c` (case-insensitive, matching existing keys), with `v` parsed as YAML.
pub(super) fn apply_env(tree: &mut Value, env: impl IntoIterator<Item = (String, String)>) -> Result<(), ConfigError> {
    let mut vars: Vec<(String, String)> =
        env.into_iter().filter(|(k, _)| k.starts_with("REGISTRY_") && k != "REGISTRY_CONFIGURATION_PATH").collect();
    // Shorter paths first, so REGISTRY_STORAGE=s3 applies before REGISTRY_STORAGE_S3_BUCKET.
    vars.sort_by_key(|(k, _)| k.len());
    for (var, raw) in vars {
        let segments: Vec<String> = var["REGISTRY_".len()..].split('_').map(str::to_lowercase).collect();
        if segments.iter().any(String::is_empty) {
            return Err(ConfigError::Env { var, message: "empty path segment".into() });
        }
        let value: Value = serde_yaml::from_str(&raw).unwrap_or(Value::String(raw.clone()));
        // A value that YAML reads as a map or list only when it was meant as one.
        let value = match value {
            Value::Null if !raw.is_empty() => Value::String(raw.clone()),
            v => v,
        };
        if segments.len() == 1 && segments[0] == "storage" {
            // REGISTRY_STORAGE=<driver> selects the driver.
            let driver = value.as_str().unwrap_or_default().to_string();
            let storage = entry(tree, "storage");
            if let Some(m) = storage.as_mapping_mut() {
                m.insert(Value::String(driver), Value::Mapping(Mapping::new()));
            }
            continue;
        }
        let mut node = &mut *tree;
        for seg in &segments[..segments.len() - 1] {
            node = entry(node, seg);
        }
        let last = &segments[segments.len() - 1];
        if let Some(m) = node.as_mapping_mut() {
            let key = existing_key(m, last).unwrap_or_else(|| Value::String(last.clone()));
            m.insert(key, value);
        } else {
            return Err(ConfigError::Env { var, message: "overrides a key whose parent is not a mapping".into() });
        }
    }
    Ok(())
}

fn existing_key(m: &Mapping, name: &str) -> Option<Value> {
    m.keys().find(|k| k.as_str().is_some_and(|s| s.eq_ignore_ascii_case(name))).cloned()
}

/// The child mapping `name` of `node`, created (or replacing a scalar) when needed.
/// A tagged mapping (`!tag {a: b}`) is a mapping too: `as_mapping_mut` looks
/// through the tag, as `is_mapping` does (matching `Value::Mapping` alone
/// panicked on one, found by fuzzing).
fn entry<'a>(node: &'a mut Value, name: &str) -> &'a mut Value {
    if node.as_mapping_mut().is_none() {
        *node = Value::Mapping(Mapping::new());
    }
    let Some(m) = node.as_mapping_mut() else { unreachable!("just made a mapping") };
    let key = existing_key(m, name).unwrap_or_else(|| Value::String(name.to_string()));
    let child = m.entry(key).or_insert_with(|| Value::Mapping(Mapping::new()));
    if !child.is_mapping() {
        *child = Value::Mapping(Mapping::new());
    }
    child
}
