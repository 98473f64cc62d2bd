//! API server tests for a Registry's upkeep (issue 13): the CEL rules of
//! `garbageCollection`, `retention` and `quotas` as the real API server
//! applies them, and the switch from a CronJob schedule to online
//! collection (the CronJob is pruned, config.yml gets `storage.gc`), and
//! `status.garbageCollection` / `status.quotas` read from a ready pod's
//! debug port (served by the test on a loopback pod IP, the pod's status
//! written as a kubelet would).
//!
//! Run with
//!   WHARF_KUBECONFIG=/path/to/kubeconfig cargo test -p wharf-operator --features apiserver-tests --test apiserver_upkeep
//! (scripts/operator-it.sh runs it).

mod harness;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use harness::{client, eventually, install_crds, namespace, start_controllers};
use wharf_operator::crd::{QuotaUse, Registry};
use wharf_operator::names::{self, OwnerKind};

fn registry(name: &str, extra: Value) -> Registry {
    let mut spec = json!({"storage": {"emptyDir": {}}});
    spec.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
    serde_json::from_value(json!({
        "apiVersion": "wharf.dev/v1alpha1", "kind": "Registry", "metadata": {"name": name}, "spec": spec
    }))
    .expect("registry")
}

#[tokio::test]
async fn cel_refuses_impossible_upkeep_with_readable_messages() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "wharf-upkeep-cel").await;
    let api: Api<Registry> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams { dry_run: true, ..PostParams::default() };

    for (extra, words) in [
        (
            json!({"garbageCollection": {"schedule": "0 3 * * 0", "online": true}}),
            "set exactly one of schedule (a CronJob) and online: true",
        ),
        (
            json!({"garbageCollection": {"schedule": "@daily", "interval": "1h"}}),
            "interval applies only with online: true",
        ),
        (json!({"garbageCollection": {"online": true, "minAge": "2d"}}), "minAge must be a Go duration"),
        (
            json!({"garbageCollection": {"schedule": "@daily"}, "retention": {"policies": [{"repositories": ["**"]}]}}),
            "needs garbageCollection.online: true",
        ),
        (json!({"retention": {"policies": [{"repositories": ["**"]}]}}), "needs garbageCollection.online: true"),
        (
            json!({"garbageCollection": {"online": true}, "retention": {"policies": [{"repositories": ["**"],
                "keepTags": [{"mostRecentlyPushedCount": -1}]}]}}),
            "must not be negative",
        ),
        (
            json!({"quotas": [{"repositories": "team-a/**", "limit": "50GB"}]}),
            "quotas[].limit must be bytes or a whole number",
        ),
    ] {
        let err = api.create(&pp, &registry("bad", extra.clone())).await.expect_err("refused");
        assert!(err.to_string().contains(words), "{extra}: {err}");
    }

    for extra in [
        json!({"garbageCollection": {"schedule": "0 3 * * 0"}}),
        json!({"garbageCollection": {"online": true, "interval": "30m", "minAge": "2h", "deleteUntagged": true},
            "retention": {"delay": "24h", "policies": [{"repositories": ["ci/**"], "deleteUntagged": true,
                "keepTags": [{"patterns": ["^v"], "pushedWithin": "168h", "mostRecentlyPulledCount": 3}]}]},
            "quotas": [{"repositories": "team-a/**", "limit": "50Gi"}]}),
    ] {
        api.create(&pp, &registry("good", extra.clone())).await.unwrap_or_else(|e| panic!("{extra}: {e}"));
    }
}

#[tokio::test]
async fn online_collection_replaces_the_cronjob() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "wharf-upkeep-gc").await;
    let _controllers = start_controllers(&client, &ns);
    let api: Api<Registry> = Api::namespaced(client.clone(), &ns);
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), &ns);
    let configs: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

    let scheduled = json!({"garbageCollection": {"schedule": "@daily", "minAge": "90m", "deleteUntagged": true}});
    api.create(&PostParams::default(), &registry("reg", scheduled)).await.expect("create");
    let job = eventually("the GC CronJob", || async { cronjobs.get_opt("reg-gc").await.ok().flatten() }).await;
    let args = job.spec.and_then(|s| s.job_template.spec?.template.spec?.containers[0].args.clone());
    assert_eq!(
        args.unwrap_or_default(),
        ["garbage-collect", "--min-age=90m", "-m", "/etc/wharf/config.yml"].map(String::from)
    );

    let online = json!({"spec": {"garbageCollection": {"schedule": null, "online": true, "interval": "30m"}}});
    api.patch("reg", &PatchParams::default(), &Patch::Merge(&online)).await.expect("switch to online");
    eventually("the CronJob pruned", || async {
        matches!(
            cronjobs.get_opt("reg-gc").await,
            Ok(None) | Ok(Some(CronJob { metadata: kube::api::ObjectMeta { deletion_timestamp: Some(_), .. }, .. }))
        )
        .then_some(())
    })
    .await;
    let config = eventually("config.yml with storage.gc", || async {
        let cm = configs.get_opt("reg-config").await.ok().flatten()?;
        let text = cm.data?.get("config.yml")?.clone();
        text.contains("gc:").then_some(text)
    })
    .await;
    let config: serde_yaml::Value = serde_yaml::from_str(&config).expect("yaml");
    let gc = &config["storage"]["gc"];
    assert_eq!(
        (gc["enabled"].as_bool(), gc["interval"].as_str(), gc["delay"].as_str(), gc["deleteuntagged"].as_bool()),
        (Some(true), Some("30m"), Some("90m"), Some(true))
    );
}

