//! `notifications` in a Registry reaches the registry whole: the rendered
//! config.yml parses with wharf-registry's own parser, each header taken
//! from a Secret is a file path in the ConfigMap and a read-only Secret
//! volume at that path in the pod, and no Secret value is in the ConfigMap.

mod example_files;

use k8s_openapi::api::core::v1::{PodSpec, Volume};
use wharf_operator::names::CONFIG_KEY;
use wharf_operator::reconcile::build::build;
use wharf_operator::render::{parse, validate_input};
use wharf_registry::config::Config;
use wharf_registry::config::notifications::Format;

use example_files::{examples, settings};

const EXAMPLE: &str = include_str!("../../examples/registry-notifications.yaml");

#[test]
fn secret_headers_are_mounted_files_and_the_registry_reads_the_config() {
    assert!(examples().iter().any(|p| p.ends_with("registry-notifications.yaml")), "the example is in examples/");
    let mut input = parse(EXAMPLE).expect("parses").remove(0);
    let v = validate_input(&mut input, "team-a", &settings()).expect("valid");
    let resources = build(&v).expect("builds");
    let yaml = resources.config_map.data.as_ref().and_then(|d| d.get(CONFIG_KEY)).cloned().expect("config.yml");
    let config = Config::from_yaml(&yaml, Vec::<(String, String)>::new())
        .unwrap_or_else(|e| panic!("wharf-registry refuses the rendered config: {e}\n{yaml}"));
    let n = config.notifications.as_ref().expect("notifications rendered");
    assert!(n.events.includereferences);
    assert_eq!(n.events.pullsample, Some(0.1));
    let ci = n.endpoints.iter().find(|e| e.name == "ci").expect("ci endpoint");
    assert_eq!(ci.url, "https://ci.example.com/registry-events");
    assert_eq!(ci.headers["X-Registry"], vec!["hooks".to_string()]);
    assert!(ci.ignored_actions().contains("pull"));
    assert!(ci.ignored_media_types().contains("application/octet-stream"));
    assert_eq!((ci.threshold(), ci.timeout().as_secs(), ci.backoff().as_secs()), (5, 2, 1));
    let knative = n.endpoints.iter().find(|e| e.name == "knative").expect("knative endpoint");
    assert_eq!((knative.format, knative.max_pending()), (Format::Cloudevents, 10000));

    // The Authorization header is a file, from the Secret's key, mounted read-only.
    let file = ci.headerfiles.get("Authorization").expect("Authorization from a file");
    assert!(!ci.headers.contains_key("Authorization"), "the token is not a plain header");
    let (dir, name) = file.rsplit_once('/').expect("a path");
    let pod: &PodSpec = resources.deployment.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod");
    let container = pod.containers.iter().find(|c| c.name == "registry").expect("registry container");
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == dir)
        .unwrap_or_else(|| panic!("nothing mounted at {dir}"));
    assert_eq!(mount.read_only, Some(true));
    assert!(mount.sub_path.is_none(), "a subPath mount would not follow a rotated Secret");
    let volume: &Volume = pod.volumes.iter().flatten().find(|v| v.name == mount.name).expect("the mount's volume");
    let secret = volume.secret.as_ref().expect("a Secret volume");
    assert_eq!(secret.secret_name.as_deref(), Some("ci-webhook"));
    let items = secret.items.as_ref().expect("one item");
    assert_eq!((items[0].key.as_str(), items[0].path.as_str()), ("authorization", name));

    // Nothing from the Secret is in the ConfigMap: only its path.
    assert!(!yaml.contains("Bearer") && !yaml.contains("ci-webhook"), "{yaml}");
}
