//! The syntax of values the specs carry: Kubernetes quantities, DNS names,
//! IP addresses and CIDR ranges, cron schedules, Go durations. Pure functions that import
//! nothing from the crate, so both controllers' validate steps use them
//! without borrowing from each other.

/// `10.0.0.0/8`, `192.168.1.7`, `fd00::/8`: what the registry's `http.trustedproxies` accepts.
pub fn is_ip_or_cidr(s: &str) -> bool {
    let s = s.trim();
    let (ip, prefix) = match s.split_once('/') {
        Some((ip, p)) => (ip, Some(p)),
        None => (s, None),
    };
    let Ok(ip) = ip.parse::<std::net::IpAddr>() else { return false };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    prefix.is_none_or(|p| p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u32>().is_ok_and(|p| p <= max))
}

/// A lowercase DNS name with at least one dot (`registry.example.com`).
pub fn is_dotted_dns_name(host: &str) -> bool {
    host.len() <= 253
        && host.contains('.')
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// A cron schedule: five fields, or a `@daily` style macro.
pub fn valid_schedule(s: &str) -> bool {
    s.starts_with('@') || s.split_whitespace().count() == 5
}

/// The multiplier of a quantity suffix (`k`..`P`, `Ki`..`Pi`; none is 1).
fn suffix_multiplier(suffix: &str) -> Option<u64> {
    Some(match suffix {
        "" => 1,
        "k" => 1000,
        "M" => 1000u64.pow(2),
        "G" => 1000u64.pow(3),
        "T" => 1000u64.pow(4),
        "P" => 1000u64.pow(5),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        _ => return None,
    })
}

/// Parses a Kubernetes quantity into bytes (`50Gi`, `500M`, `1073741824`).
pub fn quantity_bytes(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let multiplier = suffix_multiplier(suffix)?;
    let value: f64 = number.parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    Some((value * multiplier as f64).round() as u64)
}

/// Seconds of a Go duration (`90s`, `1h30m`, `1.5h`), as the registry
/// parses its durations; `None` when it is not one.
pub fn go_duration_secs(s: &str) -> Option<f64> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_end);
        let n: f64 = num.parse().ok()?;
        let unit_end = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let scale = match unit {
            "ns" => 1e-9,
            "us" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = after;
    }
    total.is_finite().then_some(total)
}

/// Bytes of a quota limit as the registry's `storage.quotas[].limit` takes
/// it: a whole number, bare or with k, M, G, T, Ki, Mi, Gi or Ti.
pub fn quota_limit_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    if suffix.starts_with('P') {
        return None;
    }
    number.parse::<u64>().ok()?.checked_mul(suffix_multiplier(suffix)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_and_quota_limits() {
        assert_eq!(go_duration_secs("1h30m"), Some(5400.0));
        assert_eq!(go_duration_secs("90s"), Some(90.0));
        assert_eq!(go_duration_secs("1.5h"), Some(5400.0));
        for bad in ["", "1d", "h", "1 h", "-1h", "soon"] {
            assert_eq!(go_duration_secs(bad), None, "{bad:?}");
        }
        assert_eq!(quota_limit_bytes("50Gi"), Some(50 << 30));
        assert_eq!(quota_limit_bytes("500M"), Some(500_000_000));
        assert_eq!(quota_limit_bytes("1024"), Some(1024));
        for bad in ["", "1.5Gi", "50GB", "1Pi", "-1", "Gi", "99999999999Ti"] {
            assert_eq!(quota_limit_bytes(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity_bytes("50Gi"), Some(50 << 30));
        assert_eq!(quantity_bytes("500M"), Some(500_000_000));
        assert_eq!(quantity_bytes("1073741824"), Some(1 << 30));
        assert_eq!(quantity_bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(quantity_bytes("12parsecs"), None);
    }

    #[test]
    fn dotted_names() {
        assert!(is_dotted_dns_name("registry.example.com"));
        assert!(!is_dotted_dns_name("registry"));
        assert!(!is_dotted_dns_name("Registry.example.com"));
        assert!(!is_dotted_dns_name("a..b"));
    }
}
