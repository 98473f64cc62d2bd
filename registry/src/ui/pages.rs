//! The UI's pages: repositories (search and paging over the search index),
//! a repository's tags, and one manifest.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use futures::StreamExt as _;
use serde_json::Value;

use crate::registry::browse::TagInfo;
use crate::registry::digest::Digest;
use crate::registry::reference::RepoName;
use crate::registry::search::Query;

use super::html::{bytes, esc, query, short_digest, time_el};
use super::summary::Kind;
use super::{Ui, Visit, param, read};

/// Repositories per page of the list.
const PAGE: usize = 50;
/// The longest search a page accepts (the API's limit).
const MAX_QUERY: usize = 384;
/// Image configs larger than this are not shown.
const MAX_CONFIG: u64 = 4 << 20;

fn tags_href(ui: &Ui, repo: &str) -> String {
    format!("{}tags?{}", ui.base, query(&[("repo", repo)]))
}

fn manifest_href(ui: &Ui, repo: &str, digest: &str) -> String {
    format!("{}manifest?{}", ui.base, query(&[("repo", repo), ("digest", digest)]))
}

/// Size (distinct blobs) and last push of a repository's tagged content.
async fn repo_stats(ui: &Ui, repo: &RepoName) -> (u64, Option<std::time::SystemTime>) {
    let Ok(tags) = ui.app.registry.tag_details(repo).await else { return (0, None) };
    let mut blobs: HashMap<String, u64> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for t in &tags {
        if seen.insert(t.digest.clone()) {
            blobs.extend(ui.summaries.blobs(&ui.app.registry, repo, &t.digest).await);
        }
    }
    (blobs.values().sum(), tags.iter().filter_map(|t| t.pushed).max())
}

pub async fn repositories(State(ui): State<Arc<Ui>>, req: Request) -> Response {
    let (v, params) = match read(&ui, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let viewer = match ui.require_viewer(&v) {
        Ok(viewer) => viewer,
        Err(r) => return *r,
    };
    let q = param(&params, "q").unwrap_or("").trim();
    if q.len() > MAX_QUERY || q.chars().any(char::is_control) {
        return ui.problem(&v, StatusCode::BAD_REQUEST, "That search is too long or holds control characters.");
    }
    let last = match param(&params, "last").filter(|l| !l.is_empty()) {
        Some(l) => match RepoName::parse(l) {
            Ok(n) => Some(n.to_string()),
            Err(_) => return ui.problem(&v, StatusCode::BAD_REQUEST, "The page link is not valid."),
        },
        None => None,
    };
    let text = q.to_ascii_lowercase();
    let visible = |name: &str| RepoName::parse(name).is_ok_and(|r| ui.may_see(viewer, &r));
    let page = match ui.app.registry.search(&Query { text, n: PAGE, last }, &visible).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "ui: search failed");
            return ui.problem(
                &v,
                StatusCode::SERVICE_UNAVAILABLE,
                "The registry's storage did not answer; try again.",
            );
        }
    };
    let names: Vec<String> = page.hits.iter().map(|h| h.name.clone()).collect();
    let stats: Vec<(u64, Option<std::time::SystemTime>)> = futures::stream::iter(names)
        .map(|name| {
            let ui = ui.clone();
            async move {
                match RepoName::parse(&name) {
                    Ok(r) => repo_stats(&ui, &r).await,
                    Err(_) => (0, None),
                }
            }
        })
        .buffered(8)
        .collect()
        .await;
    let mut rows = String::new();
    for (h, (size, pushed)) in page.hits.iter().zip(stats) {
        let tags_note = if h.tags.is_empty() {
            String::new()
        } else {
            format!(" <span class=\"matched\">matched {}</span>", esc(&h.tags.join(", ")))
        };
        let _ = write!(
            rows,
            "<tr><th scope=\"row\"><a href=\"{}\">{}</a>{tags_note}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&tags_href(&ui, &h.name)),
            esc(&h.name),
            h.tag_count,
            esc(&bytes(size)),
            time_el(pushed)
        );
    }
    let table = if page.hits.is_empty() {
        "<p id=\"empty\">No repositories found.</p>".to_string()
    } else {
        format!(
            "<div class=\"scroll\"><table id=\"repositories\"><caption>Repositories you may pull{}</caption>\
             <thead><tr><th scope=\"col\">Repository</th><th scope=\"col\">Tags</th><th scope=\"col\">Size</th>\
             <th scope=\"col\">Last push</th></tr></thead><tbody>{rows}</tbody></table></div>",
            if q.is_empty() { String::new() } else { format!(" matching “{}”", esc(q)) }
        )
    };
    let next = match (page.more, page.hits.last()) {
        (true, Some(h)) => format!(
            "<nav aria-label=\"Pages\" class=\"pages\"><a rel=\"next\" id=\"next-page\" href=\"{}?{}\">Next page</a></nav>",
            esc(&ui.base),
            esc(&query(&[("q", q), ("last", &h.name)]))
        ),
        _ => String::new(),
    };
    let body = format!(
        "<h1>Repositories</h1><form role=\"search\" method=\"get\" action=\"{}\" class=\"search\">\
         <label for=\"q\">Search repositories and tags</label>\
         <input id=\"q\" name=\"q\" type=\"search\" value=\"{}\" placeholder=\"name, tag or name:tag\">\
         <button type=\"submit\" id=\"search-submit\">Search</button></form>{table}{next}",
        esc(&ui.base),
        esc(q)
    );
    ui.respond(&v, StatusCode::OK, "Repositories", &body)
}

