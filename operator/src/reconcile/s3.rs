//! `storage.s3`, checked: what the builders render into the registry's
//! `storage.s3` (registry:2's keys) and the Deployment's environment.
//!
//! The checks mirror the registry's own (`wharf_registry::config`), so a spec
//! the registry would refuse at start-up becomes Degraded/InvalidSpec here
//! instead of a crash-looping pod; `tests/examples_config.rs` parses every
//! rendered example with the registry's parser to keep the two in step.

use sha2::{Digest, Sha256};

use crate::crd::{S3Credentials, S3Storage};

use super::dereference::{Dereferenced, SecretState};
use crate::syntax::quantity_bytes;

use super::validate::{Error, require_key};

/// S3's smallest part (all but the last of a multipart upload).
const MIN_PART: u64 = 5 << 20;
/// S3's largest part.
const MAX_PART: u64 = 5 << 30;

/// A checked S3 bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct S3Settings {
    /// `bucket`.
    pub bucket: String,
    /// `region`.
    pub region: String,
    /// `regionendpoint`.
    pub endpoint: Option<String>,
    /// `forcepathstyle`.
    pub force_path_style: bool,
    /// `rootdirectory`.
    pub root_directory: Option<String>,
    /// Where `REGISTRY_STORAGE_S3_ACCESSKEY` and `..._SECRETKEY` come from.
    pub credentials: Option<S3Credentials>,
    /// Digest of the key pair as found in its Secret: the registry reads its
    /// environment only at start, so a rotated key must roll the pods.
    pub credentials_digest: Option<String>,
    /// `chunksize`, bytes.
    pub chunk_size: Option<u64>,
    /// `storageclass`.
    pub storage_class: Option<String>,
    /// `encrypt`.
    pub encrypt: Option<bool>,
    /// `keyid`.
    pub key_id: Option<String>,
    /// `skipverify`.
    pub skip_verify: Option<bool>,
    /// Blob GETs answer 307 to a presigned URL (`storage.redirect.disable: false`).
    pub redirect: bool,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidSpec(message.into())
}

/// Checks `storage.s3` and the Secret it names.
pub fn validate_s3(s3: &S3Storage, deref: &Dereferenced) -> Result<S3Settings, Error> {
    if s3.bucket.trim().is_empty() || s3.region.trim().is_empty() {
        return Err(invalid("storage.s3: bucket and region are required"));
    }
    if let Some(e) = &s3.endpoint
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        return Err(invalid(format!("storage.s3.endpoint `{e}` must be an http:// or https:// URL")));
    }
    let chunk_size = match &s3.chunk_size {
        None => None,
        Some(q) => {
            let bytes = quantity_bytes(&q.0)
                .ok_or_else(|| invalid(format!("storage.s3.chunkSize `{}` is not a quantity like 10Mi", q.0)))?;
            if !(MIN_PART..=MAX_PART).contains(&bytes) {
                return Err(invalid(format!("storage.s3.chunkSize `{}` is outside S3's part sizes (5Mi to 5Gi)", q.0)));
            }
            Some(bytes)
        }
    };
    if s3.key_id.is_some() && s3.encrypt != Some(true) {
        return Err(invalid("storage.s3.keyId applies only with encrypt: true"));
    }
    let credentials_digest = match &s3.credentials {
        None => None,
        Some(c) => {
            require_key(deref, &c.secret_name, &c.access_key_id_key, "storage.s3.credentials")?;
            require_key(deref, &c.secret_name, &c.secret_access_key_key, "storage.s3.credentials")?;
            Some(key_pair_digest(deref, c))
        }
    };
    Ok(S3Settings {
        bucket: s3.bucket.trim().to_string(),
        region: s3.region.trim().to_string(),
        endpoint: s3.endpoint.clone(),
        force_path_style: s3.force_path_style,
        root_directory: s3.root_directory.clone().filter(|r| !r.trim().is_empty()),
        credentials: s3.credentials.clone(),
        credentials_digest,
        chunk_size,
        storage_class: s3.storage_class.clone(),
        encrypt: s3.encrypt,
        key_id: s3.key_id.clone(),
        skip_verify: s3.skip_verify,
        redirect: s3.redirect,
    })
}

