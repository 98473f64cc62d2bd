//! `search`: wharf's search index (`/v2/_wharf/search`, `/v1/search`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::values::{ConfigError, GoDuration, key_error};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    /// How old the in-memory index may get before a search walks storage
    /// again: what other replicas pushed or deleted shows up by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<GoDuration>,
}

impl Search {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(r) = &self.refresh
            && !(Duration::from_secs(1)..=Duration::from_secs(86400)).contains(&r.0)
        {
            return Err(key_error("search.refresh", "must be between 1s and 24h"));
        }
        Ok(())
    }
}
