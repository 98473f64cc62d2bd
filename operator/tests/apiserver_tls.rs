//! API server tests for TLS by default (issue 15): the operator's CA made
//! once and kept, serving certificates issued with the registry's names,
//! renewed before they end (short lifetimes here), reissued when the names
//! change; the CA bundle ConfigMap; plain HTTP only when asked; the CEL
//! rules of `tls`; and `tls.issuerRef` creating a cert-manager Certificate
//! (cert-manager's CRD installed, no cert-manager controller: the test
//! writes the Secret as cert-manager would).
//!
//! Run with
//!   WHARF_KUBECONFIG=/path/to/kubeconfig cargo test -p wharf-operator --features apiserver-tests --test apiserver_tls
//! (scripts/operator-it.sh runs it).

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use harness::{client, condition, eventually, install_crds, namespace, start_controllers, start_controllers_tls};
use wharf_operator::crd::Registry;
use wharf_operator::node_access::policy::Policy;
use wharf_operator::pki;
use wharf_operator::settings::TlsSettings;

fn registry(name: &str, extra: Value) -> Registry {
    let mut spec = json!({"storage": {"emptyDir": {}}});
    spec.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
    serde_json::from_value(json!({
        "apiVersion": "wharf.dev/v1alpha1", "kind": "Registry", "metadata": {"name": name}, "spec": spec
    }))
    .expect("registry")
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    secret.data.as_ref()?.get(key).and_then(|b| String::from_utf8(b.0.clone()).ok())
}

async fn secret(client: &Client, ns: &str, name: &str) -> Option<Secret> {
    Api::<Secret>::namespaced(client.clone(), ns).get_opt(name).await.expect("get secret")
}

fn names_of(ns: &str, name: &str, extra: &[&str]) -> BTreeSet<String> {
    let mut out: BTreeSet<String> =
        [format!("{name}.{ns}.svc.cluster.local"), format!("{name}.{ns}.svc"), name.to_string()].into();
    out.extend(extra.iter().map(|s| s.to_string()));
    out
}

/// The leaf in `tls.crt` is signed by the certificate in `ca_pem`.
fn signed_by(leaf_pem: &str, ca_pem: &str) -> bool {
    let (_, leaf) = x509_parser::pem::parse_x509_pem(leaf_pem.as_bytes()).expect("leaf pem");
    let (_, ca) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes()).expect("ca pem");
    let (leaf, ca) = (leaf.parse_x509().expect("leaf"), ca.parse_x509().expect("ca"));
    leaf.verify_signature(Some(ca.public_key())).is_ok() && ca.is_ca()
}

async fn registry_status_url(client: &Client, ns: &str, name: &str) -> Option<String> {
    let r = Api::<Registry>::namespaced(client.clone(), ns).get(name).await.ok()?;
    r.status?.url
}

