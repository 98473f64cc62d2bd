//! Who is searching, and which repositories they may see: search answers
//! anonymous callers too (anonymous rules apply), so it does not require the
//! scopes an endpoint needs the way [`Auth::check`] does.

use std::sync::Arc;

use super::access::AccessRules;
use super::scope::Access;
use super::{Auth, Denial, LoginFailure, Method, RequestAuth, basic_credentials, bearer, quote};

/// The scope the docker daemon asks for before `/v1/search`.
pub fn search_scope() -> Access {
    Access { kind: "registry".into(), name: "catalog".into(), actions: vec!["search".into()] }
}

/// What a search caller may see.
pub enum Viewer {
    /// No auth, htpasswd, or an external token with the catalog scope:
    /// everything, as the catalog shows them.
    Everything,
    /// The built-in token service: what its rules let this user (or an
    /// anonymous caller) pull, read live.
    Rules { rules: Arc<AccessRules>, user: Option<String> },
}

impl Viewer {
    pub fn may_pull(&self, repository: &str) -> bool {
        match self {
            Viewer::Everything => true,
            Viewer::Rules { rules, user } => rules.permitted(user.as_deref(), repository).contains("pull"),
        }
    }

    pub fn user(&self) -> Option<&str> {
        match self {
            Viewer::Everything => None,
            Viewer::Rules { user, .. } => user.as_deref(),
        }
    }
}

impl Auth {
    /// The caller of a search. With the built-in token service it may bring
    /// a bearer token, Basic credentials of a user (the docker daemon sends
    /// these to `/v1/search`), or nothing (anonymous); a wrong one is refused.
    pub async fn viewer(&self, req: &RequestAuth<'_>) -> Result<Viewer, Denial> {
        let Method::Token { service, builtin: Some(builtin), .. } = &self.method else {
            // Elsewhere search is as open as the catalog.
            self.check(req, &[search_scope()]).await?;
            return Ok(Viewer::Everything);
        };
        let user = if bearer(req.headers).is_some() {
            // Verified as any token, with the scope the docker daemon asks for.
            self.check(req, &[search_scope()]).await?.user
        } else if let Some((user, password)) = basic_credentials(req.headers) {
            match self.login(builtin.users(), &user, &password, req.client).await {
                Ok(()) => Some(user),
                Err(LoginFailure::Throttled(retry_after)) => return Err(Denial::TooManyRequests { retry_after }),
                Err(LoginFailure::Invalid) => {
                    return Err(Denial::Unauthorized {
                        challenge: format!("Basic realm={}", quote(service)),
                        message: "invalid username or password".into(),
                    });
                }
            }
        } else {
            None
        };
        Ok(Viewer::Rules { rules: builtin.rules(), user })
    }
}
