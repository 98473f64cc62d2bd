//! htpasswd files (auth.htpasswd.path and the token service's users file).
//! Passwords are not verified here: bcrypt costs milliseconds per try.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_registry::auth::htpasswd::Htpasswd;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(h) = Htpasswd::parse(s) {
        for line in s.lines() {
            if let Some((user, _)) = line.trim().split_once(':')
                && !line.trim().starts_with('#')
            {
                assert!(h.contains(user), "{user:?} was accepted but is not known");
            }
        }
    }
});
