//! Integration tests against a real kube-apiserver (and, for garbage
//! collection, kube-controller-manager), e.g. from `e2e/cluster/apiserver.sh
//! start --with-controller-manager`.
//!
//! Run with
//!   WHARF_KUBECONFIG=/path/to/kubeconfig cargo test -p wharf-operator --features apiserver-tests --test apiserver
//! Without `WHARF_KUBECONFIG` every test fails with a message saying so. The
//! cargo feature keeps them out of a plain `cargo test --workspace`.
//!
//! Each test works in its own namespace and runs the controllers in-process
//! (no leader election, no image: the Deployments never get pods, which is
//! enough to check children, owner references, drift repair and status).

mod harness;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use harness::{client, eventually, install_crds, namespace, start_controllers, start_controllers_with};
use wharf_operator::crd::{Registry, RegistryMirror};
use wharf_operator::leader::{Attempt, LeaderElector, LeaseConfig};
use wharf_operator::names::ANNOTATION_CONFIG_HASH;
use wharf_operator::node_access::plan::NodePlan;
use wharf_operator::node_access::policy::Policy;

const BCRYPT_LINE: &str = "alice:$2y$05$4HZQUV/ziBUV6HmKTnyECu0UDtAjcA.AZnsqvtk9GmFyLyplr0jRG\n";

fn registry_yaml(name: &str, users_secret: &str) -> Registry {
    serde_json::from_value(json!({
        "apiVersion": "wharf.dev/v1alpha1", "kind": "Registry",
        "metadata": {"name": name},
        "spec": {
            "storage": {"emptyDir": {}},
            "auth": {"token": {"users": {"secretName": users_secret},
                "rules": [{"repository": "{user}/**", "users": ["*"], "actions": ["pull", "push"]}]}}
        }
    }))
    .expect("registry")
}

async fn create_users_secret(client: &Client, ns: &str, name: &str) {
    let secret = Secret {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        string_data: Some([("htpasswd".to_string(), BCRYPT_LINE.to_string())].into()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns).create(&PostParams::default(), &secret).await.expect("secret");
}

fn condition(r: &Registry, type_: &str) -> Option<(String, String)> {
    status_condition(&r.status, type_)
}

#[tokio::test]
async fn crds_install_and_cel_rejects_bad_specs_with_readable_messages() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "wharf-cel").await;
    let api: Api<Registry> = Api::namespaced(client.clone(), &ns);
    let bad = serde_json::from_value::<Registry>(json!({
        "apiVersion": "wharf.dev/v1alpha1", "kind": "Registry", "metadata": {"name": "bad"},
        "spec": {"replicas": 2, "storage": {"emptyDir": {}}}
    }))
    .expect("registry");
    let err = api.create(&PostParams::default(), &bad).await.expect_err("rejected");
    assert!(err.to_string().contains("emptyDir is local to each pod"), "{err}");

    let mirrors: Api<RegistryMirror> = Api::namespaced(client.clone(), &ns);
    let leaky = serde_json::from_value::<RegistryMirror>(json!({
        "apiVersion": "wharf.dev/v1alpha1", "kind": "RegistryMirror", "metadata": {"name": "leaky"},
        "spec": {"upstreams": [{"name": "docker.io", "url": "https://registry-1.docker.io",
            "credentials": {"secretName": "hub"}}], "storage": {"emptyDir": {}}}
    }))
    .expect("mirror");
    let err = mirrors.create(&PostParams::default(), &leaky).await.expect_err("rejected");
    assert!(err.to_string().contains("upstream credentials need client auth"), "{err}");
}

