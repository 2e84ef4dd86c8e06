//! Delivering one batch to a webhook receiver.

use std::fmt;

use async_trait::async_trait;
use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::Url;
use serde_json::Value;

use super::config::{parse_config, parse_keys, Keys};
use crate::http;
use crate::{AttemptReport, Batch, ConfigError, Outcome, Secrets, Sink, SinkEnv};

/// A ready-to-send webhook sink. Built from a validated definition; holds decoded keys, so its
/// Debug output redacts them.
pub struct WebhookSink {
    url: Url,
    headers: HeaderMap,
    keys: Keys,
    client: reqwest::Client,
    env: SinkEnv,
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSink")
            .field("host", &self.url.host_str())
            .field("static_headers", &self.headers.len())
            .field("rotating", &self.keys.previous.is_some())
            .finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// Builds the sink. No network here: the save-time SSRF check already ran in
    /// [`super::validate`], and the send-time checks run on every delivery (the server's policy,
    /// or what a name resolves to, may have changed since).
    pub fn new(config: &Value, secrets: &Secrets, format: &str, env: &SinkEnv) -> Result<Self, ConfigError> {
        if format != "json" {
            return Err(ConfigError::new(
                "format",
                format!("`webhook` sinks send only `json`, not `{format}`"),
            ));
        }
        let config = parse_config(config)?;
        let keys = parse_keys(secrets)?;
        let client = http::client(env).map_err(|e| ConfigError::new("kind", e.to_string()))?;
        Ok(WebhookSink {
            url: config.url,
            headers: config.headers,
            keys,
            client,
            env: env.clone(),
        })
    }

    /// The `webhook-signature` value: the current secret's signature, then the previous secret's
    /// while its grace period lasts (`now < expires_at`), space-separated.
    fn signature(&self, msg_id: &str, timestamp: i64, body: &[u8], now: Timestamp) -> String {
        let mut sig = self.keys.current.sign(msg_id, timestamp, body);
        if let Some((previous, expires_at)) = &self.keys.previous {
            if now < *expires_at {
                sig.push(' ');
                sig.push_str(&previous.sign(msg_id, timestamp, body));
            }
        }
        sig
    }
}

/// The request body: one JSON object with the batch's identity and its events, each event's
/// canonical JSON spliced in as stored (no re-serialisation, so receivers see the exact bytes
/// the API serves).
pub fn batch_body(batch: &Batch<'_>) -> String {
    let events_len: usize = batch.events.iter().map(|e| e.body.len() + 24).sum();
    let mut out = String::with_capacity(events_len + batch.batch_id.len() + batch.tenant_id.len() + 128);
    let offset = |o: Option<u64>| o.map_or_else(|| "null".to_owned(), |o| o.to_string());
    out.push_str("{\"batch_id\":");
    out.push_str(&Value::from(batch.batch_id).to_string());
    out.push_str(",\"tenant_id\":");
    out.push_str(&Value::from(batch.tenant_id).to_string());
    out.push_str(",\"first_offset\":");
    out.push_str(&offset(batch.events.first().map(|e| e.offset)));
    out.push_str(",\"last_offset\":");
    out.push_str(&offset(batch.events.last().map(|e| e.offset)));
    out.push_str(",\"count\":");
    out.push_str(&batch.events.len().to_string());
    out.push_str(",\"events\":[");
    for (i, event) in batch.events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&event.to_json());
    }
    out.push_str("]}");
    out
}

