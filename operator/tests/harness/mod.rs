//! What the API server tests share: a client from `WHARF_KUBECONFIG`, the
//! CRDs, a namespace per test, the controllers in-process, and bounded waits.

// Each test binary compiles its own copy and uses part of it.
#![allow(dead_code)]

pub mod spans;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, CustomResourceExt, ResourceExt};

use wharf_operator::context::Context;
use wharf_operator::controller::{self, Scope};
use wharf_operator::crd::{Registry, RegistryMirror};
use wharf_operator::metrics::Metrics;
use wharf_operator::node_access::policy::Policy;
use wharf_operator::settings::{NodeSettings, Settings, TlsSettings};

/// A client for the API server named by `WHARF_KUBECONFIG`.
pub async fn client() -> Client {
    let path = std::env::var("WHARF_KUBECONFIG").unwrap_or_else(|_| {
        panic!(
            "WHARF_KUBECONFIG is not set: these tests need a real kube-apiserver. Start one with \
             `e2e/cluster/apiserver.sh start --with-controller-manager` and set WHARF_KUBECONFIG to the kubeconfig \
             it prints"
        )
    });
    let kubeconfig = Kubeconfig::read_from(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("kubeconfig {path}: {e}"));
    Client::try_from(config).expect("client")
}

/// Applies both CRDs and waits until they are served.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [Registry::crd(), RegistryMirror::crd()] {
        api.patch(&crd.name_any(), &PatchParams::apply("wharf-tests").force(), &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("the API server refused CRD {}: {e}", crd.name_any()));
    }
    eventually("CRDs served", || async {
        let ok = Api::<Registry>::all(client.clone()).list(&Default::default()).await.is_ok()
            && Api::<RegistryMirror>::all(client.clone()).list(&Default::default()).await.is_ok();
        ok.then_some(())
    })
    .await;
}

/// A namespace `<name>-<pid>`, created if needed.
pub async fn namespace(client: &Client, name: &str) -> String {
    let ns = format!("{name}-{}", std::process::id());
    let api: Api<Namespace> = Api::all(client.clone());
    let obj = Namespace { metadata: ObjectMeta { name: Some(ns.clone()), ..Default::default() }, ..Default::default() };
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("creating namespace {ns}: {e}"),
    }
    ns
}

/// The controllers for one namespace; dropping the guard stops them.
pub struct Controllers(tokio::sync::watch::Sender<bool>);

impl Drop for Controllers {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}

/// Starts the controllers for `ns`, with the default node-access policy.
pub fn start_controllers(client: &Client, ns: &str) -> Controllers {
    start_controllers_with(client, ns, Policy::default())
}

/// Like [`start_controllers`], with a node-access policy; the node plan goes to `ns` too.
pub fn start_controllers_with(client: &Client, ns: &str, policy: Policy) -> Controllers {
    start_controllers_tls(client, ns, policy, TlsSettings::default())
}

/// Like [`start_controllers_with`], with certificate lifetimes; the operator's CA Secret goes to `ns` too.
pub fn start_controllers_tls(client: &Client, ns: &str, policy: Policy, tls: TlsSettings) -> Controllers {
    let settings = Settings {
        cluster_domain: "cluster.local".into(),
        default_image: "wharf-registry:test".into(),
        node: NodeSettings { namespace: ns.to_string(), policy },
        tls,
    };
    let ctx = Arc::new(Context::new(client.clone(), settings, Metrics::default(), None));
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(controller::run(ctx, vec![Scope::Namespace(ns.to_string())], rx));
    Controllers(tx)
}

/// Calls `f` every 100 ms until it returns `Some`, for at most 60 s.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..600 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after 60s waiting for: {what}");
}

/// `(status, reason, message)` of a condition of a Registry.
pub fn condition(r: &Registry, type_: &str) -> Option<(String, String, String)> {
    let c = r.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}
