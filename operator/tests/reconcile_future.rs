//! The controller keeps one reconcile future per object in flight and moves
//! it before its first poll. Held by value, the pipeline's steps nested into
//! an 84 KB future, and the debug binary overflowed a worker thread's stack
//! (the chart check's RBAC run aborted). Each step and the pipeline are
//! boxed where they are created; this keeps it so.

use std::sync::Arc;

use wharf_operator::context::Context;
use wharf_operator::crd::{Registry, RegistryMirror};
use wharf_operator::metrics::Metrics;
use wharf_operator::settings::{NodeSettings, Settings};
use wharf_operator::{mirror_controller, registry_controller};

#[tokio::test]
async fn reconcile_futures_stay_small() {
    // Never contacted: the futures are measured, not run.
    let config = kube::Config::new("http://127.0.0.1:9".parse().expect("uri"));
    let client = kube::Client::try_from(config).expect("client");
    let settings = Settings {
        cluster_domain: "cluster.local".into(),
        default_image: "wharf-registry:test".into(),
        node: NodeSettings::default(),
        tls: Default::default(),
    };
    let ctx = Arc::new(Context::new(client, settings, Metrics::default(), None));
    let registry = registry_controller::reconcile(Arc::new(Registry::new("r", Default::default())), ctx.clone());
    let mirror = mirror_controller::reconcile(Arc::new(RegistryMirror::new("m", Default::default())), ctx);
    let (r, m) = (std::mem::size_of_val(&registry), std::mem::size_of_val(&mirror));
    assert!(r <= 4096 && m <= 4096, "reconcile futures of {r} (Registry) and {m} (RegistryMirror) bytes");
}
