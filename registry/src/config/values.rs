//! The value types and helpers every config section uses: errors naming a
//! key, Go durations, loose scalars and redacted secrets. A leaf: it imports
//! nothing else from `config`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml::Value;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("{path}: {message}")]
    Key { path: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

pub(crate) fn key_error(path: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Key { path: path.to_string(), message: message.into() }
}

/// A duration in Go's syntax (`300ms`, `10s`, `1h30m`), as registry:2 writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    pub fn parse(s: &str) -> Option<Duration> {
        let s = s.trim();
        if s == "0" {
            return Some(Duration::ZERO);
        }
        let mut total = 0f64;
        let mut rest = s;
        if rest.is_empty() {
            return None;
        }
        while !rest.is_empty() {
            let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
            let (num, after) = rest.split_at(num_end);
            let n: f64 = num.parse().ok()?;
            let unit_end = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
            let (unit, after) = after.split_at(unit_end);
            let scale = match unit {
                "ns" => 1e-9,
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return None,
            };
            total += n * scale;
            rest = after;
        }
        // Go's durations stop at ~292 years; `from_secs_f64` would panic past u64 seconds.
        Duration::try_from_secs_f64(total).ok()
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let s = match &v {
            Value::String(s) => s.clone(),
            // A bare integer is nanoseconds in Go's yaml decoding of time.Duration.
            Value::Number(n) => {
                return n.as_u64().map(|ns| GoDuration(Duration::from_nanos(ns))).ok_or_else(|| {
                    serde::de::Error::custom("duration must be a non-negative integer or a string like 10s")
                });
            }
            _ => return Err(serde::de::Error::custom("duration must be a string like 10s, 5m or 1h30m")),
        };
        GoDuration::parse(&s).map(GoDuration).ok_or_else(|| {
            serde::de::Error::custom(format!("`{s}` is not a duration (use e.g. 300ms, 10s, 5m, 1h30m)"))
        })
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", self.0.as_secs_f64()))
    }
}

/// Accepts any YAML scalar as a string (`secret: 123456` is a string in registry:2).
pub(crate) fn scalar_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(serde::de::Error::custom("expected a string")),
    }
}

/// Secrets print as `<redacted>` in `config check`.
pub(crate) fn redact<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
