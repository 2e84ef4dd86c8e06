//! A sink's definition (api.md "Sinks"): what the API accepts, with every default made explicit,
//! so the stored document says exactly how the sink behaves.

use auditrelay_core::{ids, time, TypeFilter};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The stored, normalised definition (everything but the secrets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkSpec {
    pub name: String,
    pub kind: String,
    pub config: Map<String, Value>,
    pub format: String,
    /// Type globs; empty = every type.
    pub event_types: Vec<String>,
    /// Operator sinks only: the tenants read. `None` = every tenant, present and future.
    /// A tenant sink reads exactly its owner tenant and has `None` here.
    pub tenants: Option<Vec<String>>,
    /// `now` | `earliest` | an RFC 3339 time.
    pub start_at: String,
    pub batch: BatchPolicy,
    pub retry: RetryPolicy,
    pub timeout_ms: u64,
    pub max_in_flight: usize,
    pub on_exhausted: OnExhausted,
    pub breaker: BreakerPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchPolicy {
    pub max_events: usize,
    pub max_bytes: usize,
    /// How long the oldest pending event may wait for a batch to fill. 0 = send what is there
    /// (batches still form by themselves while earlier ones are in flight).
    pub flush_interval_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerPolicy {
    /// Consecutive failed attempts that open the circuit.
    pub failure_threshold: u32,
    /// How long it stays open before one trial attempt (half-open).
    pub cooldown_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExhausted {
    DeadLetter,
    Pause,
}

pub const DEFAULT_BATCH: BatchPolicy = BatchPolicy {
    max_events: 100,
    max_bytes: 1024 * 1024,
    flush_interval_ms: 100,
};
pub const DEFAULT_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 8,
    initial_backoff_ms: 1000,
    max_backoff_ms: 60_000,
};
pub const DEFAULT_BREAKER: BreakerPolicy = BreakerPolicy {
    failure_threshold: 5,
    cooldown_ms: 30_000,
};
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1;
pub const DEFAULT_START_AT: &str = "now";
pub const DEFAULT_ON_EXHAUSTED: OnExhausted = OnExhausted::DeadLetter;

/// A field of a sink definition that breaks a rule; `field` is its path (`batch.max_events`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        message: message.into(),
    }
}

/// Top-level fields of a create/patch body. Anything else is refused, so a typo such as
/// `event_type` never silently means "all events".
pub const BODY_FIELDS: &[&str] = &[
    "name",
    "kind",
    "tenant",
    "tenants",
    "config",
    "secrets",
    "format",
    "event_types",
    "start_at",
    "batch",
    "retry",
    "timeout_ms",
    "max_in_flight",
    "on_exhausted",
    "breaker",
];

impl SinkSpec {
    /// Builds a spec from a create body (already checked to be an object with known fields;
    /// `tenant`, `secrets` are handled by the caller). `formats` are the kind's formats, the
    /// first being its default.
    pub fn from_body(body: &Map<String, Value>, formats: &[&str]) -> Result<SinkSpec, SpecError> {
        let spec = SinkSpec {
            name: string_field(body, "name")?.ok_or_else(|| err("name", "required"))?,
            kind: string_field(body, "kind")?.ok_or_else(|| err("kind", "required"))?,
            config: match body.get("config") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(_) => return Err(err("config", "must be an object")),
            },
            format: string_field(body, "format")?
                .or_else(|| formats.first().map(|f| (*f).to_owned()))
                .unwrap_or_else(|| "json".into()),
            event_types: types_field(body.get("event_types"))?,
            tenants: tenants_field(body.get("tenants"))?,
            start_at: string_field(body, "start_at")?.unwrap_or_else(|| DEFAULT_START_AT.into()),
            batch: batch_field(body.get("batch"), DEFAULT_BATCH)?,
            retry: retry_field(body.get("retry"), DEFAULT_RETRY)?,
            timeout_ms: uint_field(body.get("timeout_ms"), "timeout_ms", 1, 300_000)?.unwrap_or(DEFAULT_TIMEOUT_MS),
            max_in_flight: uint_field(body.get("max_in_flight"), "max_in_flight", 1, 64)?
                .map(|n| n as usize)
                .unwrap_or(DEFAULT_MAX_IN_FLIGHT),
            on_exhausted: on_exhausted_field(body.get("on_exhausted"))?.unwrap_or(DEFAULT_ON_EXHAUSTED),
            breaker: breaker_field(body.get("breaker"), DEFAULT_BREAKER)?,
        };
        spec.check(formats)?;
        Ok(spec)
    }

    /// Applies a PATCH body: present fields replace, objects (`config`, `batch`, `retry`,
    /// `breaker`) merge key by key (a `null` member removes a `config` key). `kind` and
    /// `tenant` cannot change.
    pub fn patched(&self, body: &Map<String, Value>, formats: &[&str]) -> Result<SinkSpec, SpecError> {
        let mut next = self.clone();
        if let Some(name) = string_field(body, "name")? {
            next.name = name;
        }
        if let Some(kind) = string_field(body, "kind")? {
            if kind != self.kind {
                return Err(err("kind", "cannot change; create a new sink instead"));
            }
        }
        match body.get("config") {
            None | Some(Value::Null) => {}
            Some(Value::Object(patch)) => {
                for (k, v) in patch {
                    if v.is_null() {
                        next.config.remove(k);
                    } else {
                        next.config.insert(k.clone(), v.clone());
                    }
                }
            }
            Some(_) => return Err(err("config", "must be an object")),
        }
        if let Some(format) = string_field(body, "format")? {
            next.format = format;
        }
        if body.contains_key("event_types") {
            next.event_types = types_field(body.get("event_types"))?;
        }
        if body.contains_key("tenants") {
            next.tenants = tenants_field(body.get("tenants"))?;
        }
        if let Some(start_at) = string_field(body, "start_at")? {
            next.start_at = start_at;
        }
        next.batch = batch_field(body.get("batch"), self.batch)?;
        next.retry = retry_field(body.get("retry"), self.retry)?;
        next.breaker = breaker_field(body.get("breaker"), self.breaker)?;
        if let Some(t) = uint_field(body.get("timeout_ms"), "timeout_ms", 1, 300_000)? {
            next.timeout_ms = t;
        }
        if let Some(n) = uint_field(body.get("max_in_flight"), "max_in_flight", 1, 64)? {
            next.max_in_flight = n as usize;
        }
        if let Some(o) = on_exhausted_field(body.get("on_exhausted"))? {
            next.on_exhausted = o;
        }
        next.check(formats)?;
        Ok(next)
    }

    fn check(&self, formats: &[&str]) -> Result<(), SpecError> {
        let name_len = self.name.chars().count();
        if name_len == 0 || name_len > 128 {
            return Err(err("name", "must be 1–128 characters"));
        }
        if !formats.contains(&self.format.as_str()) {
            return Err(err(
                "format",
                format!(
                    "`{}` sinks cannot send `{}` (choose from: {})",
                    self.kind,
                    self.format,
                    formats.join(", ")
                ),
            ));
        }
        if self.start_at != "now" && self.start_at != "earliest" && time::parse_rfc3339(&self.start_at).is_none() {
            return Err(err(
                "start_at",
                "must be `now`, `earliest` or an RFC 3339 time such as 2026-06-01T00:00:00Z",
            ));
        }
        if self.retry.initial_backoff_ms > self.retry.max_backoff_ms {
            return Err(err("retry.initial_backoff_ms", "must not exceed retry.max_backoff_ms"));
        }
        Ok(())
    }

    pub fn type_filter(&self) -> TypeFilter {
        // Validated at save time; an invalid stored glob (hand-edited row) matches everything
        // rather than nothing, so no event is silently skipped.
        TypeFilter::from_patterns(self.event_types.iter().map(String::as_str)).unwrap_or_else(|_| TypeFilter::all())
    }

    /// The JSON the API shows for this spec (the caller adds id, tenant, state, secrets_set).
    pub fn to_json(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }
}

