//! The generated Secrets, with the values dereference read back. Applying
//! them keeps their labels and owner reference current; the data is what is
//! already stored, so the apply never changes a key.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use crate::names;

use super::super::validated::{Auth, ValidatedRegistry};
use super::meta::child_meta;

/// The Secret holding `http.secret`.
pub fn build_http_secret(v: &ValidatedRegistry) -> Secret {
    Secret {
        metadata: child_meta(v, v.names.http_secret()),
        data: Some(BTreeMap::from([(
            names::HTTP_SECRET_KEY.to_string(),
            ByteString(v.http_secret.clone().into_bytes()),
        )])),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

/// The Secret holding the token signing key, for the built-in token service.
pub fn build_signing_key_secret(v: &ValidatedRegistry) -> Option<Secret> {
    let Auth::Token(t) = &v.auth else { return None };
    Some(Secret {
        metadata: child_meta(v, v.names.signing_key_secret()),
        data: Some(BTreeMap::from([(
            names::TOKEN_SIGNING_KEY_KEY.to_string(),
            ByteString(t.signing_key_pem.clone().into_bytes()),
        )])),
        type_: Some("Opaque".into()),
        ..Secret::default()
    })
}