/// The repository named by `repo`, when the viewer may pull it (else a 404 page).
fn visible_repo(ui: &Ui, v: &Visit, params: &[(String, String)]) -> Result<RepoName, Box<Response>> {
    let viewer = ui.require_viewer(v)?;
    param(params, "repo")
        .and_then(|r| RepoName::parse(r).ok())
        .filter(|r| ui.may_see(viewer, r))
        .ok_or_else(|| Box::new(ui.problem(v, StatusCode::NOT_FOUND, "No such repository, or you may not pull it.")))
}

fn delete_form(ui: &Ui, v: &Visit, repo: &str, reference: &str, label: &str, what: &str) -> String {
    let allowed = ui.app.registry.options().delete_enabled && v.viewer.as_ref().is_some_and(|vw| vw.may_delete(repo));
    if !allowed {
        return String::new();
    }
    format!(
        "<form method=\"post\" action=\"{}delete\" class=\"inline\" data-confirm=\"Delete {}? This cannot be undone.\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"repo\" value=\"{}\">\
         <input type=\"hidden\" name=\"reference\" value=\"{}\">\
         <button type=\"submit\" class=\"danger\" aria-label=\"Delete {}\">{label}</button></form>",
        esc(&ui.base),
        esc(what),
        esc(&ui.sessions.csrf(&v.session)),
        esc(repo),
        esc(reference),
        esc(what)
    )
}

