//! The web UI (`ui.enabled`), served under `<http.prefix><ui.path>` by the
//! registry itself: server-rendered HTML, a little plain JavaScript, every
//! asset compiled into the binary. Same origin and same auth as the API:
//! it shows only what the session's user (or an anonymous visitor) may
//! pull, and deletes only where `storage.delete.enabled` is set and the
//! user may delete, with a confirmation and a CSRF token (docs/ui.md).

mod html;
mod mirror;
mod pages;
mod session;
mod summary;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, Limited};

use crate::api::forwarded::Origin;
use crate::api::{AppState, PeerAddr};
use crate::auth::LoginFailure;
use crate::auth::viewer::{UiLogins, Viewer};
use html::{Who, esc};
use session::{COOKIE, Session, Sessions};

const CSS: &str = include_str!("assets/ui.css");
const JS: &str = include_str!("assets/ui.js");

/// Scripts and styles only from the UI's own files; no frames, no inline code.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub struct Ui {
    app: Arc<AppState>,
    /// `<prefix><path>`, ending in `/`.
    base: String,
    sessions: Sessions,
    summaries: summary::Summaries,
}

/// The UI's routes, or an empty router when it is off.
pub fn router(app: Arc<AppState>, path: &str) -> Router {
    let base = format!("{}{path}", app.prefix);
    let secret = app.registry.options().upload_secret.clone();
    let ui = Arc::new(Ui { app, base: base.clone(), sessions: Sessions::new(&secret), summaries: Default::default() });
    let bare = base.trim_end_matches('/').to_string();
    let to_base = base.clone();
    Router::new()
        .route(&bare, get(move || async move { redirect(&to_base, None) }))
        .route(&base, get(pages::repositories))
        .route(&format!("{base}tags"), get(pages::tags))
        .route(&format!("{base}manifest"), get(pages::manifest))
        .route(&format!("{base}mirror"), get(mirror::page))
        .route(&format!("{base}delete"), post(delete))
        .route(&format!("{base}login"), get(login_form).post(login))
        .route(&format!("{base}logout"), post(logout))
        .route(&format!("{base}assets/ui.css"), get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route(&format!("{base}assets/ui.js"), get(|| async { asset("text/javascript; charset=utf-8", JS) }))
        .with_state(ui)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

/// One request to the UI: who is looking, and the cookie to send back.
pub struct Visit {
    pub session: Session,
    pub viewer: Option<Viewer>,
    pub logins: UiLogins,
    set_cookie: Option<String>,
    pub origin: Origin,
}

impl Ui {
    fn visit(&self, headers: &HeaderMap, uri: &axum::http::Uri, peer: Option<std::net::IpAddr>) -> Visit {
        let origin = Origin::resolve(headers, uri, peer, self.app.tls, &self.app.trusted_proxies);
        let found = cookie(headers, COOKIE).and_then(|v| self.sessions.decode(v));
        let (session, fresh) = match found {
            Some(s) if self.sessions.needs_renewal(&s) => (self.sessions.renew(&s), true),
            Some(s) => (s, false),
            None => (self.sessions.start(None), true),
        };
        let auth = &self.app.auth;
        let set_cookie = fresh.then(|| self.sessions.set_cookie(&session, &self.base, origin.scheme == "https"));
        Visit { viewer: auth.ui_viewer(session.user.as_deref()), logins: auth.ui_logins(), session, set_cookie, origin }
    }

    fn who<'a>(&'a self, v: &'a Visit, csrf: &'a str) -> Who<'a> {
        Who {
            base: &self.base,
            mirror: self.app.mirror.is_some(),
            user: v.session.user.as_deref(),
            logins: matches!(v.logins, UiLogins::Required | UiLogins::Optional),
            csrf,
        }
    }

    /// A whole page, with the session cookie when it changed.
    fn respond(&self, v: &Visit, status: StatusCode, title: &str, body: &str) -> Response {
        let csrf = self.sessions.csrf(&v.session);
        let html = html::page(title, &self.who(v, &csrf), body);
        let mut r = (status, html).into_response();
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        secure_headers(h);
        if let Some(c) = v.set_cookie.as_deref().and_then(|c| HeaderValue::from_str(c).ok()) {
            h.append(header::SET_COOKIE, c);
        }
        r
    }

    /// A short page saying what went wrong.
    fn problem(&self, v: &Visit, status: StatusCode, message: &str) -> Response {
        let body = format!(
            "<h1>{}</h1><p role=\"alert\">{}</p><p><a href=\"{}\">Back to the repositories</a></p>",
            esc(status.canonical_reason().unwrap_or("Error")),
            esc(message),
            esc(&self.base)
        );
        self.respond(v, status, status.canonical_reason().unwrap_or("Error"), &body)
    }

    /// The viewer, or the answer for a visit that may see nothing.
    fn require_viewer<'v>(&self, v: &'v Visit) -> Result<&'v Viewer, Box<Response>> {
        match (&v.viewer, v.logins) {
            (Some(viewer), _) => Ok(viewer),
            (None, UiLogins::Unavailable) => Err(Box::new(self.problem(
                v,
                StatusCode::FORBIDDEN,
                "This registry takes tokens from an external issuer, so it cannot check passwords: the UI needs \
                 auth.token.builtin or auth.htpasswd.",
            ))),
            (None, _) => Err(Box::new(redirect(&format!("{}login", self.base), v.set_cookie.as_deref()))),
        }
    }

    /// Whether the viewer may see `repo`: pull access, and on a pass-through
    /// mirror not a mirrored repository (whose readers the upstream decides,
    /// client by client: the API's catalog hides them too).
    fn may_see(&self, viewer: &Viewer, repo: &crate::registry::reference::RepoName) -> bool {
        viewer.may_pull(repo.as_str()) && crate::api::mirror::listed(&self.app, repo)
    }

    /// The host in pull commands: `http.host` when set, else the host the browser reached.
    fn pull_host(&self, v: &Visit) -> String {
        match &self.app.host {
            Some(h) => {
                let h = h.trim_end_matches('/');
                h.split_once("://").map_or(h, |(_, rest)| rest).to_string()
            }
            None => v.origin.host.clone().unwrap_or_else(|| "localhost".into()),
        }
    }
}

