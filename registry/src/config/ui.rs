//! `ui`: wharf's web UI, served by the registry itself.

use serde::{Deserialize, Serialize};

use super::values::{ConfigError, key_error};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ui {
    #[serde(default)]
    pub enabled: bool,
    /// Where it is served, below `http.prefix` (default `/ui/`).
    #[serde(default = "default_path")]
    pub path: String,
}

fn default_path() -> String {
    "/ui/".into()
}

impl Ui {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let p = &self.path;
        let safe = p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "/-_".contains(c));
        if !(p.starts_with('/') && p.ends_with('/') && p.len() > 1 && safe && !p.contains("//")) {
            return Err(key_error(
                "ui.path",
                format!("`{p}` must look like /ui/ (lowercase letters, digits, - and _)"),
            ));
        }
        if ["/v2/", "/v1/", "/auth/"].iter().any(|r| p.starts_with(r)) {
            return Err(key_error("ui.path", format!("`{p}` is under a path the API serves")));
        }
        Ok(())
    }
}
