//! HTML building: every value from the registry (repository names, tags,
//! labels, environment, history) is attacker-controlled and goes through
//! [`esc`]; the page shell and small formatting helpers.

use std::fmt::Write as _;
use std::time::SystemTime;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A query string from pairs, percent-encoded (then escaped for an attribute by the caller).
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

pub fn bytes(n: u64) -> String {
    crate::registry::quota::human_bytes(n)
}

/// `2026-12-01 02:50 UTC`.
pub fn time(t: Option<SystemTime>) -> String {
    let Some(secs) = t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).map(|d| d.as_secs()) else {
        return "unknown".into();
    };
    let Ok(dt) = time::OffsetDateTime::from_unix_timestamp(secs as i64) else { return "unknown".into() };
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", dt.year(), u8::from(dt.month()), dt.day(), dt.hour(), dt.minute())
}

/// The `<time>` element for a push time, machine-readable for sorting.
pub fn time_el(t: Option<SystemTime>) -> String {
    let secs = t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
    format!("<time data-epoch=\"{secs}\">{}</time>", esc(&time(t)))
}

/// A digest shortened for display, the whole of it in the title.
pub fn short_digest(d: &str) -> String {
    let short: String = d.chars().take(19).collect();
    format!("<code title=\"{}\">{}</code>", esc(d), esc(&short))
}

/// What the shell shows about who is looking.
pub struct Who<'a> {
    pub base: &'a str,
    /// Whether this registry is a mirror (the nav links its page).
    pub mirror: bool,
    pub user: Option<&'a str>,
    /// Whether a login form exists (auth is set and the registry checks passwords).
    pub logins: bool,
    pub csrf: &'a str,
}

pub fn page(title: &str, who: &Who<'_>, body: &str) -> String {
    let base = esc(who.base);
    let mut account = String::new();
    match (who.user, who.logins) {
        (Some(u), _) => {
            let _ = write!(
                account,
                "<span class=\"who\">Signed in as <strong>{}</strong></span>\
                 <form method=\"post\" action=\"{base}logout\" class=\"inline\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button type=\"submit\" id=\"logout\">Log out</button></form>",
                esc(u),
                esc(who.csrf)
            );
        }
        (None, true) => {
            let _ = write!(account, "<a href=\"{base}login\" id=\"login-link\">Log in</a>");
        }
        (None, false) => {}
    }
    let mirror =
        if who.mirror { format!("<a href=\"{base}mirror\" id=\"mirror-link\">Mirror</a>") } else { String::new() };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{} · Wharf</title>\
         <link rel=\"stylesheet\" href=\"{base}assets/ui.css\">\
         <script src=\"{base}assets/ui.js\" defer></script></head>\
         <body><a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header><nav aria-label=\"Site\"><a class=\"brand\" href=\"{base}\">Wharf</a>{mirror}\
         <div class=\"account\">{account}</div></nav></header>\
         <main id=\"main\" tabindex=\"-1\">{body}</main></body></html>\n",
        esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(esc("<script>alert('x')</script>&\""), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;");
    }
}