#[tokio::test]
async fn children_owned_drift_repaired_config_rolls_and_secret_wakes_degraded() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "wharf-reconcile").await;
    let _controllers = start_controllers(&client, &ns);
    let api: Api<Registry> = Api::namespaced(client.clone(), &ns);

    // Missing users Secret: Degraded with SecretMissing.
    api.create(&PostParams::default(), &registry_yaml("reg", "reg-users")).await.expect("create");
    eventually("Degraded/SecretMissing", || async {
        let r = api.get("reg").await.ok()?;
        (condition(&r, "Degraded") == Some(("True".into(), "SecretMissing".into()))).then_some(())
    })
    .await;

    // The Secret appears: the children are created without touching the Registry.
    create_users_secret(&client, &ns, "reg-users").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deployment =
        eventually("Deployment created", || async { deployments.get_opt("reg").await.ok().flatten() }).await;
    let owner = deployment.owner_references().first().cloned().expect("owner reference");
    assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.controller), ("Registry", "reg", Some(true)));
    for cm in ["reg-config", "reg-access"] {
        let c = Api::<ConfigMap>::namespaced(client.clone(), &ns).get(cm).await.expect(cm);
        assert_eq!(c.owner_references().first().map(|o| o.name.as_str()), Some("reg"));
    }
    let r = eventually("status.host", || async {
        let r = api.get("reg").await.ok()?;
        r.status.as_ref()?.host.clone().map(|_| r)
    })
    .await;
    let status = r.status.clone().expect("status");
    assert_eq!(status.host.as_deref(), Some(format!("reg.{ns}.svc.cluster.local:5000").as_str()));
    assert_eq!(status.realm.as_deref(), Some(format!("https://reg.{ns}.svc.cluster.local:5000/auth/token").as_str()));
    assert_eq!(condition(&r, "Degraded").map(|c| c.0), Some("False".into()));

    // An edit changes config.yml, so the hash changes and the pod template rolls.
    let hash = |d: &Deployment| {
        d.spec.as_ref()?.template.metadata.as_ref()?.annotations.as_ref()?.get(ANNOTATION_CONFIG_HASH).cloned()
    };
    let before = hash(&deployment).expect("hash");
    api.patch("reg", &PatchParams::default(), &Patch::Merge(json!({"spec": {"logLevel": "debug"}})))
        .await
        .expect("edit");
    eventually("config hash changes", || async {
        let d = deployments.get("reg").await.ok()?;
        hash(&d).filter(|h| *h != before)
    })
    .await;

    // A deleted child is recreated.
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let uid = services.get("reg").await.expect("service").uid();
    services.delete("reg", &DeleteParams::default()).await.expect("delete service");
    eventually("Service recreated", || async {
        let s = services.get_opt("reg").await.ok().flatten()?;
        (s.uid() != uid).then_some(())
    })
    .await;

    // The generated secrets exist and stay stable across a reconcile: an edit
    // makes one, and its status.observedGeneration says when it is done.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let key = secrets.get("reg-token-key").await.expect("signing key").data;
    let edited = api
        .patch("reg", &PatchParams::default(), &Patch::Merge(json!({"spec": {"logLevel": "warn"}})))
        .await
        .expect("edit");
    let generation = edited.metadata.generation.expect("generation");
    eventually("a reconcile of the new generation", || async {
        let r = api.get("reg").await.ok()?;
        (r.status.as_ref()?.observed_generation == Some(generation)).then_some(())
    })
    .await;
    assert_eq!(secrets.get("reg-token-key").await.expect("signing key").data, key);
}

/// The node plan the operator published in `ns`.
async fn node_plan(client: &Client, ns: &str) -> Option<NodePlan> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns).get_opt("wharf-node-access").await.ok()??;
    serde_json::from_str(cm.data?.get("plan.json")?).ok()
}

fn status_condition(status: &Option<wharf_operator::crd::RegistryStatus>, type_: &str) -> Option<(String, String)> {
    let c = status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone()))
}

