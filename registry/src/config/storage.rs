//! `storage:`: the driver (filesystem or s3) and the settings around it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::values::GoDuration;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<Filesystem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<Enabled>,
    /// Storage limits per repository glob (`quota.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quotas: Vec<super::quota::Quota>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<Cache>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc: Option<super::gc::Gc>,
    /// Tag retention policies (issue 13): see `retention.rs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<super::retention::Retention>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Filesystem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootdirectory: Option<String>,
    /// Accepted for compatibility; reads use a thread per active transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxthreads: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Enabled {
    #[serde(default)]
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploadpurging: Option<UploadPurging>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly: Option<Enabled>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UploadPurging {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "week")]
    pub age: GoDuration,
    #[serde(default = "day")]
    pub interval: GoDuration,
    #[serde(default)]
    pub dryrun: bool,
}

fn yes() -> bool {
    true
}
fn week() -> GoDuration {
    GoDuration(Duration::from_secs(168 * 3600))
}
fn day() -> GoDuration {
    GoDuration(Duration::from_secs(24 * 3600))
}

impl Default for UploadPurging {
    fn default() -> Self {
        UploadPurging { enabled: true, age: week(), interval: day(), dryrun: false }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    /// Only `inmemory` is supported: parsed manifests are cached in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blobdescriptor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blobdescriptorsize: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    /// Blob GETs on s3 answer 307 to a presigned URL unless this is set.
    /// The filesystem backend never redirects.
    #[serde(default)]
    pub disable: bool,
}

/// `storage.s3`, with registry:2's keys and defaults. Numbers and booleans
/// may be written as strings too, as registry:2 (and its env overrides) allow.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct S3 {
    /// Optional: without it (and `secretkey`) the standard AWS chain applies
    /// (environment, web identity for IRSA, instance metadata).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::string")]
    pub accesskey: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "super::values::redact",
        deserialize_with = "lenient::string"
    )]
    pub secretkey: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "super::values::redact",
        deserialize_with = "lenient::string"
    )]
    pub sessiontoken: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::string")]
    pub regionendpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::boolean")]
    pub forcepathstyle: Option<bool>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::string")]
    pub rootdirectory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::boolean")]
    pub secure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::boolean")]
    pub skipverify: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::number")]
    pub chunksize: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::number")]
    pub multipartcopychunksize: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::number")]
    pub multipartcopymaxconcurrency: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::number")]
    pub multipartcopythresholdsize: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::string")]
    pub storageclass: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::boolean")]
    pub encrypt: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::string")]
    pub keyid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::string")]
    pub useragent: Option<String>,
    /// Accepted for compatibility: wharf logs S3 requests through its own
    /// log level (`log.level: debug`).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::string")]
    pub loglevel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::boolean")]
    pub v4auth: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::string")]
    pub objectacl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::boolean")]
    pub accelerate: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::boolean")]
    pub usedualstack: Option<bool>,
}

/// S3's own limits, which the settings must respect.
pub const S3_MIN_PART: u64 = 5 << 20;
pub const S3_MAX_PART: u64 = 5 << 30;

impl S3 {
    /// registry:2 uses 10 MiB; 16 MiB lets 10,000 parts hold a 156 GiB blob.
    pub const DEFAULT_CHUNK: u64 = 16 << 20;
    pub const DEFAULT_COPY_CHUNK: u64 = 32 << 20;
    pub const DEFAULT_COPY_CONCURRENCY: u64 = 100;
    pub const DEFAULT_COPY_THRESHOLD: u64 = 32 << 20;

    pub fn chunk_size(&self) -> u64 {
        self.chunksize.unwrap_or(S3::DEFAULT_CHUNK)
    }

    pub fn copy_chunk_size(&self) -> u64 {
        self.multipartcopychunksize.unwrap_or(S3::DEFAULT_COPY_CHUNK)
    }