fn string_field(body: &Map<String, Value>, field: &str) -> Result<Option<String>, SpecError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(err(field, "must be a string")),
    }
}

fn uint_field(value: Option<&Value>, field: &str, min: u64, max: u64) -> Result<Option<u64>, SpecError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(err(field, format!("must be an integer from {min} to {max}"))),
        },
    }
}

fn object<'a>(
    value: Option<&'a Value>,
    field: &str,
    known: &[&str],
) -> Result<Option<&'a Map<String, Value>>, SpecError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => {
            if let Some(unknown) = m.keys().find(|k| !known.contains(&k.as_str())) {
                return Err(err(
                    format!("{field}.{unknown}"),
                    format!("unknown field (known: {})", known.join(", ")),
                ));
            }
            Ok(Some(m))
        }
        Some(_) => Err(err(field, "must be an object")),
    }
}

fn batch_field(value: Option<&Value>, base: BatchPolicy) -> Result<BatchPolicy, SpecError> {
    let Some(m) = object(value, "batch", &["max_events", "max_bytes", "flush_interval_ms"])? else {
        return Ok(base);
    };
    Ok(BatchPolicy {
        max_events: uint_field(m.get("max_events"), "batch.max_events", 1, 10_000)?
            .map(|n| n as usize)
            .unwrap_or(base.max_events),
        max_bytes: uint_field(m.get("max_bytes"), "batch.max_bytes", 1024, 64 * 1024 * 1024)?
            .map(|n| n as usize)
            .unwrap_or(base.max_bytes),
        flush_interval_ms: uint_field(m.get("flush_interval_ms"), "batch.flush_interval_ms", 0, 3_600_000)?
            .unwrap_or(base.flush_interval_ms),
    })
}

