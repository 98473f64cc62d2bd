//! One endpoint's HTTP client: registry:2's envelope, or CloudEvents 1.0 in
//! structured JSON mode (one event per request). Requests go only to the
//! configured URL: redirects are not followed.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::json;

use crate::config::notifications::{Endpoint, Format};
use crate::registry::events::{EVENTS_MEDIA_TYPE, Envelope, Event};

pub const CLOUDEVENTS_MEDIA_TYPE: &str = "application/cloudevents+json; charset=utf-8";

pub struct Sender {
    client: reqwest::Client,
    url: String,
    format: Format,
    headers: HeaderMap,
    header_files: Vec<(HeaderName, String)>,
    /// CloudEvents' `source`.
    source: String,
}

impl Sender {
    pub fn new(ep: &Endpoint, source: String) -> anyhow::Result<Sender> {
        let client = reqwest::Client::builder()
            .timeout(ep.timeout())
            .connect_timeout(ep.timeout().min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let mut headers = HeaderMap::new();
        for (name, values) in &ep.headers {
            let name = HeaderName::from_bytes(name.as_bytes())?;
            for v in values {
                headers.append(name.clone(), HeaderValue::from_str(v)?);
            }
        }
        let mut header_files = Vec::new();
        for (name, file) in &ep.headerfiles {
            // Read once now, so a missing Secret stops the start rather than every delivery.
            read_header_file(file).map_err(|e| anyhow::anyhow!("notifications endpoint {}: {e}", ep.name))?;
            header_files.push((HeaderName::from_bytes(name.as_bytes())?, file.clone()));
        }
        Ok(Sender { client, url: ep.url.clone(), format: ep.format, headers, header_files, source })
    }

    /// Delivers `events`; any answer but 2xx is a failure.
    pub async fn send(&self, events: &[Event]) -> Result<(), String> {
        let mut headers = self.headers.clone();
        for (name, file) in &self.header_files {
            headers.insert(name.clone(), read_header_file(file)?);
        }
        match self.format {
            Format::Distribution => {
                let body = serde_json::to_vec(&Envelope { events: events.to_vec() }).map_err(|e| e.to_string())?;
                self.post(headers, EVENTS_MEDIA_TYPE, body).await
            }
            Format::Cloudevents => {
                for e in events {
                    let body = serde_json::to_vec(&cloud_event(e, &self.source)).map_err(|e| e.to_string())?;
                    self.post(headers.clone(), CLOUDEVENTS_MEDIA_TYPE, body).await?;
                }
                Ok(())
            }
        }
    }

    async fn post(&self, headers: HeaderMap, content_type: &'static str, body: Vec<u8>) -> Result<(), String> {
        let resp = self
            .client
            .post(&self.url)
            .headers(headers)
            .header(CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            // Without the URL: its query may hold a token.
            .map_err(|e| format!("sending: {}", e.without_url()))?;
        let status = resp.status();
        if status.is_success() { Ok(()) } else { Err(format!("the endpoint answered {status}")) }
    }
}

fn read_header_file(path: &str) -> Result<HeaderValue, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading header file {path}: {e}"))?;
    HeaderValue::from_str(text.trim()).map_err(|_| format!("header file {path} does not hold a valid header value"))
}

/// A registry:2 event as a CloudEvent: the event itself is `data`.
pub fn cloud_event(e: &Event, source: &str) -> serde_json::Value {
    let subject = match (e.target.tag.as_str(), e.target.digest.as_str()) {
        ("", "") => e.target.repository.clone(),
        ("", d) => format!("{}@{d}", e.target.repository),
        (t, _) => format!("{}:{t}", e.target.repository),
    };
    json!({
        "specversion": "1.0",
        "id": e.id,
        "source": source,
        "type": format!("wharf.registry.{}", e.action),
        "time": e.timestamp,
        "subject": subject,
        "datacontenttype": "application/json",
        "data": e,
    })
}
