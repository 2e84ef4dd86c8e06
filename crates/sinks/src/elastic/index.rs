//! The `index` template: which index (or data stream) each event goes to.
//!
//! Placeholders: `{tenant}`, `{type}`, and the event time's UTC date parts `{yyyy}`, `{MM}`,
//! `{dd}` (from `occurred_at`). Everything else is literal and must be legal in an index name.

use auditrelay_core::StoredEvent;
use jiff::Timestamp;

/// Characters Elasticsearch refuses in an index name (`:` since 7.0, for cross-cluster names).
const FORBIDDEN: &[char] = &['\\', '/', '*', '?', '"', '<', '>', '|', ',', '#', ':', ' '];
/// Elasticsearch's limit on an index name, in bytes.
pub const MAX_INDEX_BYTES: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Tenant,
    Type,
    Year,
    Month,
    Day,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexTemplate {
    source: String,
    parts: Vec<Part>,
}

impl IndexTemplate {
    /// Parses and checks a template; the error says what is wrong (the caller names the field).
    pub fn parse(source: &str) -> Result<IndexTemplate, String> {
        if source.is_empty() {
            return Err("must not be empty".into());
        }
        let mut parts = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let end = after.find('}').ok_or_else(|| format!("unclosed `{{` in `{source}`"))?;
                let part = match &after[..end] {
                    "tenant" => Part::Tenant,
                    "type" => Part::Type,
                    "yyyy" => Part::Year,
                    "MM" => Part::Month,
                    "dd" => Part::Day,
                    other => {
                        return Err(format!(
                            "unknown placeholder `{{{other}}}` (known: {{tenant}}, {{type}}, {{yyyy}}, {{MM}}, {{dd}})"
                        ))
                    }
                };
                parts.push(part);
                rest = &after[end + 1..];
            } else {
                let end = rest.find('{').unwrap_or(rest.len());
                let literal = &rest[..end];
                if literal.contains('}') {
                    return Err(format!("`}}` without `{{` in `{source}`"));
                }
                if let Some(c) = literal.chars().find(|c| FORBIDDEN.contains(c) || c.is_control()) {
                    return Err(format!("{c:?} is not allowed in an index name"));
                }
                if literal.chars().any(char::is_uppercase) {
                    return Err("index names must be lowercase".into());
                }
                parts.push(Part::Literal(literal.to_owned()));
                rest = &rest[end..];
            }
        }
        if let Some(Part::Literal(first)) = parts.first() {
            if first.starts_with(['-', '_', '+']) {
                return Err("an index name must not start with `-`, `_` or `+`".into());
            }
        }
        if source == "." || source == ".." {
            return Err("`.` and `..` are not index names".into());
        }
        if source.len() > MAX_INDEX_BYTES {
            return Err(format!("longer than {MAX_INDEX_BYTES} bytes"));
        }
        Ok(IndexTemplate {
            source: source.to_owned(),
            parts,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether each tenant gets its own indices, so an event id (unique per tenant) is unique
    /// in the index too.
    pub fn has_tenant(&self) -> bool {
        self.parts.contains(&Part::Tenant)
    }

    fn needs_time(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Year | Part::Month | Part::Day))
    }

    /// The index for one event. Tenant ids and types are lowercase by contract, so the result is
    /// a legal name but for length, which Elasticsearch checks (a per-item 400).
    pub fn render(&self, event: &StoredEvent) -> Result<String, String> {
        let time = if self.needs_time() {
            Some(event_time(event)?)
        } else {
            None
        };
        let mut out = String::with_capacity(self.source.len() + 32);
        for part in &self.parts {
            match (part, time) {
                (Part::Literal(s), _) => out.push_str(s),
                (Part::Tenant, _) => out.push_str(&event.tenant_id),
                (Part::Type, _) => out.push_str(&event.event_type),
                (Part::Year, Some(t)) => out.push_str(&t.strftime("%Y").to_string()),
                (Part::Month, Some(t)) => out.push_str(&t.strftime("%m").to_string()),
                (Part::Day, Some(t)) => out.push_str(&t.strftime("%d").to_string()),
                // needs_time() said no date part exists.
                (Part::Year | Part::Month | Part::Day, None) => {}
            }
        }
        Ok(out)
    }
}

/// The event's `occurred_at` (the canonical body always has it; it defaults to the receive time).
fn event_time(event: &StoredEvent) -> Result<Timestamp, String> {
    #[derive(serde::Deserialize)]
    struct Times<'a> {
        #[serde(borrow)]
        occurred_at: Option<std::borrow::Cow<'a, str>>,
    }
    let times: Times<'_> =
        serde_json::from_str(&event.body).map_err(|e| format!("event {} is not valid JSON: {e}", event.offset))?;
    let raw = times
        .occurred_at
        .ok_or_else(|| format!("event {} has no `occurred_at` for the index date", event.offset))?;
    auditrelay_core::time::parse_rfc3339(&raw)
        .ok_or_else(|| format!("event {}: `occurred_at` is not an RFC 3339 time", event.offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(body: &str) -> StoredEvent {
        StoredEvent {
            tenant_id: "acme".into(),
            offset: 9,
            id: "e".into(),
            event_type: "user.login".into(),
            body: body.into(),
            chain: None,
        }
    }

    #[test]
    fn renders_placeholders() {
        let e = event(r#"{"id":"e","occurred_at":"2026-01-02T23:30:00-02:00"}"#);
        let t = IndexTemplate::parse("audit-{tenant}-{type}-{yyyy}.{MM}.{dd}").unwrap();
        // The date is UTC: 23:30 at -02:00 is the next day.
        assert_eq!(t.render(&e).unwrap(), "audit-acme-user.login-2026.01.03");
        assert!(t.has_tenant());
        let plain = IndexTemplate::parse("audit").unwrap();
        assert_eq!(plain.render(&event("not json")).unwrap(), "audit", "no time needed");
        assert!(!plain.has_tenant());
    }

    #[test]
    fn time_errors() {
        let t = IndexTemplate::parse("a-{yyyy}").unwrap();
        assert!(t
            .render(&event(r#"{"id":"e"}"#))
            .unwrap_err()
            .contains("no `occurred_at`"));
        assert!(t
            .render(&event(r#"{"occurred_at":"yesterday"}"#))
            .unwrap_err()
            .contains("RFC 3339"));
        assert!(t.render(&event("{")).unwrap_err().contains("not valid JSON"));
    }

    #[test]
    fn refuses_bad_templates() {
        for (bad, why) in [
            ("", "empty"),
            ("Audit", "lowercase"),
            ("a b", "not allowed"),
            ("a:b", "not allowed"),
            ("a*", "not allowed"),
            ("_a", "must not start"),
            ("-{tenant}", "must not start"),
            ("a-{tenant", "unclosed"),
            ("a-}", "without"),
            ("a-{date}", "unknown placeholder `{date}`"),
            ("..", "not index names"),
        ] {
            let e = IndexTemplate::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(IndexTemplate::parse(&"a".repeat(256)).is_err());
        assert!(IndexTemplate::parse("{tenant}").is_ok());
        assert!(IndexTemplate::parse(".ds-logs").is_ok());
    }
}
