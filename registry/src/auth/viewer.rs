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

/// Who may use the web UI, and how they log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiLogins {
    /// No auth: the UI is open, like the API.
    None,
    /// htpasswd: only logged-in users see anything.
    Required,
    /// The built-in token service: anonymous rules apply until one logs in.
    Optional,
    /// An external token issuer: the registry cannot check passwords.
    Unavailable,
}

impl Viewer {
    /// Whether this viewer may delete in `repository` (the rules' `delete`).
    pub fn may_delete(&self, repository: &str) -> bool {
        match self {
            Viewer::Everything => true,
            Viewer::Rules { rules, user } => rules.permitted(user.as_deref(), repository).contains("delete"),
        }
    }
}

impl Auth {
    pub fn ui_logins(&self) -> UiLogins {
        match &self.method {
            Method::Open => UiLogins::None,
            Method::Htpasswd { .. } => UiLogins::Required,
            Method::Token { builtin: Some(_), .. } => UiLogins::Optional,
            Method::Token { builtin: None, .. } => UiLogins::Unavailable,
        }
    }

    /// What the UI shows a session of `user` (`None`: anonymous); `None`
    /// when that session may see nothing.
    pub fn ui_viewer(&self, user: Option<&str>) -> Option<Viewer> {
        match &self.method {
            Method::Open => Some(Viewer::Everything),
            Method::Htpasswd { users, .. } => user.filter(|u| users.get().contains(u)).map(|_| Viewer::Everything),
            Method::Token { builtin: Some(b), .. } => {
                // A user removed from the file is anonymous from the next request on.
                let user = user.filter(|u| b.user_exists(u)).map(str::to_string);
                Some(Viewer::Rules { rules: b.rules(), user })
            }
            Method::Token { builtin: None, .. } => None,
        }
    }

    /// Checks a password typed into the UI's login form.
    pub async fn ui_login(
        &self,
        user: &str,
        password: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<(), LoginFailure> {
        let users = match &self.method {
            Method::Htpasswd { users, .. } => users.get(),
            Method::Token { builtin: Some(b), .. } => b.users(),
            _ => return Err(LoginFailure::Invalid),
        };
        self.login(users, user, password, client).await
    }
}