    pub fn copy_concurrency(&self) -> usize {
        self.multipartcopymaxconcurrency.unwrap_or(S3::DEFAULT_COPY_CONCURRENCY) as usize
    }

    pub fn copy_threshold(&self) -> u64 {
        self.multipartcopythresholdsize.unwrap_or(S3::DEFAULT_COPY_THRESHOLD)
    }

    /// Checks every key, naming the one that is wrong and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
        if blank(&self.bucket) {
            return Err(("storage.s3.bucket", "is required".into()));
        }
        if blank(&self.region) {
            return Err((
                "storage.s3.region",
                "is required (any value, e.g. us-east-1, for S3-compatible servers)".into(),
            ));
        }
        if blank(&self.accesskey) != blank(&self.secretkey) {
            return Err((
                "storage.s3.accesskey",
                "set both accesskey and secretkey, or neither (then the AWS credential chain applies)".into(),
            ));
        }
        if let Some(e) = &self.regionendpoint
            && !(e.starts_with("http://") || e.starts_with("https://") || !e.contains("://"))
        {
            return Err(("storage.s3.regionendpoint", format!("`{e}` must be an http:// or https:// URL")));
        }
        let chunk = self.chunk_size();
        if !(S3_MIN_PART..=S3_MAX_PART).contains(&chunk) {
            return Err(("storage.s3.chunksize", format!("{chunk} is outside S3's part sizes (5 MiB to 5 GiB)")));
        }
        let copy = self.copy_chunk_size();
        if !(S3_MIN_PART..=S3_MAX_PART).contains(&copy) {
            return Err((
                "storage.s3.multipartcopychunksize",
                format!("{copy} is outside S3's part sizes (5 MiB to 5 GiB)"),
            ));
        }
        if !(1..=1000).contains(&self.copy_concurrency()) {
            return Err(("storage.s3.multipartcopymaxconcurrency", "must be between 1 and 1000".into()));
        }
        if self.copy_threshold() > S3_MAX_PART {
            return Err((
                "storage.s3.multipartcopythresholdsize",
                "must be at most 5 GiB: a single CopyObject cannot copy more".into(),
            ));
        }
        if self.v4auth == Some(false) {
            return Err((
                "storage.s3.v4auth",
                "signature version 2 is not supported; S3 and its clones accept v4".into(),
            ));
        }
        if let Some(acl) = &self.objectacl
            && acl != "private"
        {
            return Err((
                "storage.s3.objectacl",
                format!(
                    "`{acl}` is not supported: objects stay private and pulls are served or presigned by the registry"
                ),
            ));
        }
        if self.accelerate == Some(true) {
            return Err(("storage.s3.accelerate", "transfer acceleration is not supported; use regionendpoint".into()));
        }
        if self.usedualstack == Some(true) {
            return Err((
                "storage.s3.usedualstack",
                "dual-stack endpoints are not supported; use regionendpoint".into(),
            ));
        }
        if self.keyid.is_some() && self.encrypt != Some(true) {
            return Err(("storage.s3.keyid", "applies only with encrypt: true".into()));
        }
        if let Some(level) = &self.loglevel
            && ![
                "off",
                "debug",
                "debugwithsigning",
                "debugwithhttpbody",
                "debugwithrequestretries",
                "debugwithrequesterrors",
                "debugwitheventstreambody",
            ]
            .contains(&level.to_ascii_lowercase().as_str())
        {
            return Err((
                "storage.s3.loglevel",
                format!("`{level}` is not one of registry:2's levels (off, debug, ...)"),
            ));
        }
        Ok(())
    }
}