#[tokio::test]
async fn the_operator_ca_issues_renews_and_reissues_serving_certificates() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "wharf-tls-ca").await;
    let tls = TlsSettings {
        ca_lifetime: Duration::from_secs(86_400),
        cert_lifetime: Duration::from_secs(40),
        renew_before: Duration::from_secs(30),
        ingress_domains: vec!["example.test".into()],
    };
    let controllers = start_controllers_tls(&client, &ns, Policy::default(), tls.clone());
    let api: Api<Registry> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams::default();
    api.create(&pp, &registry("reg", json!({}))).await.expect("create reg");
    api.create(&pp, &registry("other", json!({"tls": {"enabled": true}}))).await.expect("create other");

    // One CA, in the operator's namespace.
    let ca = eventually("the CA Secret", || async { secret(&client, &ns, "wharf-ca").await }).await;
    assert_eq!(ca.type_.as_deref(), Some("kubernetes.io/tls"));
    let ca_pem = text(&ca, "tls.crt").expect("CA tls.crt");
    assert!(text(&ca, "tls.key").is_some_and(|k| k.contains("PRIVATE KEY")));

    // Each registry's certificate: its names, signed by the CA, ca.crt beside it.
    for name in ["reg", "other"] {
        let s = eventually("the serving certificate", || async { secret(&client, &ns, &format!("{name}-tls")).await })
            .await;
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        let cert = text(&s, "tls.crt").expect("tls.crt");
        assert_eq!(pki::facts(&cert).expect("facts").dns_names, names_of(&ns, name, &[]));
        assert!(signed_by(&cert, &ca_pem), "{name}-tls is not signed by the operator's CA");
        assert_eq!(text(&s, "ca.crt").as_deref(), Some(ca_pem.as_str()));
        assert_eq!(s.owner_references()[0].name, name, "the certificate goes with its registry");
    }
    let url = eventually("an https status.url", || async { registry_status_url(&client, &ns, "reg").await }).await;
    assert_eq!(url, format!("https://reg.{ns}.svc.cluster.local:5000"));
    let config = Api::<ConfigMap>::namespaced(client.clone(), &ns).get("reg-config").await.expect("config");
    let yml = config.data.as_ref().and_then(|d| d.get("config.yml")).expect("config.yml");
    assert!(yml.contains(&format!("host: https://reg.{ns}.svc.cluster.local:5000")), "{yml}");
    assert!(yml.contains("certificate: /etc/wharf/tls/tls.crt"), "{yml}");
    let deploy = Api::<Deployment>::namespaced(client.clone(), &ns).get("reg").await.expect("deployment");
    let volumes = deploy.spec.and_then(|s| s.template.spec).and_then(|p| p.volumes).unwrap_or_default();
    assert!(
        volumes.iter().any(|v| v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some("reg-tls")),
        "the pods mount reg-tls"
    );

    // The CA bundle for Pods, owned by both registries.
    let bundle = eventually("the CA bundle ConfigMap", || async {
        let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns).get_opt("wharf-ca-bundle").await.ok()??;
        (cm.owner_references().len() == 2).then_some(cm)
    })
    .await;
    assert_eq!(bundle.data.as_ref().and_then(|d| d.get("ca.crt")), Some(&ca_pem));
    let owners: BTreeSet<String> = bundle.owner_references().iter().map(|o| o.name.clone()).collect();
    assert_eq!(owners, ["other".to_string(), "reg".to_string()].into());
    assert!(bundle.owner_references().iter().all(|o| o.controller != Some(true)));

    // Renewal: 30 s before the end of a 40 s certificate, so within ~10 s.
    let first = text(&secret(&client, &ns, "reg-tls").await.expect("reg-tls"), "tls.crt").expect("tls.crt");
    let first_end = pki::facts(&first).expect("facts").not_after;
    let renewed = eventually("the certificate renewed", || async {
        let cert = text(&secret(&client, &ns, "reg-tls").await?, "tls.crt")?;
        (cert != first).then_some(cert)
    })
    .await;
    assert!(pki::facts(&renewed).expect("facts").not_after > first_end);
    assert!(signed_by(&renewed, &ca_pem));

    // New names (an Ingress host) are issued at once.
    api.patch(
        "reg",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"ingress": {"host": "reg.example.test"}}})),
    )
    .await
    .expect("add ingress");
    eventually("the Ingress host in the certificate", || async {
        let cert = text(&secret(&client, &ns, "reg-tls").await?, "tls.crt")?;
        (pki::facts(&cert).ok()?.dns_names == names_of(&ns, "reg", &["reg.example.test"])).then_some(())
    })
    .await;

    // The CA is kept: a new operator process reads it and issues from it.
    drop(controllers);
    let _controllers = start_controllers_tls(&client, &ns, Policy::default(), tls);
    api.create(&pp, &registry("third", json!({}))).await.expect("create third");
    let third = eventually("third-tls", || async { secret(&client, &ns, "third-tls").await }).await;
    assert!(signed_by(&text(&third, "tls.crt").expect("tls.crt"), &ca_pem), "a restart made a new CA");
    let ca_again = secret(&client, &ns, "wharf-ca").await.expect("CA kept");
    assert_eq!(text(&ca_again, "tls.crt"), Some(ca_pem), "the CA Secret changed");
}

