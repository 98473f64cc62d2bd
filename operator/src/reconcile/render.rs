//! `wharf-operator render`: the objects a reconcile would apply, without a
//! cluster. Referenced Secrets are assumed present and generated values are
//! placeholders; everything else is the real validate and build steps.

use serde::Deserialize;

use crate::crd::{CommonSpec, Registry, RegistryMirror};
use crate::names::OwnerKind;
use crate::settings::Settings;

use super::build::build;
use super::dereference::Dereferenced;
use super::validated::{Identity, ValidatedRegistry};
use super::{identity, validate, validate_mirror};

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is not YAML of a known kind.
    #[error("document {index}: {message}")]
    Parse {
        /// 1-based document number.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// The resource is invalid.
    #[error("{kind} {name}: {source}")]
    Invalid {
        /// Kind.
        kind: OwnerKind,
        /// Name.
        name: String,
        /// Cause.
        #[source]
        source: validate::Error,
    },
    /// Serialising the output failed.
    #[error("rendering YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// A parsed input document.
pub enum Input {
    /// A Registry.
    Registry(Box<Registry>),
    /// A RegistryMirror.
    Mirror(Box<RegistryMirror>),
}

/// Parses every document of a YAML stream; documents of other kinds are an error.
pub fn parse(text: &str) -> Result<Vec<Input>, Error> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let value = serde_yaml::Value::deserialize(doc).map_err(|e| Error::Parse { index, message: e.to_string() })?;
        if value.is_null() {
            continue;
        }
        let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or_default().to_string();
        let parse_err = |e: serde_yaml::Error| Error::Parse { index, message: format!("{kind}: {e}") };
        match kind.as_str() {
            "Registry" => out.push(Input::Registry(Box::new(serde_yaml::from_value(value).map_err(parse_err)?))),
            "RegistryMirror" => out.push(Input::Mirror(Box::new(serde_yaml::from_value(value).map_err(parse_err)?))),
            other => {
                return Err(Error::Parse {
                    index,
                    message: format!("kind `{other}` is not Registry or RegistryMirror"),
                });
            }
        }
    }
    Ok(out)
}

fn complete_meta(meta: &mut kube::api::ObjectMeta, namespace: &str) {
    if meta.namespace.is_none() {
        meta.namespace = Some(namespace.to_string());
    }
    if meta.uid.is_none() {
        meta.uid = Some("00000000-0000-0000-0000-000000000000".into());
    }
}

/// Validates one input the way a reconcile would, with assumed Secrets.
pub fn validate_input(input: &mut Input, namespace: &str, settings: &Settings) -> Result<ValidatedRegistry, Error> {
    match input {
        Input::Registry(r) => {
            complete_meta(&mut r.metadata, namespace);
            let id = id_of(&**r, OwnerKind::Registry)?;
            let spec = CommonSpec::of_registry(r);
            let deref = Dereferenced::assumed(&id.name, &spec, &[]);
            validate::validate(&id, &spec, &deref, settings).map_err(|source| Error::Invalid {
                kind: id.kind,
                name: id.name.clone(),
                source,
            })
        }
        Input::Mirror(m) => {
            complete_meta(&mut m.metadata, namespace);
            let id = id_of(&**m, OwnerKind::RegistryMirror)?;
            let spec = CommonSpec::of_mirror(m);
            let extra = validate_mirror::upstream_secrets(&m.spec);
            let deref = Dereferenced::assumed(&id.name, &spec, &extra);
            validate_mirror::validate_mirror(&id, &m.spec, &deref, settings).map_err(|source| Error::Invalid {
                kind: id.kind,
                name: id.name.clone(),
                source,
            })
        }
    }
}

fn id_of<K: kube::Resource<DynamicType = ()>>(obj: &K, kind: OwnerKind) -> Result<Identity, Error> {
    identity(obj, kind).map_err(|e| Error::Parse { index: 0, message: format!("{kind}: {e} (set metadata.name)") })
}

/// Renders every resource in `text` to the YAML stream of its children.
pub fn render(text: &str, namespace: &str, settings: &Settings) -> Result<String, Error> {
    let mut out = String::new();
    for mut input in parse(text)? {
        let v = validate_input(&mut input, namespace, settings)?;
        out.push_str(&build(&v)?.to_yaml()?);
    }
    Ok(out)
}