/// A digest of the two keys' values (empty when only assumed, as in `render`).
fn key_pair_digest(deref: &Dereferenced, c: &S3Credentials) -> String {
    let mut h = Sha256::new();
    if let Some(SecretState::Present(data)) = deref.secrets.get(&c.secret_name) {
        for key in [&c.access_key_id_key, &c.secret_access_key_key] {
            let value = data.get(key).map(Vec::as_slice).unwrap_or_default();
            h.update((value.len() as u64).to_be_bytes());
            h.update(value);
        }
    }
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::test_support::validated;
    use crate::reconcile::validated::Storage;

    fn s3_registry(extra: &str) -> String {
        format!(
            "apiVersion: wharf.dev/v1alpha1\nkind: Registry\nmetadata: {{ name: reg }}\nspec:\n  replicas: 3\n  \
             storage:\n    s3:\n      bucket: images\n      region: us-east-1\n      \
             credentials: {{ secretName: reg-s3 }}\n{extra}"
        )
    }

    fn settings_of(yaml: &str) -> S3Settings {
        match validated(yaml).storage {
            Storage::S3(s) => *s,
            other => panic!("not s3: {other:?}"),
        }
    }

    #[test]
    fn optional_keys_are_carried_over() {
        let s = settings_of(&s3_registry(
            "      chunkSize: 16Mi\n      storageClass: STANDARD_IA\n      encrypt: true\n      keyId: k-1\n      \
             skipVerify: true\n      redirect: true\n",
        ));
        assert_eq!(s.chunk_size, Some(16 << 20));
        assert_eq!(s.storage_class.as_deref(), Some("STANDARD_IA"));
        assert_eq!(
            (s.encrypt, s.key_id.as_deref(), s.skip_verify, s.redirect),
            (Some(true), Some("k-1"), Some(true), true)
        );
        let plain = settings_of(&s3_registry(""));
        assert_eq!((plain.chunk_size, plain.redirect), (None, false));
    }

    #[test]
    fn what_the_registry_would_refuse_is_an_invalid_spec() {
        for (extra, words) in [
            ("      chunkSize: 1Mi\n", "outside S3's part sizes"),
            ("      chunkSize: 6Gi\n", "outside S3's part sizes"),
            ("      chunkSize: lots\n", "not a quantity"),
            ("      keyId: k-1\n", "only with encrypt: true"),
            ("      endpoint: versitygw:7070\n", "http:// or https://"),
        ] {
            let mut inputs = crate::reconcile::render::parse(&s3_registry(extra)).expect("parses");
            let e = crate::reconcile::render::validate_input(
                &mut inputs[0],
                "team-a",
                &crate::reconcile::test_support::settings(),
            )
            .err()
            .unwrap_or_else(|| panic!("accepted: {extra}"))
            .to_string();
            assert!(e.contains(words), "{extra}: {e}");
        }
    }

    #[test]
    fn the_key_pair_digest_follows_the_secret() {
        let c = S3Credentials {
            secret_name: "s".into(),
            access_key_id_key: "accessKeyId".into(),
            secret_access_key_key: "secretAccessKey".into(),
        };
        let with = |secret: &str| {
            let data = [("accessKeyId", "AK"), ("secretAccessKey", secret)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect();
            let d = Dereferenced {
                secrets: [("s".to_string(), SecretState::Present(data))].into(),
                generated: crate::reconcile::dereference::Generated { http_secret: String::new(), signing_key: None },
                tls: crate::reconcile::serving_cert::ServingTls::Off,
            };
            key_pair_digest(&d, &c)
        };
        assert_eq!(with("one"), with("one"));
        assert_ne!(with("one"), with("two"), "a rotated key rolls the pods");
    }
}