#[tokio::test]
async fn tls_enabled_false_is_plain_http() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "wharf-tls-off").await;
    let _controllers = start_controllers(&client, &ns);
    let api: Api<Registry> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &registry("plain", json!({"tls": {"enabled": false}}))).await.expect("create");
    let url = eventually("status.url", || async { registry_status_url(&client, &ns, "plain").await }).await;
    assert_eq!(url, format!("http://plain.{ns}.svc.cluster.local:5000"));
    let config = Api::<ConfigMap>::namespaced(client.clone(), &ns).get("plain-config").await.expect("config");
    let yml = config.data.as_ref().and_then(|d| d.get("config.yml")).expect("config.yml");
    assert!(!yml.contains("tls:"), "plain http asked, yet: {yml}");
    assert!(secret(&client, &ns, "plain-tls").await.is_none(), "a certificate was issued for a plain-http registry");
}

#[tokio::test]
async fn cel_refuses_conflicting_tls_fields() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "wharf-tls-cel").await;
    let api: Api<Registry> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams { dry_run: true, ..PostParams::default() };
    for (tls, words) in [
        (
            json!({"secretName": "a", "issuerRef": {"name": "ca", "kind": "ClusterIssuer"}}),
            "set at most one of secretName and issuerRef",
        ),
        (json!({"enabled": false, "secretName": "a"}), "secretName and issuerRef need enabled: true"),
    ] {
        let err = api.create(&pp, &registry("bad", json!({"tls": tls.clone()}))).await.expect_err("refused");
        assert!(err.to_string().contains(words), "{tls}: {err}");
    }
    for tls in
        [json!({}), json!({"enabled": false}), json!({"secretName": "mine"}), json!({"issuerRef": {"name": "x"}})]
    {
        api.create(&pp, &registry("good", json!({"tls": tls.clone()}))).await.unwrap_or_else(|e| panic!("{tls}: {e}"));
    }
}

