//! The pull-through mirror's selection of an upstream for a request line: containerd's
//! `?ns=host[:port]`, a name's first component, `localprefix`, `remoteurl`.
//!
//! Input: the request target after `/v2`, e.g. `/nginx/manifests/1?ns=docker.io`.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use wharf_registry::api::endpoint;
use wharf_registry::config::Config;
use wharf_registry::mirror::{Mirror, Selection};
use wharf_registry::registry::reference::RepoName;
use wharf_registry::registry::{Options, Registry};
use wharf_registry::storage::fs::Filesystem;

// No request reaches an upstream here: `select` only chooses. The URLs are
// never dialled.
const CONFIG: &str = r#"
version: 0.1
storage: {filesystem: {rootdirectory: /nonexistent/wharf-fuzz}}
proxy:
  remoteurl: http://127.0.0.1:9
  localprefix: local
  upstreams:
    - {name: docker.io, url: http://127.0.0.1:9}
    - {name: "registry.team.svc.cluster.local:5000", url: http://127.0.0.1:9}
"#;

static MIRROR: LazyLock<Mirror> = LazyLock::new(|| {
    let config = Config::from_yaml(CONFIG, []).expect("the fuzz config is valid");
    let proxy = config.proxy.expect("it has a proxy section");
    let backend = Arc::new(Filesystem::new("/nonexistent/wharf-fuzz"));
    let registry = Arc::new(Registry::new(
        backend,
        Options { upload_secret: vec![0; 32], ..Options::default() },
    ));
    Mirror::from_config(&proxy, registry).expect("the mirror builds")
});

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let (path, query) = s.split_once('?').unwrap_or((s, ""));
    let query: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let ns = query.iter().find(|(k, _)| k == "ns").map(|(_, v)| v.as_str());
    // The router's names, and (for more reach) the path as a bare name.
    let mut names: Vec<RepoName> = RepoName::parse(path).into_iter().collect();
    if let Ok(ep) = endpoint::parse(path)
        && let Some(n) = ep.repository()
    {
        names.push(n.clone());
    }
    for name in names {
        match MIRROR.select(&name, ns) {
            Selection::Local => assert!(name.as_str() == "local" || name.as_str().starts_with("local/")),
            Selection::Mirrored(t) => {
                assert!(!t.remote.is_empty());
                // Cached content is stored under the upstream's prefix, or
                // (for the remoteurl upstream) under the name itself.
                let local = t.local.as_str();
                assert!(
                    local == name.as_str() || local.ends_with(&format!("/{}", name.as_str())),
                    "{name} with ns={ns:?} stored as {local}"
                );
                assert!(!local.starts_with("local/"), "mirrored content written into a local repository: {local}");
            }
            Selection::NoUpstream(why) => assert!(!why.is_empty()),
        }
    }
});