fn retry_field(value: Option<&Value>, base: RetryPolicy) -> Result<RetryPolicy, SpecError> {
    let Some(m) = object(
        value,
        "retry",
        &["max_attempts", "initial_backoff_ms", "max_backoff_ms"],
    )?
    else {
        return Ok(base);
    };
    Ok(RetryPolicy {
        max_attempts: uint_field(m.get("max_attempts"), "retry.max_attempts", 1, 100)?
            .map(|n| n as u32)
            .unwrap_or(base.max_attempts),
        initial_backoff_ms: uint_field(m.get("initial_backoff_ms"), "retry.initial_backoff_ms", 1, 3_600_000)?
            .unwrap_or(base.initial_backoff_ms),
        max_backoff_ms: uint_field(m.get("max_backoff_ms"), "retry.max_backoff_ms", 1, 86_400_000)?
            .unwrap_or(base.max_backoff_ms),
    })
}

fn breaker_field(value: Option<&Value>, base: BreakerPolicy) -> Result<BreakerPolicy, SpecError> {
    let Some(m) = object(value, "breaker", &["failure_threshold", "cooldown_ms"])? else {
        return Ok(base);
    };
    Ok(BreakerPolicy {
        failure_threshold: uint_field(m.get("failure_threshold"), "breaker.failure_threshold", 1, 1000)?
            .map(|n| n as u32)
            .unwrap_or(base.failure_threshold),
        cooldown_ms: uint_field(m.get("cooldown_ms"), "breaker.cooldown_ms", 1, 3_600_000)?.unwrap_or(base.cooldown_ms),
    })
}

fn on_exhausted_field(value: Option<&Value>) -> Result<Option<OnExhausted>, SpecError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s == "dead_letter" => Ok(Some(OnExhausted::DeadLetter)),
        Some(Value::String(s)) if s == "pause" => Ok(Some(OnExhausted::Pause)),
        Some(_) => Err(err("on_exhausted", "must be `dead_letter` or `pause`")),
    }
}