/// cert-manager's `Certificate` CRD as far as this test needs it: the group,
/// kind and version cert-manager serves, the schema left open.
fn certificate_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "certificates.cert-manager.io"},
        "spec": {"group": "cert-manager.io", "scope": "Namespaced",
            "names": {"plural": "certificates", "singular": "certificate", "kind": "Certificate", "listKind": "CertificateList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .expect("crd")
}

#[tokio::test]
async fn issuer_ref_creates_a_cert_manager_certificate_and_serves_its_secret() {
    let client = client().await;
    install_crds(&client).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "certificates.cert-manager.io",
        &PatchParams::apply("wharf-tests").force(),
        &Patch::Apply(certificate_crd()),
    )
    .await
    .expect("cert-manager CRD");
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cert-manager.io", "v1", "Certificate"),
        "certificates",
    );
    let ns = namespace(&client, "wharf-tls-cm").await;
    let certs: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
    eventually("the Certificate API served", || async { certs.list(&Default::default()).await.ok() }).await;

    let _controllers = start_controllers(&client, &ns);
    let api: Api<Registry> = Api::namespaced(client.clone(), &ns);
    let spec = json!({"tls": {"issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}});
    api.create(&PostParams::default(), &registry("cm", spec)).await.expect("create");

    let cert = eventually("the Certificate", || async { certs.get_opt("cm").await.ok()? }).await;
    let spec = &cert.data["spec"];
    assert_eq!(spec["secretName"], "cm-tls");
    assert_eq!(spec["issuerRef"], json!({"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}));
    let dns: BTreeSet<String> =
        spec["dnsNames"].as_array().expect("dnsNames").iter().map(|v| v.as_str().expect("name").to_string()).collect();
    assert_eq!(dns, names_of(&ns, "cm", &[]));
    assert_eq!(cert.owner_references()[0].name, "cm");

    // Until cert-manager writes the Secret, the registry waits for it, saying so.
    let waiting = eventually("Degraded while the Secret is missing", || async {
        let r = api.get("cm").await.ok()?;
        condition(&r, "Degraded").filter(|c| c.0 == "True")
    })
    .await;
    assert_eq!(waiting.1, "SecretMissing", "{waiting:?}");
    assert!(waiting.2.contains("cm-tls") && waiting.2.contains("tls.issuerRef"), "{waiting:?}");
    assert!(secret(&client, &ns, "wharf-ca").await.is_some(), "the bundle's CA exists regardless");
    assert!(secret(&client, &ns, "cm-tls").await.is_none(), "the operator issued cert-manager's Secret itself");

    // cert-manager's Secret, from some other CA: the registry serves it, over https.
    let other_ca =
        pki::Ca::generate("corp CA", time::OffsetDateTime::now_utc(), Duration::from_secs(3600)).expect("ca");
    let names: Vec<String> = names_of(&ns, "cm", &[]).into_iter().collect();
    let leaf = other_ca.issue(&names, time::OffsetDateTime::now_utc(), Duration::from_secs(3600)).expect("leaf");
    let s: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cm-tls"}, "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": leaf.cert, "tls.key": leaf.key, "ca.crt": other_ca.cert_pem()}
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), &ns).create(&PostParams::default(), &s).await.expect("cm-tls");
    let url = eventually("an https status.url", || async { registry_status_url(&client, &ns, "cm").await }).await;
    assert_eq!(url, format!("https://cm.{ns}.svc.cluster.local:5000"));
    let deploy = eventually("the Deployment", || async {
        Api::<Deployment>::namespaced(client.clone(), &ns).get_opt("cm").await.ok()?
    })
    .await;
    let volumes = deploy.spec.and_then(|s| s.template.spec).and_then(|p| p.volumes).unwrap_or_default();
    assert!(volumes.iter().any(|v| v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some("cm-tls")));
}

#[tokio::test]
async fn a_namespace_that_asks_gets_the_ca_bundle() {
    let client = client().await;
    install_crds(&client).await;
    let home = namespace(&client, "wharf-tls-home").await;
    let asking = namespace(&client, "wharf-tls-asks").await;
    let silent = namespace(&client, "wharf-tls-silent").await;
    let label = json!({"metadata": {"labels": {"wharf.dev/ca-bundle": "true"}}});
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .patch(&asking, &PatchParams::default(), &Patch::Merge(label))
        .await
        .expect("label");

    // The bundle task alone, cluster-wide: it only reads labelled namespaces.
    let settings = wharf_operator::settings::Settings {
        node: wharf_operator::settings::NodeSettings { namespace: home.clone(), policy: Policy::default() },
        ..Default::default()
    };
    let ctx = std::sync::Arc::new(wharf_operator::context::Context::new(
        client.clone(),
        settings,
        wharf_operator::metrics::Metrics::default(),
        None,
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(wharf_operator::controller::ca_bundle::run(
        ctx,
        vec![wharf_operator::controller::Scope::All],
        wharf_operator::controller::stopped(&stop_rx),
    ));
    let bundle = eventually("the bundle in the labelled namespace", || async {
        Api::<ConfigMap>::namespaced(client.clone(), &asking).get_opt("wharf-ca-bundle").await.ok()?
    })
    .await;
    let ca = secret(&client, &home, "wharf-ca").await.expect("the CA, in the operator's namespace");
    assert_eq!(bundle.data.as_ref().and_then(|d| d.get("ca.crt")), text(&ca, "tls.crt").as_ref());
    let _ = stop_tx.send(true);
    task.await.expect("task");
    let unasked = Api::<ConfigMap>::namespaced(client.clone(), &silent).get_opt("wharf-ca-bundle").await.expect("get");
    assert!(unasked.is_none(), "a namespace that did not ask got the bundle");
}
