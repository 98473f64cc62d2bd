//! A `Registry` on S3 with three replicas, against a real kube-apiserver and
//! kube-controller-manager (`e2e/cluster/apiserver.sh start
//! --with-controller-manager`); run as tests/apiserver.rs says, with
//! `--test apiserver_s3`.
//!
//! There is no kubelet: the Deployment and ReplicaSet controllers create the
//! pods, and the test writes their status as a kubelet would (running,
//! ready or not, a pod IP). Readiness then travels the real way: ReplicaSet
//! and Deployment status from kube-controller-manager, the operator's
//! Deployment watch, the Registry's conditions. For the Degraded reason the
//! pod IP is a loopback address of this machine, where the test serves the
//! pod's `/debug/ready`.

mod harness;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use harness::{client, condition, eventually, install_crds, namespace, start_controllers};
use wharf_operator::crd::Registry;
use wharf_operator::names::{self, OwnerKind};
use wharf_registry::config::Config;

fn s3_registry(name: &str, replicas: i32, bucket: &str, credentials: bool) -> Registry {
    let mut s3 = json!({"bucket": bucket, "region": "us-east-1",
        "endpoint": "http://versitygw.s3.svc.cluster.local:7070", "forcePathStyle": true, "rootDirectory": "/wharf"});
    if credentials {
        s3["credentials"] = json!({"secretName": format!("{name}-s3")});
    }
    serde_json::from_value(json!({
        "apiVersion": "wharf.dev/v1alpha1", "kind": "Registry",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "storage": {"s3": s3}}
    }))
    .expect("registry")
}

async fn registry_pods(client: &Client, ns: &str, name: &str, count: usize) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = names::children_selector(OwnerKind::Registry, name);
    eventually(&format!("{count} pods of {name} (created by kube-controller-manager)"), || async {
        let list = pods.list(&ListParams::default().labels(&selector)).await.ok()?;
        (list.items.len() == count).then_some(list.items)
    })
    .await
}

/// What a kubelet would write for a pod whose registry container has run for a minute.
enum Kubelet<'a> {
    /// Running at `ip`, ready or not.
    Running { ip: IpAddr, ready: bool },
    /// Restarting after exiting with this log.
    Exiting { log: &'a str },
}

async fn play_kubelet(client: &Client, ns: &str, pod: &str, state: Kubelet<'_>) {
    let now = Timestamp::now();
    let started = (now - SignedDuration::from_secs(60)).to_string();
    let (ip, ready, container_state, last_state) = match state {
        Kubelet::Running { ip, ready } => (ip, ready, json!({"running": {"startedAt": started}}), json!({})),
        Kubelet::Exiting { log } => (
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            false,
            json!({"waiting": {"reason": "CrashLoopBackOff"}}),
            json!({"terminated": {"exitCode": 1, "reason": "Error", "message": log,
                "startedAt": started, "finishedAt": started}}),
        ),
    };
    let flag = if ready { "True" } else { "False" };
    let patch = json!({"status": {
        "phase": "Running", "podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}], "startTime": started,
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": started},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": now.to_string()},
            {"type": "Ready", "status": flag, "lastTransitionTime": now.to_string()},
        ],
        "containerStatuses": [{"name": "registry", "ready": ready, "started": true, "restartCount": 0,
            "image": "wharf-registry:test", "imageID": "", "state": container_state, "lastState": last_state}],
    }});
    Api::<Pod>::namespaced(client.clone(), ns)
        .patch_status(pod, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("writing the status of pod {pod}: {e}"));
}

fn secret_env(d: &Deployment, var: &str) -> Option<(String, String)> {
    let c = d.spec.as_ref()?.template.spec.as_ref()?.containers.iter().find(|c| c.name == "registry")?;
    let e = c.env.as_ref()?.iter().find(|e| e.name == var)?;
    let s = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
    Some((s.name.clone(), s.key.clone()))
}

