//! `storage.quotas`: storage limits per repository glob.
//!
//! ```yaml
//! storage:
//!   quotas:
//!     - repositories: "team-a/**"
//!       limit: 50Gi
//! ```
//!
//! A limit is a Kubernetes-style quantity: bytes, or a number with one of
//! `k M G T` (powers of 1000) or `Ki Mi Gi Ti` (powers of 1024).

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml::Value;

use super::values::{ConfigError, key_error};
use crate::oci::glob::RepoGlob;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub repositories: Pattern,
    pub limit: Quantity,
}

/// A repository glob as written in the config.
#[derive(Debug, Clone)]
pub struct Pattern(pub RepoGlob);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RepoGlob::parse(&s).map(Pattern).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

/// A size in bytes, kept with the text it was written as (`config check` shows that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    pub bytes: u64,
    text: String,
}

const UNITS: [(&str, u64); 8] = [
    ("k", 1000),
    ("M", 1000 * 1000),
    ("G", 1000 * 1000 * 1000),
    ("T", 1000 * 1000 * 1000 * 1000),
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
];

impl Quantity {
    /// Parses `50Gi`, `1.5G`, `1048576`. Anything else is refused, naming
    /// what was not understood; nothing is rounded.
    pub fn parse(text: &str) -> Result<Quantity, String> {
        const HELP: &str = "write bytes, or a number with k, M, G, T (1000s) or Ki, Mi, Gi, Ti (1024s), e.g. 50Gi";
        let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        if number.is_empty() {
            return Err(format!("`{text}` is not a quantity: {HELP}"));
        }
        let multiplier = match unit {
            "" => 1,
            _ => UNITS
                .iter()
                .find(|(u, _)| *u == unit)
                .map(|(_, m)| *m)
                .ok_or_else(|| format!("`{text}`: the unit `{unit}` is not one this registry knows; {HELP}"))?,
        };
        let (whole, fraction) = match number.split_once('.') {
            Some((w, f)) if !w.is_empty() && !f.is_empty() && !f.contains('.') => (w, f),
            Some(_) => return Err(format!("`{text}` is not a number followed by a unit: {HELP}")),
            None => (number, ""),
        };
        let too_big = || format!("`{text}` is more than {} bytes", u64::MAX);
        // Digits past what u64 holds are an overflow whatever the unit; this
        // also keeps the u128 arithmetic below from overflowing.
        let whole = whole.trim_start_matches('0');
        if whole.len() > 20 {
            return Err(too_big());
        }
        if fraction.len() > 20 {
            return Err(format!("`{text}` has more decimals than any whole number of bytes needs"));
        }
        let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| too_big())? };
        let scale = 10u128.pow(fraction.len() as u32);
        let fraction: u128 = if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| too_big())? };
        let fractional_bytes = fraction * multiplier as u128;
        if !fractional_bytes.is_multiple_of(scale) {
            return Err(format!("`{text}` is not a whole number of bytes"));
        }
        let bytes = whole * multiplier as u128 + fractional_bytes / scale;
        let bytes = u64::try_from(bytes).map_err(|_| too_big())?;
        Ok(Quantity { bytes, text: text.to_string() })
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = match Value::deserialize(d)? {
            Value::String(s) => s,
            Value::Number(n) if n.as_u64().is_some() => n.to_string(),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "expected a quantity such as 50Gi or a whole number of bytes, got {other:?}"
                )));
            }
        };
        Quantity::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// Each pattern once: a quota is named by its pattern (in errors and metrics).