#[async_trait]
impl Sink for WebhookSink {
    async fn deliver(&self, batch: &Batch<'_>) -> AttemptReport {
        // reqwest connects to IP-literal hosts without asking the guarding resolver.
        if let Err(message) = http::check_url_literal(&self.url, &self.env) {
            return AttemptReport::failed(Outcome::Misconfigured, message);
        }
        // The batch id is stable across attempts: receivers deduplicate on `webhook-id`.
        let Ok(msg_id) = HeaderValue::from_str(batch.batch_id) else {
            return AttemptReport::failed(Outcome::Reject, "batch id is not a valid header value".to_owned());
        };
        let body = batch_body(batch);
        let now = Timestamp::now();
        // Signed per attempt: the timestamp is the attempt's, so a retry hours later is not
        // refused by a receiver's replay window (5 minutes in the reference verifiers).
        let timestamp = now.as_second();
        let signature = self.signature(batch.batch_id, timestamp, body.as_bytes(), now);
        let request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", timestamp)
            .header("webhook-signature", signature)
            .body(body);
        http::send(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::{generate_secret, sign, PREVIOUS_SIGNING_SECRET, PREVIOUS_SIGNING_SECRET_EXPIRES_AT};
    use auditrelay_core::StoredEvent;
    use serde_json::json;

    fn event(offset: u64) -> StoredEvent {
        StoredEvent {
            tenant_id: "acme".into(),
            offset,
            id: format!("ev{offset}"),
            event_type: "user.login".into(),
            body: format!(r#"{{"id":"ev{offset}","tenant_id":"acme","type":"user.login","note":"é \"q\""}}"#),
            chain: None,
        }
    }

    #[test]
    fn body_is_valid_json_with_events_spliced_verbatim() {
        let events = [event(7), event(8)];
        let batch = Batch {
            sink_id: "snk_1",
            tenant_id: "acme",
            batch_id: "b\"1",
            events: &events,
        };
        let body = batch_body(&batch);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["batch_id"], "b\"1");
        assert_eq!(v["tenant_id"], "acme");
        assert_eq!(v["first_offset"], 7);
        assert_eq!(v["last_offset"], 8);
        assert_eq!(v["count"], 2);
        assert_eq!(v["events"][1]["offset"], 8);
        assert!(body.contains(&events[0].to_json()), "events appear byte for byte");
        let empty = batch_body(&Batch { events: &[], ..batch });
        let v: Value = serde_json::from_str(&empty).unwrap();
        assert_eq!((v["count"].as_u64(), v["first_offset"].is_null()), (Some(0), true));
    }

    #[test]
    fn new_checks_format_and_secrets() {
        let config = json!({"url": "https://example.com/hook"});
        let mut secrets = Secrets::new();
        let env = SinkEnv::default();
        assert_eq!(
            WebhookSink::new(&config, &secrets, "json", &env).unwrap_err().field,
            "secrets.signing_secret"
        );
        secrets.insert("signing_secret".into(), generate_secret());
        let e = WebhookSink::new(&config, &secrets, "cef", &env).unwrap_err();
        assert_eq!(e.field, "format");
        let sink = WebhookSink::new(&config, &secrets, "json", &env).unwrap();
        let debug = format!("{sink:?}");
        assert!(!debug.contains("whsec_") && debug.contains("example.com"), "{debug}");
    }

    #[test]
    fn rotation_signs_with_both_until_expiry() {
        let (current, previous) = (generate_secret(), generate_secret());
        let secrets: Secrets = [
            ("signing_secret", current.as_str()),
            (PREVIOUS_SIGNING_SECRET, previous.as_str()),
            (PREVIOUS_SIGNING_SECRET_EXPIRES_AT, "2030-01-01T00:00:00Z"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let sink = WebhookSink::new(
            &json!({"url": "https://example.com"}),
            &secrets,
            "json",
            &SinkEnv::default(),
        )
        .unwrap();
        let before: Timestamp = "2029-12-31T23:59:59Z".parse().unwrap();
        let at: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let both = format!(
            "{} {}",
            sign(&current, "m", 5, b"{}").unwrap(),
            sign(&previous, "m", 5, b"{}").unwrap()
        );
        assert_eq!(sink.signature("m", 5, b"{}", before), both);
        assert_eq!(
            sink.signature("m", 5, b"{}", at),
            sign(&current, "m", 5, b"{}").unwrap()
        );
    }
}
