//! The one rule for htpasswd lines, shared by the registry (which loads the
//! file) and the operator (which validates the Secret before rolling it out):
//! the operator includes this file with `#[path]`, so an entry the operator
//! accepts is never one the registry refuses at start-up (a crash loop).
//! Plain `std` only, for that reason.

/// The bcrypt variants the registry's bcrypt implementation verifies.
/// `$2x$` (the PHP bug-compatibility variant) is not one of them.
pub const BCRYPT_PREFIXES: [&str; 3] = ["$2y$", "$2a$", "$2b$"];

/// Parses one line: `Ok(None)` for a blank line or a `#` comment,
/// `Ok(Some((user, hash)))` for an entry, `Err` (a readable reason) otherwise.
pub fn parse_line(line: &str) -> Result<Option<(&str, &str)>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (user, hash) = line.split_once(':').ok_or_else(|| "expected `user:hash`".to_string())?;
    if user.is_empty() {
        return Err("empty user name".into());
    }
    if bcrypt_cost(hash).is_none() {
        return Err(format!(
            "the hash of user `{user}` is not a bcrypt hash the registry can verify ($2y$, $2a$ or $2b$, cost 4 to 31, \
             60 characters); create entries with `htpasswd -B`"
        ));
    }
    Ok(Some((user, hash)))
}

/// The cost of a well-formed bcrypt hash (`$2y$NN$` + 53 characters of
/// bcrypt's base64), or `None`.
pub fn bcrypt_cost(hash: &str) -> Option<u32> {
    if hash.len() != 60 || !BCRYPT_PREFIXES.iter().any(|p| hash.starts_with(p)) {
        return None;
    }
    let (cost, rest) = (hash.get(4..6)?, hash.get(6..)?);
    let cost: u32 = if cost.bytes().all(|b| b.is_ascii_digit()) { cost.parse().ok()? } else { return None };
    let body = rest.strip_prefix('$')?;
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'/';
    ((4..=31).contains(&cost) && body.len() == 53 && body.bytes().all(alphabet)).then_some(cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "$2y$05$abcdefghijklmnopqrstuu5BXn5JmRw9VdMSt2y/xz0t5RVhQkC3i";

    #[test]
    fn bcrypt_hashes_the_registry_can_verify() {
        assert_eq!(bcrypt_cost(GOOD), Some(5));
        assert_eq!(bcrypt_cost(&GOOD.replace("$2y$", "$2b$")), Some(5));
        assert_eq!(bcrypt_cost(&GOOD.replace("$05$", "$12$")), Some(12));
        for bad in [
            GOOD.replace("$2y$", "$2x$"),
            GOOD.replace("$05$", "$03$"),
            GOOD.replace("$05$", "$32$"),
            GOOD.replace("$05$", "$5a$"),
            GOOD.replace('u', "!"),
            GOOD[..59].to_string(),
            "{SHA}abc".to_string(),
        ] {
            assert_eq!(bcrypt_cost(&bad), None, "{bad}");
        }
        assert_eq!(parse_line("  # c").unwrap(), None);
        assert_eq!(parse_line(&format!("alice:{GOOD}")).unwrap(), Some(("alice", GOOD)));
        assert!(parse_line(&format!(":{GOOD}")).is_err());
        assert!(parse_line("alice").is_err());
    }
}
