//! The mirror's page: its upstreams, what the cache holds against
//! `maxsize`, this replica's hits and misses, and the cached repositories
//! the viewer may see (none by name on a pass-through mirror).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::metrics::{MirrorCounts, mirror_counts};
use crate::mirror::Mirror;
use crate::mirror::upstream::Credentials;
use crate::registry::reference::RepoName;

use super::html::{bytes, esc, query};
use super::{Ui, read};

/// Cached repositories listed, largest first.
const ROWS: usize = 200;

pub async fn page(State(ui): State<Arc<Ui>>, req: Request) -> Response {
    let v = match read(&ui, req).await {
        Ok((v, _)) => v,
        Err(r) => return r,
    };
    let viewer = match ui.require_viewer(&v) {
        Ok(viewer) => viewer,
        Err(r) => return *r,
    };
    let Some(mirror) = ui.app.mirror.clone() else {
        return ui.problem(&v, StatusCode::NOT_FOUND, "This registry is not a mirror.");
    };
    let mut repos: Vec<_> = mirror
        .cache
        .cached_repositories()
        .into_iter()
        .filter(|r| RepoName::parse(&r.name).is_ok_and(|n| ui.may_see(viewer, &n)))
        .collect();
    repos.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    let shown = repos.len().min(ROWS);
    let mut rows = String::new();
    let now = Instant::now();
    for r in &repos[..shown] {
        let _ = write!(
            rows,
            "<tr><th scope=\"row\"><a href=\"{}tags?{}\">{}</a></th><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&ui.base),
            esc(&query(&[("repo", &r.name)])),
            esc(&r.name),
            r.manifests,
            r.blobs,
            esc(&bytes(r.bytes)),
            esc(&r.used.map_or_else(|| "not since start".into(), |t| ago(now.duration_since(t).as_secs()))),
        );
    }
    let cached = if repos.is_empty() {
        "<p id=\"cached-empty\">No cached repositories you may see.</p>".to_string()
    } else {
        format!(
            "<div class=\"scroll\"><table id=\"cached\"><caption>{}</caption><thead><tr>\
             <th scope=\"col\">Repository</th><th scope=\"col\">Manifests</th><th scope=\"col\">Blobs</th>\
             <th scope=\"col\">Size</th><th scope=\"col\">Last used</th></tr></thead><tbody>{rows}</tbody></table></div>",
            if shown < repos.len() {
                format!("The {shown} largest of {} cached repositories you may see", repos.len())
            } else {
                "Cached repositories you may see".to_string()
            }
        )
    };
    let hidden = if mirror.passthrough {
        "<p class=\"note\" id=\"passthrough-note\">This mirror passes each client's own credentials upstream, so \
         who may read a mirrored repository is the upstream's decision, client by client: mirrored repositories \
         are not listed here, as in the catalog.</p>"
    } else {
        ""
    };
    let body = format!(
        "<h1>Mirror</h1>{}<h2>Cache</h2>{}<h2>Hits and misses</h2>{}<h2>Cached repositories</h2>{hidden}{cached}",
        upstreams(&mirror),
        usage(&mirror),
        counts(&mirror_counts()),
    );
    ui.respond(&v, StatusCode::OK, "Mirror", &body)
}

fn upstreams(mirror: &Mirror) -> String {
    let mut rows = String::new();
    for u in mirror.upstreams() {
        let select = if u.name.is_empty() {
            "any other repository".to_string()
        } else {
            format!("<code>{}/…</code> or <code>?ns={}</code>", esc(&u.prefix), esc(&u.name))
        };
        // Which account is used upstream; never the account itself.
        let account = match (&u.account, mirror.passthrough) {
            (_, true) => "each client's own",
            (Credentials::Basic { .. }, false) => "the mirror's account",
            (Credentials::Anonymous, false) => "anonymous",
        };
        let _ = write!(
            rows,
            "<tr><th scope=\"row\">{}</th><td>{select}</td><td><code>{}</code></td><td>{account}</td></tr>",
            esc(if u.name.is_empty() { "(remoteurl)" } else { &u.name }),
            esc(&u.url),
        );
    }
    format!(
        "<div class=\"scroll\"><table id=\"upstreams\"><caption>Upstreams</caption><thead><tr>\
         <th scope=\"col\">Name</th><th scope=\"col\">Serves</th><th scope=\"col\">URL</th>\
         <th scope=\"col\">Credentials upstream</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )
}

fn usage(mirror: &Mirror) -> String {
    let total = mirror.cache.total();
    match mirror.cache.max_size() {
        Some(max) if max > 0 => {
            let percent = (total as f64 / max as f64 * 100.0).min(999.0);
            format!(
                "<p id=\"cache-size\"><span id=\"cache-used\">{}</span> of <span id=\"cache-max\">{}</span> \
                 (maxSize), {percent:.0}%</p><meter id=\"cache-meter\" aria-labelledby=\"cache-size\" min=\"0\" \
                 max=\"{max}\" value=\"{}\"></meter>",
                esc(&bytes(total)),
                esc(&bytes(max)),
                total.min(max)
            )
        }
        _ => format!(
            "<p id=\"cache-size\"><span id=\"cache-used\">{}</span> cached; no maxSize, so nothing is evicted for \
             size.</p>",
            esc(&bytes(total))
        ),
    }
}

fn counts(c: &MirrorCounts) -> String {
    let row = |kind: &str, id: &str, hits: u64, misses: u64| {
        let rate = match hits + misses {
            0 => "–".to_string(),
            n => format!("{:.0}%", hits as f64 / n as f64 * 100.0),
        };
        format!(
            "<tr><th scope=\"row\">{kind}</th><td class=\"num\" id=\"{id}-hits\">{hits}</td>\
             <td class=\"num\" id=\"{id}-misses\">{misses}</td><td class=\"num\">{rate}</td></tr>"
        )
    };
    format!(
        "<div class=\"scroll\"><table id=\"hits\"><caption>Requests this replica served since it started: a hit \
         came from the cache, a miss from the upstream</caption><thead><tr><th scope=\"col\">Kind</th>\
         <th scope=\"col\">Hits</th><th scope=\"col\">Misses</th><th scope=\"col\">Hit rate</th></tr></thead>\
         <tbody>{}{}</tbody></table></div>",
        row("Manifests", "manifest", c.manifest_hits, c.manifest_misses),
        row("Blobs", "blob", c.blob_hits, c.blob_misses),
    )
}

/// `3 min ago`.
fn ago(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}
