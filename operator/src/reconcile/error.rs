//! The one reconcile error: a variant per step. The variant (or the step's
//! own variant below it) names the failing action, which is both the event
//! reason and the failure metric's label.

use super::{apply, dereference, serving_cert, update_status, validate};

/// A reconcile failure: one variant per step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object has no name, namespace or uid.
    #[error("object has no name, namespace or uid")]
    MissingObjectKey,
    /// Step 1, the serving certificate.
    #[error(transparent)]
    ServingCert(#[from] serving_cert::Error),
    /// Step 1.
    #[error(transparent)]
    Dereference(#[from] dereference::Error),
    /// Step 2.
    #[error(transparent)]
    Validate(#[from] validate::Error),
    /// Step 3.
    #[error("rendering the configuration: {0}")]
    Build(#[source] serde_yaml::Error),
    /// Step 4.
    #[error(transparent)]
    Apply(#[from] apply::Error),
    /// Step 5.
    #[error(transparent)]
    UpdateStatus(#[from] update_status::Error),
}

impl Error {
    /// The failure metric label, also the event reason: the failing action.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::MissingObjectKey => "MissingObjectKey",
            Error::ServingCert(serving_cert::Error::Api { .. }) => "KeepServingCertificate",
            Error::ServingCert(serving_cert::Error::Pki(_)) => "IssueCertificate",
            Error::ServingCert(serving_cert::Error::CaSecretEmpty { .. }) => "CaSecretEmpty",
            Error::Dereference(dereference::Error::FetchSecret { .. }) => "FetchSecret",
            Error::Dereference(dereference::Error::GeneratedSecret { .. }) => "KeepGeneratedSecret",
            Error::Dereference(dereference::Error::GeneratedSecretEmpty { .. }) => "GeneratedSecretEmpty",
            Error::Dereference(dereference::Error::GenerateKey(_)) => "GenerateKey",
            Error::Validate(e) => e.reason(),
            Error::Build(_) => "RenderConfig",
            Error::Apply(apply::Error::Apply { .. }) => "Apply",
            Error::Apply(apply::Error::Prune { .. }) => "Prune",
            Error::UpdateStatus(_) => "PatchStatus",
        }
    }

    /// Whether only a change to the resource can fix it.
    pub fn needs_spec_change(&self) -> bool {
        matches!(self, Error::Validate(e) if !e.depends_on_other_objects())
    }
}
