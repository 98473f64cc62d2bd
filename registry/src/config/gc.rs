//! `storage.gc`: the in-process online garbage collection (wharf's; zot's
//! `gc`, `gcInterval` and `gcDelay`). registry:2 has only the offline
//! `garbage-collect` command, which wharf keeps.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::values::GoDuration;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Gc {
    #[serde(default)]
    pub enabled: bool,
    /// How often a collection runs (one replica at a time).
    #[serde(default = "hour")]
    pub interval: GoDuration,
    /// Blobs written or referenced within this are spared: `--min-age`.
    #[serde(default = "hour")]
    pub delay: GoDuration,
    /// Also delete manifests no tag reaches: `--delete-untagged`.
    #[serde(default)]
    pub deleteuntagged: bool,
    /// Log what would go; delete nothing.
    #[serde(default)]
    pub dryrun: bool,
}

fn hour() -> GoDuration {
    GoDuration(Duration::from_secs(3600))
}

impl Default for Gc {
    fn default() -> Self {
        Gc { enabled: false, interval: hour(), delay: hour(), deleteuntagged: false, dryrun: false }
    }
}
