//! registry:2's `config.yml`, read the same way: YAML, then `REGISTRY_*`
//! environment overrides, then typed parsing that refuses every key it does
//! not support by its full path. Nothing is silently ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

pub mod algorithm;
pub mod auth;
mod env;
pub mod gc;
pub mod mirror;
pub mod notifications;
pub mod quota;
pub mod realm;
pub mod retention;
pub mod search;
mod storage;
mod trusted_proxies;
pub mod ui;
mod values;
pub use auth::*;
pub use retention::*;
pub use storage::*;
pub use trusted_proxies::TrustedProxies;
pub use values::*;

/// The configuration used when `serve` is given no file: a development
/// registry on loopback that needs no other service.
pub const DEFAULT_CONFIG: &str = r#"
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: ./var/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000
"#;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Value>,
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub storage: Storage,
    #[serde(default)]
    pub http: Http,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// The mirror (pull-through cache); registry:2 calls this section `proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<mirror::MirrorConfig>,
    #[serde(default)]
    pub health: Health,
    /// Webhook endpoints for push, pull, mount and delete events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<notifications::Notifications>,
    /// wharf: the search index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<search::Search>,
    /// wharf: the web UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<ui::Ui>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<LogLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatter: Option<LogFormatter>,
    /// Static fields added to every log line.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accesslog: Option<AccessLog>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLog {
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormatter {
    Text,
    Json,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(
        default,
        deserialize_with = "scalar_string",
        serialize_with = "redact",
        skip_serializing_if = "Option::is_none"
    )]
    pub secret: Option<String>,
    #[serde(default)]
    pub relativeurls: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draintimeout: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug: Option<Debug>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2: Option<Http2>,
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For`,
    /// `-Host` and `-Proto` headers are believed. Empty: nobody's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trustedproxies: Vec<String>,
    /// Connection hardening (see `server::Limits`); Go's http.Server names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readheadertimeout: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idletimeout: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlshandshaketimeout: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxconnections: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub certificate: String,
    pub key: String,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Http2 {
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Debug {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<Prometheus>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Prometheus {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storagedriver: Option<StorageHealth>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageHealth {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "ten_seconds")]
    pub interval: GoDuration,
    #[serde(default = "three")]
    pub threshold: u32,
}

fn ten_seconds() -> GoDuration {
    GoDuration(Duration::from_secs(10))
}
fn three() -> u32 {
    3
}

/// Storage drivers registry:2 has that this build does not, with what to do instead.
const UNSUPPORTED_DRIVERS: [(&str, &str); 5] = [
    (
        "oss",
        "the oss driver is not supported; Aliyun OSS speaks the S3 API: use storage.s3 with \
         regionendpoint: https://s3.oss-<region>.aliyuncs.com and forcepathstyle: false",
    ),
    ("azure", "Azure Blob storage is not supported; use filesystem or s3"),
    ("gcs", "Google Cloud Storage is not supported; GCS has an S3-compatible API, use the s3 driver"),
    ("swift", "OpenStack Swift is not supported; use filesystem or s3"),
    ("inmemory", "the inmemory driver is not supported; use filesystem with a temporary directory"),
];

impl Config {
    /// Parses YAML text, applies `REGISTRY_*` overrides from `env`, and validates.
    pub fn from_yaml(text: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let mut tree: Value = serde_yaml::from_str(text)?;
        if tree.is_null() {
            tree = Value::Mapping(Mapping::new());
        }
        env::apply_env(&mut tree, env)?;
        check_known_unsupported(&tree)?;
        let config: Config = serde_path_to_error::deserialize(tree).map_err(|e| {
            let path = e.path().to_string();
            key_error(if path == "." { "config" } else { &path }, e.into_inner().to_string())
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(path: &str) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_string(), source })?;
        Config::from_yaml(&text, std::env::vars())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(v) = &self.version {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            };
            if s != "0.1" {
                return Err(key_error("version", format!("only version 0.1 exists, got `{s}`")));
            }
        }
        match (&self.storage.filesystem, &self.storage.s3) {
            (None, None) => {
                return Err(key_error(
                    "storage",
                    "no storage driver configured; set storage.filesystem.rootdirectory or storage.s3",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(key_error("storage", "set one storage driver: filesystem or s3, not both"));
            }
            (None, Some(s3)) => s3.validate().map_err(|(key, why)| key_error(key, why))?,
            (Some(_), None) => {}
        }
        if let Some(cache) = &self.storage.cache
            && let Some(bd) = &cache.blobdescriptor
            && bd != "inmemory"
        {
            return Err(key_error(
                "storage.cache.blobdescriptor",
                format!("`{bd}` is not supported; only inmemory is"),
            ));
        }
        if let Some(r) = &self.storage.retention {
            r.validate()?;
        }
        if let Some(s) = &self.search {
            s.validate()?;
        }
        if let Some(u) = &self.ui {
            u.validate()?;
        }
        if let Some(net) = &self.http.net
            && net != "tcp"
        {
            return Err(key_error("http.net", format!("`{net}` is not supported; only tcp is")));
        }
        if let Some(p) = &self.http.prefix
            && !p.is_empty()
            && !p.starts_with('/')
        {
            return Err(key_error("http.prefix", "must start with /"));
        }
        if let Some(auth) = &self.auth {
            auth.validate()?;
        }
        TrustedProxies::parse(&self.http.trustedproxies).map_err(|m| key_error("http.trustedproxies", m))?;
        for (key, d) in [
            ("http.readheadertimeout", self.http.readheadertimeout),
            ("http.idletimeout", self.http.idletimeout),
            ("http.tlshandshaketimeout", self.http.tlshandshaketimeout),
        ] {
            if d.is_some_and(|d| d.0.is_zero()) {
                return Err(key_error(key, "must be more than 0: a connection would be closed at once"));
            }
        }
        if self.storage.gc.as_ref().is_some_and(|g| g.enabled && g.interval.0.is_zero()) {
            return Err(key_error("storage.gc.interval", "must be more than 0"));
        }
        if self.storage.gc.as_ref().is_some_and(|g| g.enabled)
            && self.storage.maintenance.as_ref().and_then(|m| m.readonly).is_some_and(|r| r.enabled)
        {
            return Err(key_error("storage.gc", "cannot run on a read-only registry (storage.maintenance.readonly)"));
        }
        if self.http.maxconnections == Some(0) {
            return Err(key_error("http.maxconnections", "must be at least 1"));
        }
        // Pull-through cache (issue 4), including the safe-start rule of seed 004.
        if let Some(proxy) = &self.proxy {
            proxy.validate(self.auth.is_some())?;
        }
        quota::validate(&self.storage.quotas)?;
        if let Some(n) = &self.notifications {
            n.validate()?;
        }
        Ok(())
    }

    pub fn root_directory(&self) -> String {
        self.storage
            .filesystem
            .as_ref()
            .and_then(|f| f.rootdirectory.clone())
            .unwrap_or_else(|| "/var/lib/registry".to_string())
    }

    /// The listen address, with Go's `:5000` meaning all interfaces.
    pub fn listen_addr(&self) -> String {
        normalize_addr(self.http.addr.as_deref().unwrap_or(":5000"))
    }

    pub fn delete_enabled(&self) -> bool {
        self.storage.delete.is_some_and(|d| d.enabled)
    }

    pub fn read_only(&self) -> bool {
        self.storage.maintenance.as_ref().and_then(|m| m.readonly).is_some_and(|r| r.enabled)
    }

    /// The effective configuration as YAML, secrets redacted.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

pub fn normalize_addr(addr: &str) -> String {
    if addr.starts_with(':') { format!("0.0.0.0{addr}") } else { addr.to_string() }
}

fn check_known_unsupported(tree: &Value) -> Result<(), ConfigError> {
    if let Some(storage) = tree.get("storage").and_then(Value::as_mapping) {
        for (driver, why) in UNSUPPORTED_DRIVERS {
            if storage.contains_key(driver) {
                return Err(key_error(&format!("storage.{driver}"), why));
            }
        }
    }
    if let Some(tls) = tree.get("http").and_then(|h| h.get("tls"))
        && tls.get("letsencrypt").is_some()
    {
        return Err(key_error(
            "http.tls.letsencrypt",
            "Let's Encrypt is not supported; mount a certificate (cert-manager in Kubernetes)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_yaml(text, env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    const STOCK: &str = r#"
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"#;

    #[test]
    fn the_stock_registry2_config_loads() {
        let c = load(STOCK, &[]).unwrap();
        assert_eq!(c.root_directory(), "/var/lib/registry");
        assert_eq!(c.listen_addr(), "0.0.0.0:5000");
        assert_eq!(c.health.storagedriver.as_ref().unwrap().interval.0, Duration::from_secs(10));
        assert!(!c.delete_enabled());
    }

    /// Regression (fuzz/corpus/config/tagged-root): an override under a
    /// tagged mapping hit `unreachable!` in `entry`. Panics on the old code.
    #[test]
    fn env_overrides_look_through_yaml_tags() {
        let yaml = "!tag\nstorage: {filesystem: {rootdirectory: /x}}\n";
        let env = [("REGISTRY_HTTP_ADDR", ":6000"), ("REGISTRY_STORAGE_DELETE_ENABLED", "true")];
        match load(yaml, &env) {
            Ok(c) => assert_eq!((c.listen_addr().as_str(), c.delete_enabled()), ("0.0.0.0:6000", true)),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        let c =
            load("storage: !tag {filesystem: {rootdirectory: /x}}\n", &[("REGISTRY_STORAGE_DELETE_ENABLED", "true")]);
        assert!(c.is_ok_and(|c| c.delete_enabled() && c.root_directory() == "/x"));
    }

    #[test]
    fn env_overrides_as_registry2() {
        let c = load(
            STOCK,
            &[
                ("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/data"),
                ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
                ("REGISTRY_HTTP_SECRET", "123456"),
                ("REGISTRY_HTTP_ADDR", "127.0.0.1:0"),
                ("REGISTRY_LOG_LEVEL", "debug"),
                ("UNRELATED", "x"),
            ],
        )
        .unwrap();
        assert_eq!(c.root_directory(), "/data");
        assert!(c.delete_enabled());
        assert_eq!(c.http.secret.as_deref(), Some("123456"));
        assert_eq!(c.listen_addr(), "127.0.0.1:0");
        assert_eq!(c.log.level, Some(LogLevel::Debug));
        assert!(c.to_yaml().contains("<redacted>"), "secrets are redacted");
        assert!(!c.to_yaml().contains("123456"));
    }

    #[test]
    fn unknown_keys_are_refused_by_path() {
        let e = load("storage:\n  filesystem:\n    rootdirectoy: /x\n", &[]).unwrap_err().to_string();
        assert!(e.contains("storage.filesystem") && e.contains("rootdirectoy"), "{e}");
        let e = load("notifications: {bogus: 1}\nstorage: {filesystem: {}}\n", &[]).unwrap_err().to_string();
        assert!(e.contains("notifications") && e.contains("bogus"), "{e}");
        let e = load(STOCK, &[("REGISTRY_HTTP_BOGUS", "1")]).unwrap_err().to_string();
        assert!(e.contains("http") && e.contains("bogus"), "{e}");
        let e = load("storage: {filesystem: {}}\nhttp: {draintimeout: soon}\n", &[]).unwrap_err().to_string();
        assert!(e.contains("http.draintimeout") && e.contains("soon"), "{e}");
    }

    #[test]
    fn unsupported_drivers_say_why() {
        let e = load("storage:\n  oss:\n    bucket: b\n", &[]).unwrap_err().to_string();
        assert!(e.starts_with("storage.oss:") && e.contains("S3"), "{e}");
        let e = load("storage: {filesystem: {}, cache: {blobdescriptor: redis}}", &[]).unwrap_err().to_string();
        assert!(e.contains("redis"), "{e}");
    }

    #[test]
    fn go_durations() {
        assert_eq!(GoDuration::parse("10s"), Some(Duration::from_secs(10)));
        assert_eq!(GoDuration::parse("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(GoDuration::parse("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(GoDuration::parse("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(GoDuration::parse("10"), None);
        assert_eq!(GoDuration::parse("abc"), None);
    }

    /// Regression (fuzz/corpus/config/duration-overflow): a duration past
    /// u64 seconds panicked in `Duration::from_secs_f64` at startup.
    #[test]
    fn huge_durations_are_refused_not_a_panic() {
        assert_eq!(GoDuration::parse("99999999999999999999999h"), None);
        assert_eq!(GoDuration::parse(&format!("{}s", "9".repeat(400))), None);
        let yaml =
            "storage: {filesystem: {rootdirectory: /x}, maintenance: {uploadpurging: {age: 99999999999999999999999h}}}";
        assert!(load(yaml, &[]).is_err_and(|e| e.to_string().contains("age")));
        let env =
            [("REGISTRY_PROXY_TTL", "99999999999999999999999h"), ("REGISTRY_PROXY_REMOTEURL", "https://r.example")];
        assert!(load("storage: {filesystem: {rootdirectory: /x}}", &env).is_err());
    }

    #[test]
    fn the_default_config_is_valid() {
        let c = load(DEFAULT_CONFIG, &[]).unwrap();
        assert_eq!(c.listen_addr(), "127.0.0.1:5000");
        assert_eq!(c.root_directory(), "./var/registry");
    }
}