fn types_field(value: Option<&Value>) -> Result<Vec<String>, SpecError> {
    let list = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(err(
                "event_types",
                "must be an array of type globs such as \"decision.*\"",
            ))
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let Some(glob) = item.as_str() else {
            return Err(err(format!("event_types[{i}]"), "must be a string"));
        };
        TypeFilter::from_patterns(std::iter::once(glob))
            .map_err(|e| err(format!("event_types[{i}]"), e.to_string()))?;
        out.push(glob.to_owned());
    }
    Ok(out)
}

fn tenants_field(value: Option<&Value>) -> Result<Option<Vec<String>>, SpecError> {
    let list = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(err(
                "tenants",
                "must be an array of tenant ids, or omitted for every tenant",
            ))
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        match item.as_str() {
            Some(t) if ids::is_valid_tenant_id(t) => out.push(t.to_owned()),
            _ => {
                return Err(err(
                    format!("tenants[{i}]"),
                    "must be a tenant id (1–64 chars of [a-z0-9_-])",
                ))
            }
        }
    }
    if out.is_empty() {
        return Err(err(
            "tenants",
            "must name at least one tenant (omit it for every tenant)",
        ));
    }
    out.sort();
    out.dedup();
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn defaults_are_explicit() {
        let s = SinkSpec::from_body(&body(json!({"name": "a", "kind": "webhook"})), &["json"]).unwrap();
        assert_eq!(s.batch, DEFAULT_BATCH);
        assert_eq!(s.retry, DEFAULT_RETRY);
        assert_eq!(s.timeout_ms, 10_000);
        assert_eq!(s.format, "json");
        assert_eq!(s.start_at, "now");
        assert_eq!(s.on_exhausted, OnExhausted::DeadLetter);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                json!({"name": "a", "kind": "webhook", "batch": {"max_events": 0}}),
                "batch.max_events",
            ),
            (
                json!({"name": "a", "kind": "webhook", "batch": {"max_event": 5}}),
                "batch.max_event",
            ),
            (json!({"name": "a", "kind": "webhook", "format": "cef"}), "format"),
            (
                json!({"name": "a", "kind": "webhook", "event_types": ["Bad Type"]}),
                "event_types[0]",
            ),
            (
                json!({"name": "a", "kind": "webhook", "start_at": "yesterday"}),
                "start_at",
            ),
            (json!({"name": "", "kind": "webhook"}), "name"),
            (json!({"kind": "webhook"}), "name"),
            (
                json!({"name": "a", "kind": "webhook", "on_exhausted": "drop"}),
                "on_exhausted",
            ),
            (
                json!({"name": "a", "kind": "webhook", "retry": {"initial_backoff_ms": 5000, "max_backoff_ms": 10}}),
                "retry.initial_backoff_ms",
            ),
            (json!({"name": "a", "kind": "webhook", "tenants": []}), "tenants"),
        ];
        for (b, field) in cases {
            let e = SinkSpec::from_body(&body(b.clone()), &["json"]).unwrap_err();
            assert_eq!(e.field, field, "{b}");
        }
    }

    #[test]
    fn patch_merges_and_keeps_the_rest() {
        let s = SinkSpec::from_body(
            &body(
                json!({"name": "a", "kind": "webhook", "config": {"url": "https://x", "headers": {"a": "b"}},
                          "batch": {"max_events": 10}}),
            ),
            &["json"],
        )
        .unwrap();
        let p = s
            .patched(
                &body(json!({"config": {"headers": null}, "batch": {"flush_interval_ms": 5}})),
                &["json"],
            )
            .unwrap();
        assert_eq!(p.config.get("url"), Some(&json!("https://x")));
        assert!(p.config.get("headers").is_none());
        assert_eq!(p.batch.max_events, 10);
        assert_eq!(p.batch.flush_interval_ms, 5);
        assert_eq!(
            s.patched(&body(json!({"kind": "kafka"})), &["json"]).unwrap_err().field,
            "kind"
        );
    }
}
