//! The `_bulk` request body: pure, from the parsed config and the events.

use auditrelay_core::StoredEvent;
use auditrelay_format::{encode, Format, FormatOptions};

use super::config::Action;
use super::index::IndexTemplate;

/// A `_bulk` body and how its items map back to the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkBody {
    /// NDJSON: an action line and a document line per item, every line ending in `\n`.
    pub body: Vec<u8>,
    /// The batch index of each item in the body, in order (the answer's `items` follow it).
    pub items: Vec<usize>,
    /// Events left out of the body, with the reason: one that cannot be a document (a `raw`
    /// record that is not a JSON object, which a stored event never is; no time for a dated
    /// index). Sending it would make the
    /// whole request fail, so it is dead-lettered on its own.
    pub refused: Vec<(usize, String)>,
}

/// The `_id` of an event. An event id is unique within its tenant only (a client may choose it),
/// so when one index holds several tenants (the template has no `{tenant}`) the id is prefixed
/// with `<tenant>:`: otherwise two tenants' events with one id would collide, and with `create`
/// the second would answer 409 and count as delivered without ever being stored.
pub fn document_id(event: &StoredEvent, index: &IndexTemplate) -> String {
    if index.has_tenant() {
        event.id.clone()
    } else {
        format!("{}:{}", event.tenant_id, event.id)
    }
}

/// Builds the `_bulk` body. `Err` is a failure of the format itself (not built): it would fail
/// every event alike, so the caller pauses the sink rather than dead-letter the batch.
pub fn bulk_body(
    events: &[StoredEvent],
    index: &IndexTemplate,
    action: Action,
    format: Format,
    options: &FormatOptions,
) -> Result<BulkBody, String> {
    let mut out = BulkBody {
        body: Vec::with_capacity(events.iter().map(|e| e.body.len() + 96).sum()),
        items: Vec::with_capacity(events.len()),
        refused: Vec::new(),
    };
    for (i, event) in events.iter().enumerate() {
        let mut record = encode(format, event, options)
            .map_err(|e| format!("format `{}` failed on event {}: {e}", format.name(), event.offset))?;
        if format == Format::Raw {
            if let Err(why) = check_raw_document(&mut record) {
                out.refused.push((i, format!("event {} as stored {why}", event.offset)));
                continue;
            }
        }
        let index_name = match index.render(event) {
            Ok(name) => name,
            Err(why) => {
                out.refused.push((i, why));
                continue;
            }
        };
        let mut meta = serde_json::Map::with_capacity(1);
        meta.insert(
            action.name().to_owned(),
            serde_json::json!({"_index": index_name, "_id": document_id(event, index)}),
        );
        // Writing a Value to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out.body, &meta);
        out.body.push(b'\n');
        out.body.extend_from_slice(&record);
        out.body.push(b'\n');
        out.items.push(i);
    }
    Ok(out)
}