#[tokio::test]
async fn node_access_maps_own_names_and_no_daemonset_runs_in_the_tenant_namespace() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "wharf-node-access").await;
    let _controllers = start_controllers(&client, &ns);
    let api: Api<Registry> = Api::namespaced(client.clone(), &ns);
    let reg: Registry = serde_json::from_value(json!({
        "apiVersion": "wharf.dev/v1alpha1", "kind": "Registry",
        "metadata": {"name": "nodes"},
        "spec": {"storage": {"emptyDir": {}}, "nodeAccess": {"enabled": true}}
    }))
    .expect("registry");
    api.create(&PostParams::default(), &reg).await.expect("create");

    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let cluster_ip = eventually("Service with a ClusterIP", || async {
        services.get_opt("nodes").await.ok().flatten()?.spec?.cluster_ip.filter(|ip| !ip.is_empty())
    })
    .await;
    let host = format!("nodes.{ns}.svc.cluster.local");
    eventually("the plan maps the FQDN to the ClusterIP", || async {
        let plan = node_plan(&client, &ns).await?;
        plan.entries
            .iter()
            .any(|e| e.ip == cluster_ip && e.host == host && e.owner == format!("{ns}/nodes"))
            .then_some(())
    })
    .await;
    eventually("status.nodeAccess", || async {
        api.get("nodes").await.ok()?.status?.node_access.filter(|s| s.contains(&format!("{host}:5000")))
    })
    .await;
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), &ns);
    assert!(
        daemonsets.list(&Default::default()).await.expect("list").items.is_empty(),
        "no DaemonSet in the tenant namespace"
    );

    api.patch("nodes", &PatchParams::default(), &Patch::Merge(json!({"spec": {"nodeAccess": {"enabled": false}}})))
        .await
        .expect("disable");
    eventually("the plan forgets it", || async { node_plan(&client, &ns).await?.entries.is_empty().then_some(()) })
        .await;
    eventually("status.nodeAccess cleared", || async {
        let r = api.get("nodes").await.ok()?;
        r.status.as_ref()?.node_access.is_none().then_some(())
    })
    .await;
}

fn mirror(name: &str, upstream: &str) -> RegistryMirror {
    serde_json::from_value(json!({
        "apiVersion": "wharf.dev/v1alpha1", "kind": "RegistryMirror",
        "metadata": {"name": name},
        "spec": {"upstreams": [{"name": upstream, "url": "https://registry.invalid"}],
                 "storage": {"emptyDir": {}}, "nodeAccess": {"enabled": true}}
    }))
    .expect("mirror")
}

#[tokio::test]
async fn a_tenant_mirror_cannot_redirect_docker_io_and_one_owner_holds_a_host() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "wharf-node-policy").await;
    let api: Api<RegistryMirror> = Api::namespaced(client.clone(), &ns);

    // Default policy: refused, visibly, and the plan carries nothing of it.
    let controllers = start_controllers(&client, &ns);
    api.create(&PostParams::default(), &mirror("hub", "docker.io")).await.expect("create");
    eventually("Degraded NodeAccessNotAllowed", || async {
        let m = api.get("hub").await.ok()?;
        (status_condition(&m.status, "Degraded")? == ("True".into(), "NodeAccessNotAllowed".into())).then_some(())
    })
    .await;
    let plan = eventually("a published plan", || node_plan(&client, &ns)).await;
    assert!(plan.hosts.iter().all(|h| h.host != "docker.io"), "{plan:?}");
    assert!(plan.entries.is_empty(), "all or nothing: {plan:?}");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    eventually("a NodeAccessNotAllowed event", || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items.iter().any(|e| e.reason.as_deref() == Some("NodeAccessNotAllowed")).then_some(())
    })
    .await;
    drop(controllers);

    // The admin allows the namespace: granted. A second mirror claiming the same host waits its turn.
    let policy = Policy::parse(&format!("upstreams: [{{namespaces: [{ns}], hosts: [docker.io]}}]")).expect("policy");
    let _controllers = start_controllers_with(&client, &ns, policy);
    eventually("hub routes docker.io", || async {
        let plan = node_plan(&client, &ns).await?;
        plan.hosts.iter().any(|h| h.host == "docker.io" && h.owner == format!("{ns}/hub")).then_some(())
    })
    .await;
    eventually("hub no longer Degraded", || async {
        let m = api.get("hub").await.ok()?;
        (status_condition(&m.status, "Degraded")?.0 == "False").then_some(())
    })
    .await;
    api.create(&PostParams::default(), &mirror("hub2", "docker.io")).await.expect("create hub2");
    eventually("hub2 Degraded HostClaimed", || async {
        let m = api.get("hub2").await.ok()?;
        (status_condition(&m.status, "Degraded")? == ("True".into(), "HostClaimed".into())).then_some(())
    })
    .await;
    api.delete("hub", &DeleteParams::default()).await.expect("delete hub");
    eventually("hub2 takes docker.io over", || async {
        let plan = node_plan(&client, &ns).await?;
        plan.hosts.iter().any(|h| h.host == "docker.io" && h.owner == format!("{ns}/hub2")).then_some(())
    })
    .await;
    eventually("hub2 no longer Degraded", || async {
        let m = api.get("hub2").await.ok()?;
        (status_condition(&m.status, "Degraded")?.0 == "False").then_some(())
    })
    .await;
}

