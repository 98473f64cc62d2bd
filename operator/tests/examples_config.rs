//! The operator never renders a `config.yml` the registry refuses: every
//! file in `examples/` is validated and built as a reconcile would, and the
//! config.yml of its ConfigMap is parsed by wharf-registry's own parser
//! (`Config::from_yaml`, what `wharf-registry serve` runs at start-up), with
//! the environment the Deployment gives the container (values from Secrets
//! replaced by dummies).

mod example_files;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::EnvVar;
use wharf_operator::names::CONFIG_KEY;
use wharf_operator::reconcile::build::build;
use wharf_operator::render::{parse, validate_input};
use wharf_registry::config::Config;

use example_files::{examples, settings};

/// The registry container's environment: literal values as they are, values
/// from a Secret as a dummy naming the Secret and key.
fn container_env(d: &Deployment) -> Vec<(String, String)> {
    let spec = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod spec");
    let container = spec.containers.iter().find(|c| c.name == "registry").expect("registry container");
    container
        .env
        .iter()
        .flatten()
        .map(|EnvVar { name, value, value_from }| {
            let value = match (value, value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref())) {
                (Some(v), _) => v.clone(),
                (None, Some(s)) => format!("dummy-{}-{}", s.name, s.key),
                (None, None) => panic!("env {name}: neither a value nor a Secret key"),
            };
            (name.clone(), value)
        })
        .collect()
}

/// What one example resource gives the registry at start-up.
struct Rendered {
    /// The example file.
    name: String,
    /// config.yml.
    config: String,
    /// The container's environment.
    env: Vec<(String, String)>,
}

impl Rendered {
    fn parse(&self) -> Config {
        Config::from_yaml(&self.config, self.env.clone()).unwrap_or_else(|e| {
            panic!("{}: wharf-registry refuses the config.yml the operator renders: {e}\n{}", self.name, self.config)
        })
    }
}

/// Every example resource, rendered.
fn rendered() -> Vec<Rendered> {
    let mut out = Vec::new();
    for path in examples() {
        let text = std::fs::read_to_string(&path).expect("read example");
        for mut input in parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
            let v =
                validate_input(&mut input, "team-a", &settings()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let resources = build(&v).expect("builds");
            let config = resources
                .config_map
                .data
                .as_ref()
                .and_then(|d| d.get(CONFIG_KEY))
                .cloned()
                .expect("config.yml in the ConfigMap");
            let env = container_env(&resources.deployment);
            out.push(Rendered { name: path.display().to_string(), config, env });
        }
    }
    out
}

#[test]
fn the_registry_accepts_every_rendered_config() {
    let all = rendered();
    assert!(all.len() >= 7, "one config per example resource, found {}", all.len());
    for r in &all {
        r.parse();
    }
}

#[test]
fn s3_examples_reach_the_registry_with_their_bucket_and_keys() {
    let all = rendered();
    let s3: Vec<&Rendered> = all.iter().filter(|r| r.config.contains("\n  s3:\n")).collect();
    assert!(s3.len() >= 2, "the in-cluster S3 and the Aliyun OSS examples, found {}", s3.len());
    for r in s3 {
        let (name, parsed) = (&r.name, r.parse());
        let s = parsed.storage.s3.as_ref().unwrap_or_else(|| panic!("{name}: no storage.s3"));
        assert_eq!(s.bucket.as_deref(), Some("wharf-images"), "{name}");
        assert!(s.regionendpoint.as_deref().is_some_and(|e| e.starts_with("http")), "{name}");
        assert_eq!(s.rootdirectory.as_deref(), Some("/registry"), "{name}");
        // The key pair arrives through the environment, never through the ConfigMap.
        assert!(!r.config.contains("accesskey") && !r.config.contains("secretkey"), "{name}: keys in config.yml");
        let secret_of = |var: &str| r.env.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone());
        assert_eq!(s.accesskey, secret_of("REGISTRY_STORAGE_S3_ACCESSKEY"), "{name}");
        assert!(s.accesskey.as_deref().is_some_and(|k| k.ends_with("-accessKeyId")), "{name}: {:?}", s.accesskey);
        assert_eq!(s.secretkey, secret_of("REGISTRY_STORAGE_S3_SECRETKEY"), "{name}");
        // Streamed through the registry unless the spec asks for redirects:
        // a presigned URL names the endpoint, which the nodes may not reach.
        assert!(parsed.storage.redirect.is_some_and(|r| r.disable), "{name}: redirect not disabled");
        assert!(parsed.http.secret.is_some(), "{name}: replicas must share http.secret");
    }
    let by_name = |n: &str| all.iter().find(|r| r.name.ends_with(n)).unwrap_or_else(|| panic!("no {n}")).parse();
    let oss = by_name("registry-s3-aliyun-oss.yaml");
    assert_eq!(oss.storage.s3.as_ref().and_then(|s| s.forcepathstyle), Some(false), "OSS is virtual-hosted");
    let gw = by_name("registry-s3-htpasswd.yaml");
    let s = gw.storage.s3.as_ref().expect("s3");
    assert_eq!((s.forcepathstyle, s.chunksize), (Some(true), Some(16 << 20)));
}