/// A `raw` record is the stored body, which goes to Elasticsearch as the document: it must be a
/// JSON object, on one line. The server only stores compact objects, so this is a cheap guard
/// (a validating scan, no tree). Line breaks outside strings are insignificant whitespace in
/// JSON (inside strings they must be escaped), so turning them into spaces keeps the
/// document's value exactly while keeping the NDJSON framing.
fn check_raw_document(record: &mut [u8]) -> Result<(), &'static str> {
    if serde_json::from_slice::<serde::de::IgnoredAny>(record).is_err() {
        return Err("is not valid JSON");
    }
    if record.trim_ascii_start().first() != Some(&b'{') {
        return Err("is not a JSON object");
    }
    for b in record.iter_mut() {
        if matches!(*b, b'\n' | b'\r') {
            *b = b' ';
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// An event; `body` replaces the usual stored body (which the `raw` format delivers).
    fn event(offset: u64, tenant: &str, body: Option<&str>) -> StoredEvent {
        StoredEvent {
            tenant_id: tenant.into(),
            offset,
            id: format!("evt_{offset}"),
            event_type: "user.login".into(),
            body: body.map(str::to_owned).unwrap_or_else(|| {
                format!(
                    r#"{{"id":"evt_{offset}","tenant_id":"{tenant}","type":"user.login","occurred_at":"2026-06-01T10:13:20.000Z"}}"#
                )
            }),
            chain: None,
        }
    }

    #[test]
    fn ndjson_with_final_newline() {
        let index = IndexTemplate::parse("audit-{tenant}-{yyyy}.{MM}").unwrap();
        let events = [event(1, "acme", None), event(2, "acme", None)];
        let b = bulk_body(&events, &index, Action::Create, Format::Json, &FormatOptions::default()).unwrap();
        let text = String::from_utf8(b.body).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"create":{"_index":"audit-acme-2026.06","_id":"evt_1"}}"#,
                "\n",
                r#"{"offset":1,"id":"evt_1","tenant_id":"acme","type":"user.login","occurred_at":"2026-06-01T10:13:20.000Z"}"#,
                "\n",
                r#"{"create":{"_index":"audit-acme-2026.06","_id":"evt_2"}}"#,
                "\n",
                r#"{"offset":2,"id":"evt_2","tenant_id":"acme","type":"user.login","occurred_at":"2026-06-01T10:13:20.000Z"}"#,
                "\n",
            )
        );
        assert_eq!((b.items, b.refused), (vec![0, 1], vec![]));
    }

    #[test]
    fn shared_index_prefixes_ids_with_the_tenant() {
        let index = IndexTemplate::parse("audit").unwrap();
        let b = bulk_body(
            &[event(1, "acme", None)],
            &index,
            Action::Index,
            Format::Json,
            &FormatOptions::default(),
        )
        .unwrap();
        assert!(String::from_utf8(b.body)
            .unwrap()
            .starts_with(r#"{"index":{"_index":"audit","_id":"acme:evt_1"}}"#));
    }

    #[test]
    fn raw_documents_are_checked_and_kept_on_one_line() {
        let index = IndexTemplate::parse("audit-{tenant}").unwrap();
        let events = [
            event(1, "acme", Some("{\n  \"type\": \"a.b\",\r\n  \"note\": \"x\\ny\"\n}")),
            event(2, "acme", Some("[1]")),
            event(3, "acme", Some("{nope")),
        ];
        let b = bulk_body(&events, &index, Action::Create, Format::Raw, &FormatOptions::default()).unwrap();
        let text = String::from_utf8(b.body).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let doc: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(doc["note"], "x\ny", "escaped line breaks inside strings are untouched");
        assert_eq!(b.items, vec![0]);
        assert_eq!(
            b.refused,
            vec![
                (1, "event 2 as stored is not a JSON object".to_owned()),
                (2, "event 3 as stored is not valid JSON".to_owned())
            ]
        );
        // The usual case: the stored body, as is.
        let b = bulk_body(
            &[event(4, "acme", None)],
            &index,
            Action::Create,
            Format::Raw,
            &FormatOptions::default(),
        )
        .unwrap();
        let text = String::from_utf8(b.body).unwrap();
        assert_eq!(text.lines().nth(1), Some(event(4, "acme", None).body.as_str()));
    }

    #[test]
    fn an_event_without_a_time_is_refused_for_a_dated_index() {
        let index = IndexTemplate::parse("audit-{yyyy}").unwrap();
        let mut bad = event(2, "acme", None);
        bad.body = r#"{"id":"evt_2"}"#.into();
        let b = bulk_body(
            &[event(1, "acme", None), bad],
            &index,
            Action::Create,
            Format::Json,
            &FormatOptions::default(),
        )
        .unwrap();
        assert_eq!(b.items, vec![0]);
        assert_eq!(b.refused.len(), 1);
        assert_eq!(b.refused[0].0, 1);
    }
}