#[tokio::test]
async fn deleting_the_registry_removes_its_children() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "wharf-gc").await;
    let _controllers = start_controllers(&client, &ns);
    create_users_secret(&client, &ns, "gone-users").await;
    let api: Api<Registry> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &registry_yaml("gone", "gone-users")).await.expect("create");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    eventually("Deployment created", || async { deployments.get_opt("gone").await.ok().flatten() }).await;
    api.delete("gone", &DeleteParams::foreground()).await.expect("delete");
    eventually("children removed by the garbage collector (needs kube-controller-manager)", || async {
        let d = deployments.get_opt("gone").await.ok()?;
        let c = Api::<ConfigMap>::namespaced(client.clone(), &ns).get_opt("gone-config").await.ok()?;
        (d.is_none() && c.is_none()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn lease_acquire_renew_and_step_down() {
    let client = client().await;
    let ns = namespace(&client, "wharf-lease").await;
    let config = |id: &str| LeaseConfig {
        name: "wharf-operator".into(),
        namespace: ns.clone(),
        identity: id.into(),
        lease_duration: Duration::from_secs(15),
        retry_period: Duration::from_secs(1),
    };
    let a = LeaderElector::new(client.clone(), config("a"));
    let b = LeaderElector::new(client.clone(), config("b"));
    assert_eq!(a.try_acquire_or_renew().await.expect("a"), Attempt::Leader);
    assert_eq!(b.try_acquire_or_renew().await.expect("b"), Attempt::Follower { holder: "a".into() });
    assert_eq!(a.try_acquire_or_renew().await.expect("a renews"), Attempt::Leader);
    a.step_down().await.expect("step down");
    assert_eq!(b.try_acquire_or_renew().await.expect("b takes over"), Attempt::Leader);
    let lease = Api::<Lease>::namespaced(client.clone(), &ns).get("wharf-operator").await.expect("lease");
    let spec = lease.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
}

#[tokio::test]
async fn a_reconcile_opens_one_span_per_step_under_its_own() {
    use tracing_subscriber::layer::SubscriberExt;

    let recorder = harness::spans::SpanRecorder::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(recorder.clone()))
        .expect("the only test that sets a global subscriber");
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "wharf-trace").await;
    let _controllers = start_controllers(&client, &ns);
    let api: Api<Registry> = Api::namespaced(client.clone(), &ns);
    let reg: Registry = serde_json::from_value(json!({
        "apiVersion": "wharf.dev/v1alpha1", "kind": "Registry",
        "metadata": {"name": "traced"},
        "spec": {"storage": {"emptyDir": {}}}
    }))
    .expect("registry");
    let generation = api.create(&PostParams::default(), &reg).await.expect("create").metadata.generation;
    eventually("a reconcile wrote status for the first generation", || async {
        let r = api.get("traced").await.ok()?;
        (r.status?.observed_generation == generation).then_some(())
    })
    .await;

    let opened: Vec<_> =
        recorder.opened().into_iter().filter(|o| o.namespace.as_deref() == Some(ns.as_str())).collect();
    assert!(opened.iter().any(|o| o.name == "reconcile"), "no reconcile span for {ns}: {opened:?}");
    for step in ["dereference", "validate", "build", "apply", "update_status"] {
        assert!(
            opened.iter().any(|o| o.name == step && o.ancestors.first().map(String::as_str) == Some("reconcile")),
            "no `{step}` span directly under a reconcile span of {ns}: {opened:?}"
        );
    }
    // The steps that call the API server do so inside their span: the
    // client's request spans open under them, not beside them.
    for step in ["dereference", "apply", "update_status"] {
        assert!(
            opened.iter().any(|o| o.ancestors.first().map(String::as_str) == Some(step)),
            "nothing ran inside a `{step}` span of {ns}: {opened:?}"
        );
    }
}