pub fn validate(quotas: &[Quota]) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for (i, q) in quotas.iter().enumerate() {
        if !seen.insert(q.repositories.0.as_str()) {
            return Err(key_error(
                &format!("storage.quotas[{i}].repositories"),
                format!("`{}` has a quota already; give each pattern one limit", q.repositories.0),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn bytes(s: &str) -> Result<u64, String> {
        Quantity::parse(s).map(|q| q.bytes)
    }

    #[test]
    fn kubernetes_quantities() {
        assert_eq!(bytes("0"), Ok(0));
        assert_eq!(bytes("1048576"), Ok(1 << 20));
        assert_eq!(bytes("50Gi"), Ok(50 << 30));
        assert_eq!(bytes("2Ti"), Ok(2 << 40));
        assert_eq!(bytes("1k"), Ok(1000));
        assert_eq!(bytes("3M"), Ok(3_000_000));
        assert_eq!(bytes("7G"), Ok(7_000_000_000));
        assert_eq!(bytes("1T"), Ok(1_000_000_000_000));
        assert_eq!(bytes("1.5Gi"), Ok(3 << 29));
        assert_eq!(bytes("0.5Ki"), Ok(512));
        assert_eq!(bytes("007Mi"), Ok(7 << 20));
        assert_eq!(bytes("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn anything_else_is_refused_by_name() {
        for (text, why) in [
            ("", "not a quantity"),
            (" ", "not a quantity"),
            ("Gi", "not a quantity"),
            ("-1", "not a quantity"),
            ("50GB", "unit `GB`"),
            ("50gi", "unit `gi`"),
            ("1K", "unit `K`"),
            ("1m", "unit `m`"),
            ("2P", "unit `P`"),
            ("1e9", "unit `e9`"),
            ("50 Gi", "unit ` Gi`"),
            ("1.5", "whole number of bytes"),
            ("0.1Ki", "whole number of bytes"),
            ("1.", "not a number followed by a unit"),
            (".5Gi", "not a number followed by a unit"),
            ("1.2.3", "not a number followed by a unit"),
            ("18446744073709551616", "more than"),
            ("16777216Ti", "more than"),
        ] {
            let e = bytes(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
        let long = "9".repeat(10_000);
        assert!(bytes(&long).unwrap_err().contains("more than"));
        assert!(bytes(&format!("1.{long}Ki")).unwrap_err().contains("more decimals"));
        assert_eq!(bytes(&format!("{}1", "0".repeat(10_000))), Ok(1), "leading zeros are not digits of value");
    }

    fn load(quotas: &str) -> Result<Config, String> {
        let yaml = format!("storage:\n  filesystem: {{rootdirectory: /x}}\n  quotas:\n{quotas}");
        Config::from_yaml(&yaml, std::iter::empty()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_config_section() {
        let c = load("    - {repositories: \"team-a/**\", limit: 50Gi}\n    - {repositories: \"b/*\", limit: 1000}\n")
            .unwrap();
        let q = &c.storage.quotas;
        assert_eq!((q[0].repositories.0.as_str(), q[0].limit.bytes), ("team-a/**", 50 << 30));
        assert_eq!(q[1].limit.bytes, 1000);
        assert!(c.to_yaml().contains("limit: 50Gi"), "{}", c.to_yaml());
        let none = Config::from_yaml("storage: {filesystem: {rootdirectory: /x}}", std::iter::empty()).unwrap();
        assert!(!none.to_yaml().contains("quotas"), "no quotas, no key");
    }

    #[test]
    fn config_errors_name_the_key() {
        for (quotas, want) in [
            ("    - {repositories: \"a/**\", limit: 50GB}\n", "storage.quotas[0].limit"),
            ("    - {repositories: \"a/**\", limit: -5}\n", "storage.quotas[0].limit"),
            ("    - {repositories: \"a/**\", limit: 1.5}\n", "storage.quotas[0].limit"),
            ("    - {repositories: \"a//b\", limit: 1Gi}\n", "storage.quotas[0].repositories"),
            ("    - {repositories: \"a/**\"}\n", "storage.quotas[0]"),
            ("    - {repositories: \"a/**\", limit: 1Gi, size: 2}\n", "storage.quotas[0]"),
            (
                "    - {repositories: \"a/**\", limit: 1Gi}\n    - {repositories: \"a/**\", limit: 2Gi}\n",
                "storage.quotas[1].repositories",
            ),
        ] {
            let e = load(quotas).unwrap_err();
            assert!(e.starts_with(want), "{quotas:?}: {e}");
        }
    }
}