pub async fn tags(State(ui): State<Arc<Ui>>, req: Request) -> Response {
    let (v, params) = match read(&ui, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let repo = match visible_repo(&ui, &v, &params) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let mut tags: Vec<TagInfo> = match ui.app.registry.tag_details(&repo).await {
        Ok(t) => t,
        Err(_) => return ui.problem(&v, StatusCode::NOT_FOUND, "No such repository, or you may not pull it."),
    };
    let by_time = param(&params, "sort") == Some("pushed");
    if by_time {
        tags.sort_by(|a, b| b.pushed.cmp(&a.pushed).then_with(|| a.tag.as_str().cmp(b.tag.as_str())));
    }
    let host = ui.pull_host(&v);
    let mut rows = String::new();
    for t in &tags {
        let s = ui.summaries.get(&ui.app.registry, &repo, &t.digest).await;
        let size: u64 = ui.summaries.blobs(&ui.app.registry, &repo, &t.digest).await.values().sum();
        let (kind, platforms) = match s.as_deref() {
            Some(s) if s.kind == Kind::Index => ("index", s.platforms().join(", ")),
            Some(s) if s.kind == Kind::Image => ("image", String::new()),
            _ => ("artifact", String::new()),
        };
        let pull = format!("docker pull {host}/{repo}:{}", t.tag);
        let _ = write!(
            rows,
            "<tr data-tag=\"{tag}\"><th scope=\"row\">{tag}</th><td><a href=\"{href}\">{digest}</a></td><td>{kind}</td>\
             <td>{platforms}</td><td class=\"num\">{size}</td><td>{pushed}</td>\
             <td class=\"pull\"><input class=\"pull-command\" readonly value=\"{pull}\" aria-label=\"Pull command for {tag}\">\
             <button type=\"button\" data-copy=\"{pull}\" aria-label=\"Copy the pull command for {tag}\">Copy</button></td>\
             <td>{delete}</td></tr>",
            tag = esc(t.tag.as_str()),
            href = esc(&manifest_href(&ui, repo.as_str(), &t.digest.to_string())),
            digest = short_digest(&t.digest.to_string()),
            platforms = esc(&platforms),
            size = esc(&bytes(size)),
            pushed = time_el(t.pushed),
            pull = esc(&pull),
            delete = delete_form(&ui, &v, repo.as_str(), t.tag.as_str(), "Delete", &format!("tag {}", t.tag)),
        );
    }
    let sort_link = |key: &str, label: &str, active: bool| {
        if active {
            format!("<span aria-current=\"true\">{label}</span>")
        } else {
            format!("<a href=\"{}&amp;sort={key}\" id=\"sort-{key}\">{label}</a>", esc(&tags_href(&ui, repo.as_str())))
        }
    };
    let table = if tags.is_empty() {
        "<p id=\"empty\">This repository has no tags.</p>".to_string()
    } else {
        format!(
            "<p class=\"sort\">Sort by {} · {}</p><div class=\"scroll\"><table id=\"tags\"><caption>Tags of {}</caption><thead><tr>\
             <th scope=\"col\" aria-sort=\"{}\">Tag</th><th scope=\"col\">Digest</th><th scope=\"col\">Type</th>\
             <th scope=\"col\">Platforms</th><th scope=\"col\">Size</th><th scope=\"col\" aria-sort=\"{}\">Pushed</th>\
             <th scope=\"col\">Pull</th><th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th></tr></thead>\
             <tbody>{rows}</tbody></table></div><p role=\"status\" aria-live=\"polite\" id=\"copy-status\"></p>",
            sort_link("name", "name", !by_time),
            sort_link("pushed", "push time", by_time),
            esc(repo.as_str()),
            if by_time { "none" } else { "ascending" },
            if by_time { "descending" } else { "none" },
        )
    };
    let body = format!(
        "<nav aria-label=\"Breadcrumb\" class=\"crumbs\"><a href=\"{}\">Repositories</a> / {}</nav><h1>{}</h1>{table}",
        esc(&ui.base),
        esc(repo.as_str()),
        esc(repo.as_str())
    );
    ui.respond(&v, StatusCode::OK, repo.as_str(), &body)
}

fn descriptor_rows(ui: &Ui, repo: &str, list: &[super::summary::Desc], link: bool) -> String {
    let mut rows = String::new();
    for d in list {
        let digest = if link {
            format!("<a href=\"{}\">{}</a>", esc(&manifest_href(ui, repo, &d.digest)), short_digest(&d.digest))
        } else {
            short_digest(&d.digest)
        };
        let _ = write!(
            rows,
            "<tr><td>{digest}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            esc(d.platform.as_deref().or(d.artifact_type.as_deref()).unwrap_or("")),
            esc(&d.media_type),
            esc(&bytes(d.size))
        );
    }
    rows
}

fn table(id: &str, caption: &str, head: &[&str], rows: &str) -> String {
    let head: String = head.iter().map(|h| format!("<th scope=\"col\">{}</th>", esc(h))).collect();
    format!(
        "<div class=\"scroll\"><table id=\"{id}\"><caption>{}</caption><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>",
        esc(caption)
    )
}

/// Entrypoint, command, environment, labels and history of an image config.
fn config_section(config: &Value) -> String {
    let c = &config["config"];
    let words =
        |v: &Value| v.as_array().map(|a| a.iter().filter_map(Value::as_str).map(esc).collect::<Vec<_>>().join(" "));
    let mut out = String::from("<h2>Config</h2><dl class=\"config\">");
    for (label, key) in [("Entrypoint", "Entrypoint"), ("Command", "Cmd")] {
        if let Some(w) = words(&c[key]) {
            let _ = write!(out, "<dt>{label}</dt><dd><code>{w}</code></dd>");
        }
    }
    for (label, key) in [("Working directory", "WorkingDir"), ("User", "User")] {
        if let Some(s) = c[key].as_str().filter(|s| !s.is_empty()) {
            let _ = write!(out, "<dt>{label}</dt><dd><code>{}</code></dd>", esc(s));
        }
    }
    let _ = write!(
        out,
        "<dt>Platform</dt><dd>{}/{}</dd></dl>",
        esc(config["os"].as_str().unwrap_or("?")),
        esc(config["architecture"].as_str().unwrap_or("?"))
    );
    if let Some(env) = c["Env"].as_array().filter(|e| !e.is_empty()) {
        let items: String =
            env.iter().filter_map(Value::as_str).map(|e| format!("<li><code>{}</code></li>", esc(e))).collect();
        let _ = write!(out, "<h3>Environment</h3><ul id=\"env\">{items}</ul>");
    }
    if let Some(labels) = c["Labels"].as_object().filter(|l| !l.is_empty()) {
        let rows: String = labels
            .iter()
            .map(|(k, v)| {
                format!("<tr><th scope=\"row\">{}</th><td>{}</td></tr>", esc(k), esc(v.as_str().unwrap_or("")))
            })
            .collect();
        out.push_str(&table("labels", "Labels", &["Label", "Value"], &rows));
    }
    if let Some(history) = config["history"].as_array().filter(|h| !h.is_empty()) {
        let rows: String = history
            .iter()
            .map(|h| {
                format!(
                    "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                    esc(h["created"].as_str().unwrap_or("")),
                    esc(h["created_by"].as_str().unwrap_or("")),
                    if h["empty_layer"].as_bool() == Some(true) { "no layer" } else { "layer" }
                )
            })
            .collect();
        out.push_str(&table("history", "History", &["Created", "Created by", ""], &rows));
    }
    out
}

pub async fn manifest(State(ui): State<Arc<Ui>>, req: Request) -> Response {
    let (v, params) = match read(&ui, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let repo = match visible_repo(&ui, &v, &params) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let Some(digest) = param(&params, "digest").and_then(|d| d.parse::<Digest>().ok()) else {
        return ui.problem(&v, StatusCode::BAD_REQUEST, "That is not a digest.");
    };
    let registry = &ui.app.registry;
    let Some(s) = ui.summaries.get(registry, &repo, &digest).await else {
        return ui.problem(&v, StatusCode::NOT_FOUND, "This repository has no such manifest.");
    };
    let (r, d) = (repo.as_str(), digest.to_string());
    let kind = match s.kind {
        Kind::Index => "Index",
        Kind::Image => "Image",
        Kind::Other => "Artifact",
    };
    let mut body = format!(
        "<nav aria-label=\"Breadcrumb\" class=\"crumbs\"><a href=\"{}\">Repositories</a> / <a href=\"{}\">{}</a></nav>\
         <h1>{kind} <code class=\"digest\">{}</code></h1><dl class=\"facts\"><dt>Media type</dt><dd>{}</dd>\
         <dt>Manifest size</dt><dd>{}</dd>",
        esc(&ui.base),
        esc(&tags_href(&ui, r)),
        esc(r),
        esc(&d),
        esc(&s.media_type),
        esc(&bytes(s.manifest_size))
    );
    if let Some(t) = &s.artifact_type {
        let _ = write!(body, "<dt>Artifact type</dt><dd>{}</dd>", esc(t));
    }
    if let Some(subject) = &s.subject {
        let _ = write!(
            body,
            "<dt>Subject</dt><dd><a id=\"subject\" href=\"{}\">{}</a></dd>",
            esc(&manifest_href(&ui, r, subject)),
            short_digest(subject)
        );
    }
    body.push_str("</dl>");
    body.push_str(&delete_form(&ui, &v, r, &d, "Delete this manifest", &format!("manifest {d} and every tag on it")));
    if s.kind == Kind::Index {
        let rows = descriptor_rows(&ui, r, &s.children, true);
        body.push_str(&table(
            "children",
            "Manifests in this index",
            &["Digest", "Platform", "Media type", "Size"],
            &rows,
        ));
    }
    if let Some(cfg) = &s.config {
        body.push_str(&table(
            "config-blob",
            "Config",
            &["Digest", "", "Media type", "Size"],
            &descriptor_rows(&ui, r, std::slice::from_ref(cfg), false),
        ));
    }
    if !s.layers.is_empty() {
        let total: u64 = s.layers.iter().map(|l| l.size).sum();
        let rows = descriptor_rows(&ui, r, &s.layers, false);
        body.push_str(&table(
            "layers",
            &format!("Layers ({} in all)", bytes(total)),
            &["Digest", "", "Media type", "Size"],
            &rows,
        ));
    }
    if s.kind == Kind::Image
        && let Some(cfg) = &s.config
        && let Ok(cd) = cfg.digest.parse::<Digest>()
        && let Ok(Some(bytes)) = registry.small_blob(&repo, &cd, MAX_CONFIG).await
        && let Ok(config) = serde_json::from_slice::<Value>(&bytes)
    {
        body.push_str(&config_section(&config));
    }
    if !s.annotations.is_empty() {
        let rows: String = s
            .annotations
            .iter()
            .map(|(k, v)| format!("<tr><th scope=\"row\">{}</th><td>{}</td></tr>", esc(k), esc(v)))
            .collect();
        body.push_str(&table("annotations", "Annotations", &["Annotation", "Value"], &rows));
    }
    match registry.referrers(&repo, &digest, None).await {
        Ok(idx) if !idx.manifests.is_empty() => {
            let list: Vec<super::summary::Desc> = idx
                .manifests
                .iter()
                .map(|m| super::summary::Desc {
                    digest: m.digest.clone(),
                    media_type: m.media_type.clone(),
                    size: m.size,
                    platform: None,
                    artifact_type: m.artifact_type.clone(),
                })
                .collect();
            let rows = descriptor_rows(&ui, r, &list, true);
            body.push_str(&table(
                "referrers",
                "Referrers (signatures, SBOMs, attestations)",
                &["Digest", "Artifact type", "Media type", "Size"],
                &rows,
            ));
        }
        _ => {}
    }
    ui.respond(&v, StatusCode::OK, &format!("{r}@{d}"), &body)
}
