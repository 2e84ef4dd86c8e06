//! A sink's definition (api.md "Sinks"): what the API accepts, with every default made explicit,
//! so the stored document says exactly how the sink behaves.

use auditrelay_core::{time, TypeFilter};
use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::EngineError;

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
    /// Where a lane with no cursor yet starts reading.
    pub start_at: StartAt,
    pub batch: BatchPolicy,
    pub retry: RetryPolicy,
    pub timeout_ms: u64,
    pub max_in_flight: usize,
    pub on_exhausted: OnExhausted,
    pub breaker: BreakerPolicy,
    /// A CEL condition over `event`; only events it holds for are sent (`crate::stage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Operations on each sent event's copy (`drop`, `redact`, `hash`, `rename`, `set`), as
    /// given; parsed by `auditrelay_pipeline::Transform` when saved and when loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<Value>,
}

/// Where a sink starts reading a tenant it has no cursor for. Stored and shown as the string the
/// API takes: `"now"`, `"earliest"` or the RFC 3339 time exactly as it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    /// The sink's creation time (resolved per tenant on the lane's first start).
    Now,
    /// The first event still in the log.
    Earliest,
    /// The first event received at or after `time`.
    At {
        time: Timestamp,
        /// The text given, kept so the stored and shown definition is byte-for-byte what the
        /// client sent (`+02:00` stays `+02:00`).
        text: String,
    },
}

impl StartAt {
    pub const INVALID: &'static str = "must be `now`, `earliest` or an RFC 3339 time such as 2026-06-01T00:00:00Z";

    /// Parses the API's (and the stored definition's) spelling; `None` for anything else.
    pub fn parse(s: &str) -> Option<StartAt> {
        match s {
            "now" => Some(StartAt::Now),
            "earliest" => Some(StartAt::Earliest),
            text => time::parse_rfc3339(text).map(|time| StartAt::At {
                time,
                text: text.to_owned(),
            }),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            StartAt::Now => "now",
            StartAt::Earliest => "earliest",
            StartAt::At { text, .. } => text,
        }
    }

    /// The time whose first event a lane starts at (`None` for `earliest`): `now` is the sink's
    /// creation time. RFC 3339 text, as `EventLog::offset_at_time` takes it.
    pub fn from_time<'a>(&'a self, sink_created_at: &'a str) -> Option<&'a str> {
        match self {
            StartAt::Now => Some(sink_created_at),
            StartAt::Earliest => None,
            StartAt::At { text, .. } => Some(text),
        }
    }
}

impl Serialize for StartAt {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StartAt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        StartAt::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("start_at `{s}` {}", StartAt::INVALID)))
    }
}

// The bounds in the `schema` attributes are the ones `batch_field`, `retry_field` and
// `breaker_field` enforce below; the API reference (OpenAPI) is generated from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"max_events": 100, "max_bytes": 1048576, "flush_interval_ms": 100}))]
pub struct BatchPolicy {
    /// Most events in one delivery.
    #[schema(minimum = 1, maximum = 10000, default = 100)]
    pub max_events: usize,
    /// Most bytes of rendered events in one delivery.
    #[schema(minimum = 1024, maximum = 67108864, default = 1048576)]
    pub max_bytes: usize,
    /// How long the oldest pending event may wait for a batch to fill. 0 = send what is there
    /// (batches still form by themselves while earlier ones are in flight).
    #[schema(minimum = 0, maximum = 3600000, default = 100)]
    pub flush_interval_ms: u64,
}

/// Attempts per batch and the exponential backoff between them (with jitter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RetryPolicy {
    /// Attempts per batch, the first included; then `on_exhausted` applies.
    #[schema(minimum = 1, maximum = 100, default = 8)]
    pub max_attempts: u32,
    /// At most `max_backoff_ms`.
    #[schema(minimum = 1, maximum = 3600000, default = 1000)]
    pub initial_backoff_ms: u64,
    #[schema(minimum = 1, maximum = 86400000, default = 60000)]
    pub max_backoff_ms: u64,
}

/// The circuit breaker in front of the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BreakerPolicy {
    /// Consecutive failed attempts that open the circuit.
    #[schema(minimum = 1, maximum = 1000, default = 5)]
    pub failure_threshold: u32,
    /// How long it stays open before one trial attempt (half-open).
    #[schema(minimum = 1, maximum = 3600000, default = 30000)]
    pub cooldown_ms: u64,
}

/// What happens to a batch that exhausted its attempts: kept as a dead letter while the sink
/// goes on, or the sink pauses on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
/// The batching a definition of `kind` gets when it sets none: the kind's own default (a data
/// lake wants few large objects), else [`DEFAULT_BATCH`].
pub fn default_batch(kind: &str) -> BatchPolicy {
    auditrelay_sinks::default_batch(kind).map_or(DEFAULT_BATCH, |b| BatchPolicy {
        max_events: b.max_events,
        max_bytes: b.max_bytes,
        flush_interval_ms: b.flush_interval_ms,
    })
}
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

