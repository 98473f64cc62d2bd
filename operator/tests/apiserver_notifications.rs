//! API server tests for a Registry's notifications (issue 16): the CEL
//! rules as the real API server applies them, and a header taken from a
//! Secret: Degraded `SecretMissing` until the Secret exists, then mounted
//! into the pods as a file whose path alone is in the ConfigMap.
//!
//! Run with
//!   WHARF_KUBECONFIG=/path/to/kubeconfig cargo test -p wharf-operator --features apiserver-tests --test apiserver_notifications
//! (scripts/operator-it.sh runs it).

mod harness;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use serde_json::{Value, json};

use harness::{client, condition, eventually, install_crds, namespace, start_controllers};
use wharf_operator::crd::Registry;

fn registry(name: &str, notifications: Value) -> Registry {
    serde_json::from_value(json!({
        "apiVersion": "wharf.dev/v1alpha1", "kind": "Registry", "metadata": {"name": name},
        "spec": {"storage": {"emptyDir": {}}, "notifications": notifications}
    }))
    .expect("registry")
}

#[tokio::test]
async fn cel_refuses_bad_endpoints_with_readable_messages() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "wharf-notify-cel").await;
    let api: Api<Registry> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams { dry_run: true, ..PostParams::default() };
    for (notifications, words) in [
        (json!({"endpoints": [{"name": "ci", "url": "ftp://ci.example.com"}]}), "must be an http:// or https:// URL"),
        (
            json!({"endpoints": [{"name": "ci", "url": "http://a.example"}, {"name": "ci", "url": "http://b.example"}]}),
            "each name once",
        ),
        (json!({"endpoints": [{"name": "CI", "url": "http://a.example"}]}), "must be a DNS label"),
        (json!({"endpoints": [{"name": "ci", "url": "http://a.example", "timeout": "1 s"}]}), "Go duration"),
        (
            json!({"endpoints": [{"name": "ci", "url": "http://a.example",
                "secretHeaders": [{"header": "Auth orization", "secretName": "s", "key": "k"}]}]}),
            "must be a header name",
        ),
    ] {
        let err = api.create(&pp, &registry("bad", notifications.clone())).await.expect_err("refused");
        assert!(err.to_string().contains(words), "{notifications}: {err}");
    }
    let good = json!({"includeReferences": true, "pullSamplePercent": 10, "endpoints": [{"name": "ci",
        "url": "https://ci.example.com/hook", "headers": {"X-Registry": "reg"}, "timeout": "2s", "backoff": "1s",
        "threshold": 5, "ignoredActions": ["pull"], "ignoredMediaTypes": ["application/octet-stream"],
        "format": "CloudEvents", "maxPending": 1000,
        "secretHeaders": [{"header": "Authorization", "secretName": "s", "key": "k"}]}]});
    api.create(&pp, &registry("good", good)).await.expect("a full spec is accepted");
}

#[tokio::test]
async fn a_secret_header_is_a_mounted_file_and_never_in_the_config_map() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "wharf-notify-secret").await;
    let _controllers = start_controllers(&client, &ns);
    let api: Api<Registry> = Api::namespaced(client.clone(), &ns);
    let notifications = json!({"endpoints": [{"name": "ci", "url": "https://ci.example.com/hook",
        "secretHeaders": [{"header": "Authorization", "secretName": "hook-token", "key": "authorization"}]}]});
    api.create(&PostParams::default(), &registry("reg", notifications)).await.expect("create");

    eventually("Degraded/SecretMissing naming hook-token", || async {
        let r = api.get("reg").await.ok()?;
        let (status, reason, message) = condition(&r, "Degraded")?;
        (status == "True" && reason == "SecretMissing" && message.contains("hook-token")).then_some(())
    })
    .await;

    let secret = Secret {
        metadata: ObjectMeta { name: Some("hook-token".into()), ..ObjectMeta::default() },
        data: Some(BTreeMap::from([("authorization".to_string(), ByteString(b"Bearer s3cr3t-t0ken".to_vec()))])),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), &ns).create(&PostParams::default(), &secret).await.expect("secret");

    let configs: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let text = eventually("config.yml with notifications", || async {
        let text = configs.get_opt("reg-config").await.ok().flatten()?.data?.get("config.yml")?.clone();
        text.contains("notifications:").then_some(text)
    })
    .await;
    assert!(!text.contains("s3cr3t") && !text.contains("Bearer"), "a Secret value in the ConfigMap:\n{text}");
    let config: serde_yaml::Value = serde_yaml::from_str(&text).expect("yaml");
    let ep = &config["notifications"]["endpoints"][0];
    assert_eq!(ep["url"].as_str(), Some("https://ci.example.com/hook"));
    let file = ep["headerfiles"]["Authorization"].as_str().expect("Authorization from a file").to_string();

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let pod =
        eventually("the Deployment", || async { deployments.get_opt("reg").await.ok().flatten()?.spec?.template.spec })
            .await;
    let (dir, name) = file.rsplit_once('/').expect("a path");
    let container = pod.containers.iter().find(|c| c.name == "registry").expect("registry container");
    let mount = container.volume_mounts.iter().flatten().find(|m| m.mount_path == dir).expect("mounted at the path");
    let volume = pod.volumes.iter().flatten().find(|v| v.name == mount.name).expect("its volume");
    let source = volume.secret.as_ref().expect("a Secret volume");
    assert_eq!(source.secret_name.as_deref(), Some("hook-token"));
    let item = &source.items.as_ref().expect("items")[0];
    assert_eq!((item.key.as_str(), item.path.as_str()), ("authorization", name));
    eventually("no longer Degraded", || async {
        let r = api.get("reg").await.ok()?;
        (condition(&r, "Degraded")?.0 == "False").then_some(())
    })
    .await;
}
