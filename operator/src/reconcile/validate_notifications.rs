//! `notifications`, checked: the CRD's CEL rules refuse the same at
//! admission; these catch objects that got in before a rule existed, and
//! Secrets that do not exist (Degraded until they do).

use std::collections::BTreeSet;

use crate::crd::{CommonSpec, NotificationsSpec};
use crate::syntax::go_duration_secs;

use super::dereference::Dereferenced;
use super::validate::{Error, require_key};

/// `notifications`, checked.
pub fn validate_notifications(spec: &CommonSpec<'_>, deref: &Dereferenced) -> Result<Option<NotificationsSpec>, Error> {
    let Some(n) = spec.notifications else { return Ok(None) };
    let invalid = |m: String| Err(Error::InvalidSpec(m));
    if n.pull_sample_percent.is_some_and(|p| p > 100) {
        return invalid("notifications.pullSamplePercent must be 0 to 100".into());
    }
    let mut names = BTreeSet::new();
    for (i, e) in n.endpoints.iter().enumerate() {
        let field = |f: &str| format!("notifications.endpoints[{i}].{f}");
        if !names.insert(e.name.as_str()) {
            return invalid(format!("{}: `{}` names two endpoints", field("name"), e.name));
        }
        if e.name.is_empty()
            || e.name.len() > 63
            || !e.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return invalid(format!("{} must be a DNS label", field("name")));
        }
        if !(e.url.starts_with("http://") || e.url.starts_with("https://")) {
            return invalid(format!("{} must be an http:// or https:// URL", field("url")));
        }
        for (f, d) in [("timeout", &e.timeout), ("backoff", &e.backoff)] {
            if let Some(d) = d
                && go_duration_secs(d).is_none()
            {
                return invalid(format!("{} must be a Go duration such as 1s", field(f)));
            }
        }
        for h in &e.secret_headers {
            require_key(deref, &h.secret_name, &h.key, &field("secretHeaders"))?;
        }
    }
    Ok(Some(n.clone()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::crd::Registry;
    use crate::reconcile::dereference::SecretState;

    const EXAMPLE: &str = include_str!("../../../examples/registry-notifications.yaml");

    #[test]
    fn a_secret_header_needs_its_secret_and_key() {
        let r: Registry = serde_yaml::from_str(EXAMPLE).expect("example parses");
        let spec = CommonSpec::of_registry(&r);
        let mut deref = Dereferenced::assumed("hooks", &spec, &[]);
        assert_eq!(validate_notifications(&spec, &deref).map(|n| n.map(|n| n.endpoints.len())), Ok(Some(2)));
        deref.secrets.insert("ci-webhook".into(), SecretState::Present(BTreeMap::new()));
        let e = validate_notifications(&spec, &deref).expect_err("the key is missing").to_string();
        assert!(e.contains("ci-webhook") && e.contains("authorization"), "{e}");
        deref.secrets.insert("ci-webhook".into(), SecretState::Missing);
        let e = validate_notifications(&spec, &deref).expect_err("the Secret is missing").to_string();
        assert!(e.contains("ci-webhook") && e.contains("secretHeaders"), "{e}");
    }
}
