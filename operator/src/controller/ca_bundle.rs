//! The CA bundle in namespaces that hold no Wharf resource but ask for it
//! (label `wharf.dev/ca-bundle: "true"`), so a Job there can push to a
//! registry over verified TLS. Resources publish it in their own namespace
//! during reconcile (`reconcile::serving_cert`). With watched namespaces
//! configured, the operator may not list namespaces: each watched namespace
//! gets the bundle at start instead.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

use crate::context::Context;
use crate::names;
use crate::reconcile::serving_cert::{BundleFor, operator_ca, publish_ca_bundle};

use super::Scope;

/// Publishes the bundle where asked until `stop` resolves.
pub async fn run(ctx: Arc<Context>, scopes: Vec<Scope>, stop: impl Future<Output = ()>) {
    tokio::select! {
        () = publish_all(&ctx, &scopes) => {}
        () = stop => {}
    }
}

async fn publish_all(ctx: &Context, scopes: &[Scope]) {
    if !scopes.contains(&Scope::All) {
        for scope in scopes {
            if let Scope::Namespace(ns) = scope {
                publish(ctx, ns).await;
            }
        }
        return;
    }
    let selector = format!("{}=true", names::LABEL_CA_BUNDLE);
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let namespaces = watcher(api, watcher::Config::default().labels(&selector)).default_backoff().applied_objects();
    let mut namespaces = std::pin::pin!(namespaces);
    while let Some(next) = namespaces.next().await {
        match next {
            Ok(ns) if ns.metadata.deletion_timestamp.is_none() => publish(ctx, &ns.name_any()).await,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "watching namespaces for the CA bundle label"),
        }
    }
}

async fn publish(ctx: &Context, namespace: &str) {
    let result = match operator_ca(ctx).await {
        Ok(ca) => publish_ca_bundle(&ctx.client, BundleFor::Namespace(namespace), ca.cert_pem()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => tracing::info!(namespace, "CA bundle published"),
        Err(e) => tracing::warn!(namespace, error = %e, "could not publish the CA bundle"),
    }
}