impl SinkSpec {
    /// A definition with every optional field at its default: what a create body with only
    /// `name` and `kind` becomes (`GET /v1/sink-kinds` shows these defaults).
    pub fn with_defaults(name: &str, kind: &str, format: &str) -> SinkSpec {
        SinkSpec {
            name: name.to_owned(),
            kind: kind.to_owned(),
            config: Map::new(),
            format: format.to_owned(),
            event_types: Vec::new(),
            tenants: None,
            start_at: StartAt::Now,
            batch: default_batch(kind),
            retry: DEFAULT_RETRY,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            on_exhausted: DEFAULT_ON_EXHAUSTED,
            breaker: DEFAULT_BREAKER,
            filter: None,
            transform: None,
        }
    }

    /// The rules across fields that a typed request cannot express by itself; `formats` are
    /// the kind's. The server's request types check each field's own range and syntax.
    pub fn check(&self, formats: &[&str]) -> Result<(), SpecError> {
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
        if self.retry.initial_backoff_ms > self.retry.max_backoff_ms {
            return Err(err("retry.initial_backoff_ms", "must not exceed retry.max_backoff_ms"));
        }
        Ok(())
    }

    /// Reads a stored definition (the JSON `to_json` wrote, in this or an earlier version).
    pub fn from_stored(json: &str) -> Result<SinkSpec, EngineError> {
        serde_json::from_str(json).map_err(|e| EngineError::Spec(e.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_explicit() {
        let s = SinkSpec::with_defaults("a", "webhook", "json");
        assert_eq!(s.batch, DEFAULT_BATCH);
        assert_eq!(s.retry, DEFAULT_RETRY);
        assert_eq!(s.timeout_ms, 10_000);
        assert_eq!(s.start_at.as_str(), DEFAULT_START_AT);
        assert_eq!(s.on_exhausted, OnExhausted::DeadLetter);
        assert_eq!(s.check(&["json"]), Ok(()));
    }

    #[test]
    fn check_names_the_field_across_rules() {
        let base = SinkSpec::with_defaults("a", "webhook", "json");
        let cases = [
            (
                SinkSpec {
                    format: "cef".into(),
                    ..base.clone()
                },
                "format",
            ),
            (
                SinkSpec {
                    name: String::new(),
                    ..base.clone()
                },
                "name",
            ),
            (
                SinkSpec {
                    name: "n".repeat(129),
                    ..base.clone()
                },
                "name",
            ),
            (
                SinkSpec {
                    retry: RetryPolicy {
                        initial_backoff_ms: 5000,
                        max_backoff_ms: 10,
                        ..DEFAULT_RETRY
                    },
                    ..base.clone()
                },
                "retry.initial_backoff_ms",
            ),
        ];
        for (spec, field) in cases {
            assert_eq!(spec.check(&["json"]).unwrap_err().field, field);
        }
    }

    #[test]
    fn start_at_is_stored_as_the_string_it_was_given_and_old_documents_read_back() {
        for given in [
            "now",
            "earliest",
            "2026-06-01T00:00:00Z",
            "2026-06-01T02:00:00.500+02:00",
        ] {
            let s = SinkSpec {
                start_at: StartAt::parse(given).unwrap(),
                ..SinkSpec::with_defaults("a", "webhook", "json")
            };
            let stored = serde_json::to_string(&s).unwrap();
            let v: Value = serde_json::from_str(&stored).unwrap();
            assert_eq!(v["start_at"], json!(given));
            assert_eq!(SinkSpec::from_stored(&stored).unwrap(), s);
        }
        let at = StartAt::parse("2026-06-01T02:00:00+02:00").unwrap();
        assert_eq!(at.from_time("x"), Some("2026-06-01T02:00:00+02:00"));
        assert!(matches!(at, StartAt::At { time, .. } if time.as_second() == 1_780_272_000));
        assert_eq!(StartAt::Now.from_time("created"), Some("created"));
        assert_eq!(StartAt::Earliest.from_time("created"), None);
        assert!(StartAt::parse("yesterday").is_none());
        // A stored document with a start the parser refuses is an unreadable spec, not a panic.
        let mut v = serde_json::to_value(SinkSpec::with_defaults("a", "webhook", "json")).unwrap();
        v["start_at"] = json!("yesterday");
        assert!(matches!(
            SinkSpec::from_stored(&v.to_string()),
            Err(EngineError::Spec(_))
        ));
    }
}
