//! Digests (`sha256:<hex>`, `sha512:<hex>`) from URLs, `?digest=`, `?mount=`
//! and manifests.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_registry::registry::digest::Digest;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(d) = s.parse::<Digest>() {
        // Canonical form only: what parses prints back unchanged.
        assert_eq!(d.to_string(), s);
        assert_eq!(format!("{}:{}", d.algorithm(), d.hex()), s);
        assert!(d.hex().bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(d.to_string().parse::<Digest>().ok(), Some(d.clone()));
        // Verifying arbitrary bytes never panics.
        let _ = d.verify(data);
    }
});
