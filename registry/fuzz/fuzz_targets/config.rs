//! config.yml and its `REGISTRY_*` environment overrides.
//!
//! Input: the YAML text, then NUL-separated `NAME=value` overrides.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_registry::config::{Config, GoDuration};
use wharf_registry::config::mirror::ByteSize;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let mut parts = s.split('\0');
    let yaml = parts.next().unwrap_or_default();
    let env: Vec<(String, String)> =
        parts.filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if let Ok(c) = Config::from_yaml(yaml, env) {
        // What the server derives from an accepted config never panics.
        let _ = c.root_directory();
        let _ = c.listen_addr();
        let _ = c.to_yaml();
    }
    // The scalar parsers, on their own too.
    let _ = GoDuration::parse(s);
    let _ = ByteSize::parse(s);
});