#[tokio::test]
async fn an_s3_registry_with_three_replicas_shares_one_secret_and_becomes_ready() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "wharf-s3").await;
    let _controllers = start_controllers(&client, &ns);
    let secret = Secret {
        metadata: ObjectMeta { name: Some("shared-s3".into()), ..Default::default() },
        string_data: Some(
            [("accessKeyId".to_string(), "AKTEST".to_string()), ("secretAccessKey".to_string(), "sk".to_string())]
                .into(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), &ns).create(&PostParams::default(), &secret).await.expect("secret");
    let api: Api<Registry> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &s3_registry("shared", 3, "wharf-images", true)).await.expect("create");

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let d = eventually("Deployment shared", || async { deployments.get_opt("shared").await.ok().flatten() }).await;
    let spec = d.spec.as_ref().expect("spec");
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.strategy.as_ref().and_then(|s| s.type_.as_deref()), Some("RollingUpdate"));
    // One http.secret for every replica (an upload's state is signed with it),
    // and the key pair from the user's Secret, by reference.
    assert_eq!(secret_env(&d, "REGISTRY_HTTP_SECRET"), Some(("shared-http-secret".into(), "http-secret".into())));
    assert_eq!(secret_env(&d, "REGISTRY_STORAGE_S3_ACCESSKEY"), Some(("shared-s3".into(), "accessKeyId".into())));
    assert_eq!(secret_env(&d, "REGISTRY_STORAGE_S3_SECRETKEY"), Some(("shared-s3".into(), "secretAccessKey".into())));
    let pod_spec = spec.template.spec.as_ref().expect("pod spec");
    assert!(
        pod_spec.volumes.iter().flatten().all(|v| v.persistent_volume_claim.is_none()),
        "an S3 registry mounts no claim"
    );
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns).list(&Default::default()).await;
    assert!(claims.expect("list claims").items.is_empty(), "an S3 registry creates no claim");
    eventually("PodDisruptionBudget for 3 replicas", || async {
        Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns).get_opt("shared").await.ok().flatten()
    })
    .await;

    // The ConfigMap the pods mount is what wharf-registry accepts, with the
    // environment the Deployment sets.
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns).get("shared-config").await.expect("config");
    let text = cm.data.as_ref().and_then(|d| d.get("config.yml")).expect("config.yml").clone();
    let env = [
        ("REGISTRY_HTTP_SECRET", "x"),
        ("REGISTRY_STORAGE_S3_ACCESSKEY", "AKTEST"),
        ("REGISTRY_STORAGE_S3_SECRETKEY", "sk"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let config = Config::from_yaml(&text, env).unwrap_or_else(|e| panic!("the registry refuses it: {e}\n{text}"));
    let s3 = config.storage.s3.as_ref().expect("storage.s3");
    assert_eq!(s3.bucket.as_deref(), Some("wharf-images"));
    assert_eq!(s3.regionendpoint.as_deref(), Some("http://versitygw.s3.svc.cluster.local:7070"));
    assert_eq!((s3.forcepathstyle, s3.rootdirectory.as_deref()), (Some(true), Some("/wharf")));
    assert_eq!(s3.accesskey.as_deref(), Some("AKTEST"));
    assert!(config.storage.redirect.is_some_and(|r| r.disable));

    // Not Ready while no pod is.
    let r =
        eventually("status of shared", || async { api.get("shared").await.ok().filter(|r| r.status.is_some()) }).await;
    assert_eq!(condition(&r, "Ready").map(|c| c.0), Some("False".into()));

    // The three pods start and pass their readiness probe.
    for (i, pod) in registry_pods(&client, &ns, "shared", 3).await.iter().enumerate() {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 78, 0, 10 + i as u8));
        play_kubelet(&client, &ns, &pod.name_any(), Kubelet::Running { ip, ready: true }).await;
    }
    let r = eventually("shared Ready", || async {
        let r = api.get("shared").await.ok()?;
        (condition(&r, "Ready")?.0 == "True").then_some(r)
    })
    .await;
    let status = r.status.as_ref().expect("status");
    assert_eq!(status.ready_replicas, 3);
    assert_eq!(condition(&r, "Ready").map(|c| c.1), Some("Available".into()));
    assert_eq!(condition(&r, "Degraded").map(|c| c.0), Some("False".into()));
}

/// Serves `/debug/ready` at `addr` as a registry would: 503 with the reason
/// until `fixed` is set, then 200.
async fn serve_ready(addr: SocketAddr, fixed: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    let app = axum::Router::new().route(
        "/debug/ready",
        axum::routing::get(move || {
            let fixed = fixed.clone();
            async move {
                if fixed.load(Ordering::SeqCst) {
                    (axum::http::StatusCode::OK, "ok\n")
                } else {
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "not ready: bucket missing: the bucket does not exist\n",
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

#[tokio::test]
async fn a_registry_that_cannot_use_its_bucket_is_degraded_with_the_pods_reason() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "wharf-s3-degraded").await;
    let _controllers = start_controllers(&client, &ns);
    let api: Api<Registry> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &s3_registry("broken", 1, "missing", false)).await.expect("create");
    let pod = registry_pods(&client, &ns, "broken", 1).await.remove(0).name_any();

    // A container that keeps exiting: the end of its log is the reason.
    play_kubelet(&client, &ns, &pod, Kubelet::Exiting { log: "starting\nError: storage.s3: something refused\n" })
        .await;
    let (_, _, message) = eventually("Degraded RegistryExiting", || async {
        let c = condition(&api.get("broken").await.ok()?, "Degraded")?;
        (c.0 == "True" && c.1 == "RegistryExiting").then_some(c)
    })
    .await;
    assert_eq!(message, format!("pod {pod} keeps exiting: Error: storage.s3: something refused"));

    // A container that runs but is not ready: the operator asks it, on the
    // pod IP and the debug port, as the kubelet's probe does. A loopback
    // address of its own per run, so the fixed port cannot collide.
    let pid = std::process::id();
    let ip = Ipv4Addr::new(127, 77, (pid >> 8) as u8, pid as u8 | 1);
    let fixed = Arc::new(AtomicBool::new(false));
    let server = serve_ready(SocketAddr::new(ip.into(), names::DEBUG_CONTAINER_PORT as u16), fixed.clone()).await;
    play_kubelet(&client, &ns, &pod, Kubelet::Running { ip: ip.into(), ready: false }).await;
    let r = eventually("Degraded RegistryNotReady", || async {
        let r = api.get("broken").await.ok()?;
        (condition(&r, "Degraded")?.1 == "RegistryNotReady").then_some(r)
    })
    .await;
    let (status, _, message) = condition(&r, "Degraded").expect("Degraded");
    assert_eq!(status, "True");
    assert_eq!(message, format!("pod {pod} is not ready: bucket missing: the bucket does not exist"));
    let (status, reason, message) = condition(&r, "Ready").expect("Ready");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "RegistryNotReady"));
    assert!(message.starts_with("0 of 1 replicas ready: pod "), "{message}");

    // The bucket appears: the pod becomes ready and the condition clears.
    fixed.store(true, Ordering::SeqCst);
    play_kubelet(&client, &ns, &pod, Kubelet::Running { ip: ip.into(), ready: true }).await;
    eventually("Ready, no longer Degraded", || async {
        let r = api.get("broken").await.ok()?;
        (condition(&r, "Ready")?.0 == "True" && condition(&r, "Degraded")?.0 == "False").then_some(())
    })
    .await;
    server.abort();
}
