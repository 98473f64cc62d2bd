//! What the examples tests share: the operator settings they render with,
//! and every file in `examples/`.

use std::path::PathBuf;

use wharf_operator::settings::{NodeSettings, Settings};

/// The settings every example renders with.
pub fn settings() -> Settings {
    Settings {
        cluster_domain: "cluster.local".into(),
        default_image: "ghcr.io/wharf-dev/wharf-registry:0.1.0".into(),
        node: NodeSettings::default(),
        tls: Default::default(),
    }
}

/// Every `examples/*.yaml`, sorted.
pub fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/ exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}