/// Writes what a kubelet would for a registry pod that runs, ready, at `ip`.
async fn play_ready_kubelet(pods: &Api<Pod>, pod: &str, ip: IpAddr) {
    let now = Timestamp::now();
    let started = (now - SignedDuration::from_secs(60)).to_string();
    let patch = json!({"status": {
        "phase": "Running", "podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}], "startTime": started,
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": started},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now.to_string()},
            {"type": "Ready", "status": "True", "lastTransitionTime": now.to_string()},
        ],
        "containerStatuses": [{"name": "registry", "ready": true, "started": true, "restartCount": 0,
            "image": "wharf-registry:test", "imageID": "", "state": {"running": {"startedAt": started}}}],
    }});
    pods.patch_status(pod, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("writing the status of pod {pod}: {e}"));
}

#[tokio::test]
async fn the_status_shows_the_last_collection_and_quota_use_a_ready_pod_reports() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "wharf-upkeep-status").await;
    let _controllers = start_controllers(&client, &ns);
    let api: Api<Registry> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let spec = json!({"garbageCollection": {"online": true},
        "quotas": [{"repositories": "team-a/**", "limit": "50Gi"}]});
    api.create(&PostParams::default(), &registry("reg", spec)).await.expect("create");
    let selector = names::children_selector(OwnerKind::Registry, "reg");
    let pod = eventually("a pod of reg (created by kube-controller-manager)", || async {
        pods.list(&ListParams::default().labels(&selector)).await.ok()?.items.into_iter().next()
    })
    .await
    .name_any();

    // The registry's debug port, on a loopback address of this run's own.
    let pid = std::process::id();
    let ip = Ipv4Addr::new(127, 78, (pid >> 8) as u8, pid as u8 | 1);
    let app = axum::Router::new()
        .route(
            "/debug/gc",
            axum::routing::get(|| async {
                r#"{"finishedAt":"2026-11-30T22:00:00Z","dryRun":false,"blobsDeleted":12,"bytesReclaimed":3145728,"manifestsDeleted":2,"durationSeconds":0.4}"#
            }),
        )
        .route(
            "/debug/quotas",
            axum::routing::get(|| async {
                r#"[{"repositories":"team-a/**","usedBytes":1048576,"limitBytes":53687091200}]"#
            }),
        );
    let addr = SocketAddr::new(ip.into(), names::DEBUG_CONTAINER_PORT as u16);
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    play_ready_kubelet(&pods, &pod, ip.into()).await;

    let status = eventually("status.garbageCollection and status.quotas", || async {
        let status = api.get("reg").await.ok()?.status?;
        (status.garbage_collection.is_some() && !status.quotas.is_empty()).then_some(status)
    })
    .await;
    let gc = status.garbage_collection.expect("garbageCollection");
    assert_eq!(gc.finished_at.as_deref(), Some("2026-11-30T22:00:00Z"));
    assert_eq!((gc.blobs_deleted, gc.bytes_reclaimed, gc.manifests_deleted, gc.error), (12, 3_145_728, 2, None));
    assert_eq!(
        status.quotas,
        [QuotaUse { repositories: "team-a/**".into(), used_bytes: 1_048_576, limit_bytes: 53_687_091_200 }]
    );

    // Neither configured any more: both leave the status.
    let off = json!({"spec": {"garbageCollection": null, "quotas": null}});
    api.patch("reg", &PatchParams::default(), &Patch::Merge(&off)).await.expect("turn off");
    eventually("status without garbageCollection and quotas", || async {
        let status = api.get("reg").await.ok()?.status?;
        (status.garbage_collection.is_none() && status.quotas.is_empty()).then_some(())
    })
    .await;
    server.abort();
}