fn secure_headers(h: &mut HeaderMap) {
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn redirect(to: &str, set_cookie: Option<&str>) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(to) {
        h.insert(header::LOCATION, v);
    }
    if let Some(c) = set_cookie.and_then(|c| HeaderValue::from_str(c).ok()) {
        h.append(header::SET_COOKIE, c);
    }
    secure_headers(h);
    r
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The request's visit and its query or form parameters.
async fn read(ui: &Ui, req: Request) -> Result<(Visit, Vec<(String, String)>), Response> {
    let (parts, body) = req.into_parts();
    let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
    let visit = ui.visit(&parts.headers, &parts.uri, peer);
    let mut params: Vec<(String, String)> =
        parts.uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    if parts.method == axum::http::Method::POST {
        let Ok(collected) = Limited::new(body, 64 * 1024).collect().await else {
            return Err(ui.problem(&visit, StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."));
        };
        params.extend(form_urlencoded::parse(&collected.to_bytes()).into_owned());
    }
    Ok((visit, params))
}

pub fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

async fn login_form(State(ui): State<Arc<Ui>>, req: Request) -> Response {
    match read(&ui, req).await {
        Ok((v, _)) => login_page(&ui, &v, StatusCode::OK, None),
        Err(r) => r,
    }
}

fn login_page(ui: &Ui, v: &Visit, status: StatusCode, error: Option<&str>) -> Response {
    if !matches!(v.logins, UiLogins::Required | UiLogins::Optional) {
        return ui.problem(v, StatusCode::NOT_FOUND, "This registry has no users to log in as.");
    }
    let error =
        error.map_or(String::new(), |e| format!("<p class=\"error\" role=\"alert\" id=\"login-error\">{}</p>", esc(e)));
    let body = format!(
        "<h1>Log in</h1>{error}<form method=\"post\" action=\"{}login\" class=\"login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label for=\"username\">User name</label>\
         <input id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus>\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\" id=\"login-submit\">Log in</button></form>",
        esc(&ui.base),
        esc(&ui.sessions.csrf(&v.session))
    );
    ui.respond(v, status, "Log in", &body)
}

async fn login(State(ui): State<Arc<Ui>>, req: Request) -> Response {
    let (v, params) = match read(&ui, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !ui.sessions.csrf_ok(&v.session, param(&params, "csrf")) {
        return login_page(&ui, &v, StatusCode::FORBIDDEN, Some("The form expired; try again."));
    }
    let (user, password) = (param(&params, "username").unwrap_or(""), param(&params, "password").unwrap_or(""));
    match ui.app.auth.ui_login(user, password, v.origin.client).await {
        Ok(()) => {
            ui.sessions.revoke(&v.session);
            let s = ui.sessions.start(Some(user));
            tracing::info!(user, "ui login");
            redirect(&ui.base, Some(&ui.sessions.set_cookie(&s, &ui.base, v.origin.scheme == "https")))
        }
        Err(LoginFailure::Throttled(after)) => login_page(
            &ui,
            &v,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!("Too many failed logins; try again in {} seconds.", after.as_secs().max(1))),
        ),
        Err(LoginFailure::Invalid) => {
            login_page(&ui, &v, StatusCode::UNAUTHORIZED, Some("Wrong user name or password."))
        }
    }
}

async fn logout(State(ui): State<Arc<Ui>>, req: Request) -> Response {
    let (v, params) = match read(&ui, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !ui.sessions.csrf_ok(&v.session, param(&params, "csrf")) {
        return ui.problem(&v, StatusCode::FORBIDDEN, "The logout form carried no valid CSRF token.");
    }
    ui.sessions.revoke(&v.session);
    let anonymous = ui.sessions.start(None);
    redirect(&ui.base, Some(&ui.sessions.set_cookie(&anonymous, &ui.base, v.origin.scheme == "https")))
}

async fn delete(State(ui): State<Arc<Ui>>, req: Request) -> Response {
    use crate::registry::reference::{Reference, RepoName};
    let (v, params) = match read(&ui, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    // Checked first: a forged form learns nothing else.
    if !ui.sessions.csrf_ok(&v.session, param(&params, "csrf")) {
        return ui.problem(
            &v,
            StatusCode::FORBIDDEN,
            "The delete form carried no valid CSRF token; nothing was deleted.",
        );
    }
    let viewer = match ui.require_viewer(&v) {
        Ok(viewer) => viewer,
        Err(r) => return *r,
    };
    let Some(repo) = param(&params, "repo").and_then(|r| RepoName::parse(r).ok()).filter(|r| ui.may_see(viewer, r))
    else {
        return ui.problem(&v, StatusCode::NOT_FOUND, "No such repository.");
    };
    let Some(reference) = param(&params, "reference").and_then(|r| Reference::parse(r).ok()) else {
        return ui.problem(&v, StatusCode::BAD_REQUEST, "The form names no tag or digest.");
    };
    if !ui.app.registry.options().delete_enabled {
        return ui.problem(&v, StatusCode::METHOD_NOT_ALLOWED, "Deleting is disabled (storage.delete.enabled).");
    }
    if !viewer.may_delete(repo.as_str()) {
        return ui.problem(&v, StatusCode::FORBIDDEN, "You may not delete in this repository.");
    }
    match ui.app.registry.manifest_delete(&repo, &reference).await {
        Ok(()) => {
            tracing::info!(user = v.session.user.as_deref().unwrap_or(""), repository = %repo, reference = %reference, "ui delete");
            redirect(&format!("{}tags?{}", ui.base, html::query(&[("repo", repo.as_str())])), v.set_cookie.as_deref())
        }
        Err(e) => ui.problem(&v, StatusCode::CONFLICT, &format!("Not deleted: {e}")),
    }
}
