//! `GET` and `POST /auth/token`: the built-in token service's endpoint, in
//! the docker token spec's shape (GET with Basic auth; POST with the OAuth2
//! password and refresh_token grants).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};

use crate::auth::scope::Access;
use crate::auth::token_service::TokenService;
use crate::auth::{Auth, Denial, LoginFailure, basic_credentials, quote};

use super::error::ApiError;
use super::forwarded::Origin;
use super::{AppState, PeerAddr};

fn unauthorized(service: &TokenService, message: &str) -> ApiError {
    ApiError::from(Denial::Unauthorized {
        challenge: format!("Basic realm={}", quote(&service.service)),
        message: message.to_string(),
    })
}

/// Scopes from repeated `scope` parameters, each possibly space-separated.
fn scopes<'a>(values: impl Iterator<Item = &'a str>) -> Vec<Access> {
    values.flat_map(|v| v.split(' ')).filter_map(Access::parse).collect()
}

pub async fn endpoint(State(state): State<Arc<AppState>>, req: Request) -> Response {
    match handle(&state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(state: &AppState, req: Request) -> Result<Response, ApiError> {
    let Some(service) = state.auth.token_service() else {
        return Err(ApiError::not_found());
    };
    let (parts, body) = req.into_parts();
    let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
    let client = Origin::resolve(&parts.headers, &parts.uri, peer, state.tls, &state.trusted_proxies).client;
    let params: Vec<(String, String)> = match parts.method {
        Method::GET => {
            parts.uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
        }
        Method::POST => {
            let bytes = Limited::new(body, 64 * 1024)
                .collect()
                .await
                .map_err(|e| ApiError::invalid_parameter(format!("reading the form: {e}")))?
                .to_bytes();
            form_urlencoded::parse(&bytes).into_owned().collect()
        }
        _ => return Err(ApiError::method_not_allowed()),
    };
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if let Some(s) = param("service")
        && s != service.service
    {
        return Err(ApiError::invalid_parameter(format!(
            "this token service issues tokens for `{}`, not `{s}`",
            service.service
        )));
    }
    let requested = scopes(params.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.as_str()));

    let (user, offline) = if parts.method == Method::POST {
        match param("grant_type") {
            Some("password") => {
                let user = param("username").ok_or_else(|| ApiError::invalid_parameter("username is required"))?;
                let password = param("password").unwrap_or("");
                login(&state.auth, service, user, password, client).await?;
                (Some(user.to_string()), param("access_type") == Some("offline"))
            }
            Some("refresh_token") => {
                let token =
                    param("refresh_token").ok_or_else(|| ApiError::invalid_parameter("refresh_token is required"))?;
                let user = state.auth.verify_refresh(token).map_err(|m| unauthorized(service, &m))?;
                if !service.user_exists(&user) {
                    return Err(unauthorized(service, "the user of this refresh token no longer exists"));
                }
                (Some(user), true)
            }
            other => {
                return Err(ApiError::invalid_parameter(format!(
                    "unsupported grant_type {other:?}; use password or refresh_token"
                )));
            }
        }
    } else {
        match basic_credentials(&parts.headers) {
            Some((user, password)) => {
                if let Some(account) = param("account")
                    && account != user
                {
                    return Err(ApiError::invalid_parameter("the account parameter does not match the credentials"));
                }
                login(&state.auth, service, &user, &password, client).await?;
                (Some(user), param("offline_token") == Some("true"))
            }
            None => (None, false),
        }
    };
    let response = service.issue(user.as_deref(), &requested, offline).map_err(|e| {
        tracing::error!(error = %e, "issuing a token");
        ApiError::internal("could not issue a token")
    })?;
    tracing::info!(user = user.as_deref().unwrap_or(""), requested = requested.len(), "issued token");
    let mut resp = Json(response).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

async fn login(
    auth: &Auth,
    service: &TokenService,
    user: &str,
    password: &str,
    client: Option<std::net::IpAddr>,
) -> Result<(), ApiError> {
    match auth.login(service.users(), user, password, client).await {
        Ok(()) => Ok(()),
        Err(LoginFailure::Throttled(retry_after)) => Err(ApiError::from(Denial::TooManyRequests { retry_after })),
        Err(LoginFailure::Invalid) => Err(unauthorized(service, "invalid username or password")),
    }
}