/// registry:2 reads these keys with Go's loose typing: `"true"` and `true`,
/// `"10485760"` and `10485760` mean the same.
mod lenient {
    use serde::{Deserialize, Deserializer, de::Error as _};
    use serde_yaml::Value;

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Null => None,
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => return Err(D::Error::custom(format!("expected a string, got {other:?}"))),
        })
    }

    pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Null => None,
            Value::Bool(b) => Some(b),
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => return Err(D::Error::custom(format!("`{s}` is not true or false"))),
            },
            other => return Err(D::Error::custom(format!("expected true or false, got {other:?}"))),
        })
    }

    pub fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Null => None,
            Value::Number(n) => {
                Some(n.as_u64().ok_or_else(|| D::Error::custom(format!("{n} is not a size in bytes")))?)
            }
            Value::String(s) => {
                Some(s.trim().parse().map_err(|_| D::Error::custom(format!("`{s}` is not a size in bytes")))?)
            }
            other => return Err(D::Error::custom(format!("expected a number, got {other:?}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_yaml(text, env.iter().map(|(k, v)| (k.to_string(), v.to_string()))).map_err(|e| e.to_string())
    }

    const S3: &str = "storage:\n  s3:\n    bucket: b\n    region: us-east-1\n";

    #[test]
    fn s3_keys_as_registry2_writes_them() {
        let c = load(
            "storage:\n  s3:\n    bucket: b\n    region: r\n    regionendpoint: http://s3.local:9000\n    \
             forcepathstyle: \"true\"\n    secure: false\n    chunksize: \"10485760\"\n    \
             multipartcopythresholdsize: 33554432\n    storageclass: REDUCED_REDUNDANCY\n    encrypt: true\n    \
             keyid: k1\n    rootdirectory: /x\n    loglevel: debug\n",
            &[],
        )
        .unwrap();
        let s3 = c.storage.s3.unwrap();
        assert_eq!(s3.forcepathstyle, Some(true));
        assert_eq!(s3.chunk_size(), 10 << 20);
        assert_eq!(s3.copy_threshold(), 32 << 20);
        assert_eq!(s3.accesskey, None, "no keys: the AWS credential chain applies");
    }

    #[test]
    fn env_overrides_reach_s3_keys_and_secrets_are_redacted() {
        let env = [
            ("REGISTRY_STORAGE_S3_ACCESSKEY", "AKIA1"),
            ("REGISTRY_STORAGE_S3_SECRETKEY", "hush"),
            ("REGISTRY_STORAGE_S3_BUCKET", "from-env"),
        ];
        let c = load(S3, &env).unwrap();
        let s3 = c.storage.s3.as_ref().unwrap();
        assert_eq!((s3.accesskey.as_deref(), s3.secretkey.as_deref()), (Some("AKIA1"), Some("hush")));
        assert_eq!(s3.bucket.as_deref(), Some("from-env"));
        let shown = c.to_yaml();
        assert!(!shown.contains("hush") && shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn keys_that_do_not_apply_are_refused_by_name() {
        for (extra, key) in [
            ("    v4auth: false\n", "storage.s3.v4auth"),
            ("    objectacl: public-read\n", "storage.s3.objectacl"),
            ("    accelerate: true\n", "storage.s3.accelerate"),
            ("    chunksize: 1048576\n", "storage.s3.chunksize"),
            ("    multipartcopythresholdsize: 6442450944\n", "storage.s3.multipartcopythresholdsize"),
            ("    keyid: k\n", "storage.s3.keyid"),
            ("    accesskey: a\n", "storage.s3.accesskey"),
            ("    bucketname: b\n", "storage.s3"),
        ] {
            let e = load(&format!("{S3}{extra}"), &[]).unwrap_err();
            assert!(e.starts_with(key), "{extra:?}: {e}");
        }
        let e = load("storage:\n  s3:\n    region: r\n", &[]).unwrap_err();
        assert!(e.starts_with("storage.s3.bucket"), "{e}");
        let e = load("storage:\n  filesystem: {}\n  s3: {bucket: b, region: r}\n", &[]).unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let e = load("storage:\n  oss: {bucket: b}\n", &[]).unwrap_err();
        assert!(e.starts_with("storage.oss") && e.contains("regionendpoint"), "{e}");
    }
}
