//! The bodies of `POST /v1/sinks` and `PATCH /v1/sinks/{id}` as types: the fields a client may
//! send, each with its own range and syntax, read once with the offending field's path named
//! (`batch.max_events`, `event_types[1]`). The engine's `SinkSpec` is what they become; the
//! rules across fields (a format the kind can send, backoff bounds) are `SinkSpec::check`.

use std::collections::BTreeMap;

use auditrelay_core::{ids, parse_at, Bounded, TypeFilter};
use auditrelay_engine::spec::{BatchPolicy, BreakerPolicy, OnExhausted, RetryPolicy, SinkSpec, StartAt};
use auditrelay_engine::stage::{Stage, HASH_KEY};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::view::{SinkFormat, StartAt as StartAtSchema, TransformSchema, TypeGlob};
use crate::api::event_doc::TenantId;
use crate::error::{ApiError, ApiResult};

/// Reads a request body as `T`; a field at fault is `invalid_request` naming it.
pub(super) fn parse_body<T: serde::de::DeserializeOwned>(body: &Value) -> ApiResult<T> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    parse_at(body, "").map_err(|e| ApiError::invalid_field(&e.field, format!("{}: {}", e.field, e.message)))
}

/// A type glob, checked as it is read.
#[derive(Debug, Clone)]
pub struct TypeGlobIn(pub String);

impl<'de> Deserialize<'de> for TypeGlobIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let glob = String::deserialize(d)?;
        TypeFilter::from_patterns(std::iter::once(glob.as_str())).map_err(serde::de::Error::custom)?;
        Ok(TypeGlobIn(glob))
    }
}

/// A tenant id, checked as it is read.
#[derive(Debug, Clone)]
pub struct TenantIdIn(pub String);

impl<'de> Deserialize<'de> for TenantIdIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = String::deserialize(d)?;
        if !ids::is_valid_tenant_id(&id) {
            return Err(serde::de::Error::custom(
                "must be a tenant id (1–64 chars of [a-z0-9_-])",
            ));
        }
        Ok(TenantIdIn(id))
    }
}

/// `Some(None)` for a member given as `null`, `None` for one left out: a PATCH tells "clear"
/// from "keep".
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Reads `T` only from a JSON object. Serde's derived structs also accept an array of their
/// fields in order, so `"breaker": [null, null]` would silently mean "the defaults"; the
/// document says these are objects, and the server agrees.
struct ObjectOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = ObjectOnly<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(ObjectOnly)
            }
        }
        d.deserialize_map(Visitor(std::marker::PhantomData))
    }
}

/// An optional policy object (`batch`, `retry`, `breaker`): absent or `null` is `None`.
fn object_only<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<ObjectOnly<T>>::deserialize(d).map(|o| o.map(|ObjectOnly(t)| t))
}

/// `config`: absent is `None` (with `#[serde(default)]`), and `null` is refused like any other
/// non-object. Unlike a policy, `null` cannot mean "the defaults": the document says `config`
/// is an object, and create, update and preview all read it here.
fn config_object<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Map<String, Value>>, D::Error> {
    ObjectOnly::deserialize(d).map(|ObjectOnly(config)| Some(config))
}

/// Batching of a new or changed sink; omitted fields keep their default (create) or current
/// value (update).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BatchPolicyInput)]
pub struct BatchInput {
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 10000)]
    max_events: Option<Bounded<1, 10_000>>,
    #[schema(value_type = Option<u64>, minimum = 1024, maximum = 67108864)]
    max_bytes: Option<Bounded<1024, 67_108_864>>,
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 3600000)]
    flush_interval_ms: Option<Bounded<0, 3_600_000>>,
}

impl BatchInput {
    fn over(&self, base: BatchPolicy) -> BatchPolicy {
        BatchPolicy {
            max_events: self.max_events.map_or(base.max_events, |n| n.get() as usize),
            max_bytes: self.max_bytes.map_or(base.max_bytes, |n| n.get() as usize),
            flush_interval_ms: self.flush_interval_ms.map_or(base.flush_interval_ms, Bounded::get),
        }
    }
}

/// Retries of a new or changed sink; `initial_backoff_ms` ≤ `max_backoff_ms`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RetryPolicyInput)]
pub struct RetryInput {
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 100)]
    max_attempts: Option<Bounded<1, 100>>,
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 3600000)]
    initial_backoff_ms: Option<Bounded<1, 3_600_000>>,
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 86400000)]
    max_backoff_ms: Option<Bounded<1, 86_400_000>>,
}

impl RetryInput {
    fn over(&self, base: RetryPolicy) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.map_or(base.max_attempts, |n| n.get() as u32),
            initial_backoff_ms: self.initial_backoff_ms.map_or(base.initial_backoff_ms, Bounded::get),
            max_backoff_ms: self.max_backoff_ms.map_or(base.max_backoff_ms, Bounded::get),
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BreakerPolicyInput)]
pub struct BreakerInput {
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 1000)]
    failure_threshold: Option<Bounded<1, 1000>>,
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 3600000)]
    cooldown_ms: Option<Bounded<1, 3_600_000>>,
}

impl BreakerInput {
    fn over(&self, base: BreakerPolicy) -> BreakerPolicy {
        BreakerPolicy {
            failure_threshold: self
                .failure_threshold
                .map_or(base.failure_threshold, |n| n.get() as u32),
            cooldown_ms: self.cooldown_ms.map_or(base.cooldown_ms, Bounded::get),
        }
    }
}

/// A new sink (api.md "Sinks").
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    as = SinkCreate,
    example = json!({"name": "soc-webhook", "kind": "webhook", "config": {"url": "https://siem.example.com/intake"},
        "secrets": {"signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "event_types": ["decision.*"], "start_at": "earliest",
        "batch": {"max_events": 100, "flush_interval_ms": 1000}, "retry": {"max_attempts": 8, "initial_backoff_ms": 1000, "max_backoff_ms": 60000}})
)]
pub struct CreateSink {
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
    /// One of `SinkKind`.
    pub kind: String,
    /// A tenant key's sink belongs to its tenant (it may give it or omit it). The operator
    /// names a tenant, or omits it for a sink over all tenants (or those in `tenants`).
    #[schema(value_type = Option<TenantId>)]
    pub tenant: Option<String>,
    /// Operator sinks only: the tenants to read (absent or `null`: every tenant).
    #[schema(value_type = Option<Vec<TenantId>>, min_items = 1)]
    pub tenants: Option<Vec<TenantIdIn>>,
    /// The kind's endpoint settings.
    #[serde(default, deserialize_with = "config_object")]
    #[schema(nullable = false)]
    pub config: Option<Map<String, Value>>,
    /// Write-only: names to values (the kind's secret names). Never shown again.
    #[schema(write_only, value_type = Option<BTreeMap<String, String>>)]
    pub secrets: Option<BTreeMap<String, Option<String>>>,
    /// Default: the kind's first format.
    #[schema(value_type = Option<SinkFormat>)]
    pub format: Option<String>,
    /// Empty or absent: every type.
    #[schema(value_type = Option<Vec<TypeGlob>>)]
    pub event_types: Option<Vec<TypeGlobIn>>,
    /// Default `now`.
    #[schema(value_type = Option<StartAtSchema>)]
    pub start_at: Option<StartAt>,
    #[serde(default, deserialize_with = "object_only")]
    pub batch: Option<BatchInput>,
    #[serde(default, deserialize_with = "object_only")]
    pub retry: Option<RetryInput>,
    /// Per delivery; default 10000.
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 300000)]
    pub timeout_ms: Option<Bounded<1, 300_000>>,
    /// Batches in flight at once (ordered per tenant either way); default 1.
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 64)]
    pub max_in_flight: Option<Bounded<1, 64>>,
    /// Default `dead_letter`.
    pub on_exhausted: Option<OnExhausted>,
    #[serde(default, deserialize_with = "object_only")]
    pub breaker: Option<BreakerInput>,
    /// A CEL condition over `event` (the event as the `json` format renders it); only events
    /// for which it is `true` are sent, the cursor passes the others.
    #[schema(example = "event.severity >= 7 && event.metadata.domain in [\"finance\", \"hr\"]")]
    pub filter: Option<String>,
    /// Operations on each sent event's copy, after the filter and before the format.
    #[schema(value_type = Option<TransformSchema>)]
    pub transform: Option<Value>,
}

impl CreateSink {
    /// The stored definition: every field left out at its default. `formats` are the kind's,
    /// its first the default.
    pub fn spec(&self, formats: &[&str]) -> ApiResult<SinkSpec> {
        let base = SinkSpec::with_defaults(&self.name, &self.kind, formats.first().copied().unwrap_or("json"));
        let spec = SinkSpec {
            config: self.config.clone().unwrap_or_default(),
            format: self.format.clone().unwrap_or(base.format.clone()),
            event_types: globs(self.event_types.as_deref()),
            tenants: tenants(self.tenants.as_deref())?,
            start_at: self.start_at.clone().unwrap_or(base.start_at.clone()),
            batch: self.batch.as_ref().map_or(base.batch, |b| b.over(base.batch)),
            retry: self.retry.as_ref().map_or(base.retry, |r| r.over(base.retry)),
            timeout_ms: self.timeout_ms.map_or(base.timeout_ms, Bounded::get),
            max_in_flight: self.max_in_flight.map_or(base.max_in_flight, |n| n.get() as usize),
            on_exhausted: self.on_exhausted.unwrap_or(base.on_exhausted),
            breaker: self.breaker.as_ref().map_or(base.breaker, |b| b.over(base.breaker)),
            filter: self.filter.clone(),
            transform: self.transform.clone(),
            ..base
        };
        spec.check(formats).map_err(spec_error)?;
        check_stage(&spec)?;
        Ok(spec)
    }

    /// The secrets given, `null` ones left out.
    pub fn secrets(&self) -> ApiResult<Vec<(String, String)>> {
        Ok(secret_changes(self.secrets.as_ref())?
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| (name, v)))
            .collect())
    }
}

/// Changes to a sink: present fields replace, objects (`config`, `batch`, `retry`, `breaker`)
/// merge key by key (a `null` member of `config` removes that key), an omitted secret keeps
/// the stored one and a `null` secret removes it. `kind` and `tenant` cannot change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SinkPatch, example = json!({"event_types": ["decision.*", "auth.*"], "retry": {"max_attempts": 3}}))]
pub struct PatchSink {
    #[schema(min_length = 1, max_length = 128)]
    pub name: Option<String>,
    /// Only the sink's own kind.
    pub kind: Option<String>,
    /// Only the sink's own tenant.
    #[schema(value_type = Option<TenantId>)]
    pub tenant: Option<String>,
    /// `null`: every tenant.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<TenantId>>, min_items = 1)]
    pub tenants: Option<Option<Vec<TenantIdIn>>>,
    #[serde(default, deserialize_with = "config_object")]
    #[schema(value_type = Option<Map<String, Value>>, nullable = false)]
    pub config: Option<Map<String, Value>>,
    #[schema(write_only)]
    pub secrets: Option<BTreeMap<String, Option<String>>>,
    #[schema(value_type = Option<SinkFormat>)]
    pub format: Option<String>,
    /// `null` or empty: every type.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<TypeGlob>>)]
    pub event_types: Option<Option<Vec<TypeGlobIn>>>,
    #[schema(value_type = Option<StartAtSchema>)]
    pub start_at: Option<StartAt>,
    #[serde(default, deserialize_with = "object_only")]
    pub batch: Option<BatchInput>,
    #[serde(default, deserialize_with = "object_only")]
    pub retry: Option<RetryInput>,
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 300000)]
    pub timeout_ms: Option<Bounded<1, 300_000>>,
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 64)]
    pub max_in_flight: Option<Bounded<1, 64>>,
    pub on_exhausted: Option<OnExhausted>,
    #[serde(default, deserialize_with = "object_only")]
    pub breaker: Option<BreakerInput>,
    /// `null`: no filter.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub filter: Option<Option<String>>,
    /// `null`: no transform. Replaces the whole transform when given.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<TransformSchema>)]
    pub transform: Option<Option<Value>>,
}

impl PatchSink {
    /// `current` with these changes. `formats` are the sink kind's.
    pub fn apply(&self, current: &SinkSpec, formats: &[&str]) -> ApiResult<SinkSpec> {
        if self.kind.as_ref().is_some_and(|k| k != &current.kind) {
            return Err(ApiError::invalid_field(
                "kind",
                "kind: cannot change; create a new sink instead",
            ));
        }
        let mut next = current.clone();
        if let Some(name) = &self.name {
            next.name = name.clone();
        }
        if let Some(patch) = &self.config {
            for (k, v) in patch {
                if v.is_null() {
                    next.config.remove(k);
                } else {
                    next.config.insert(k.clone(), v.clone());
                }
            }
        }
        if let Some(format) = &self.format {
            next.format = format.clone();
        }
        if let Some(types) = &self.event_types {
            next.event_types = globs(types.as_deref());
        }
        if let Some(list) = &self.tenants {
            next.tenants = tenants(list.as_deref())?;
        }
        if let Some(start_at) = &self.start_at {
            next.start_at = start_at.clone();
        }
        next.batch = self.batch.as_ref().map_or(next.batch, |b| b.over(next.batch));
        next.retry = self.retry.as_ref().map_or(next.retry, |r| r.over(next.retry));
        next.breaker = self.breaker.as_ref().map_or(next.breaker, |b| b.over(next.breaker));
        next.timeout_ms = self.timeout_ms.map_or(next.timeout_ms, Bounded::get);
        next.max_in_flight = self.max_in_flight.map_or(next.max_in_flight, |n| n.get() as usize);
        next.on_exhausted = self.on_exhausted.unwrap_or(next.on_exhausted);
        if let Some(filter) = &self.filter {
            next.filter = filter.clone();
        }
        if let Some(transform) = &self.transform {
            next.transform = transform.clone();
        }
        next.check(formats).map_err(spec_error)?;
        check_stage(&next)?;
        Ok(next)
    }

    /// The secrets to set (`Some`) or remove (`None`).
    pub fn secrets(&self) -> ApiResult<Vec<(String, Option<String>)>> {
        secret_changes(self.secrets.as_ref())
    }

    /// The top-level fields given, for the audit trail (`secrets` is reported apart).
    pub fn changed_fields(body: &Value) -> Vec<String> {
        body.as_object()
            .map(|m| m.keys().filter(|k| k.as_str() != "secrets").cloned().collect())
            .unwrap_or_default()
    }
}

/// The filter compiles and the transform parses; a filter error gives its line and column.
fn check_stage(spec: &SinkSpec) -> ApiResult<()> {
    match Stage::from_spec(spec, None) {
        Ok(_) => Ok(()),
        Err(e) => {
            let mut detail = json!({ "field": e.field });
            if let Some((line, column)) = e.position {
                detail["line"] = json!(line);
                detail["column"] = json!(column);
            }
            Err(ApiError::bad_request(format!("{}: {}", e.field, e.message)).with_detail(detail))
        }
    }
}

/// A `hash_key` for a transform that hashes, when the sink has none: generated, stored with
/// the other secrets, and shown once in `generated_secrets`.
pub(super) fn ensure_hash_key(spec: &SinkSpec, secrets: &mut auditrelay_sinks::Secrets) -> Option<(String, String)> {
    if !Stage::needs_hash_key(spec.transform.as_ref()) || secrets.contains_key(HASH_KEY) {
        return None;
    }
    let key = auditrelay_pipeline::generate_hash_key();
    secrets.insert(HASH_KEY.to_owned(), key.clone());
    Some((HASH_KEY.to_owned(), key))
}

fn spec_error(e: auditrelay_engine::spec::SpecError) -> ApiError {
    ApiError::invalid_field(&e.field, format!("{}: {}", e.field, e.message))
}

fn globs(list: Option<&[TypeGlobIn]>) -> Vec<String> {
    list.unwrap_or_default().iter().map(|g| g.0.clone()).collect()
}

/// Sorted, without repeats; an empty list is refused (leave it out for every tenant).
fn tenants(list: Option<&[TenantIdIn]>) -> ApiResult<Option<Vec<String>>> {
    let Some(list) = list else { return Ok(None) };
    if list.is_empty() {
        return Err(ApiError::invalid_field(
            "tenants",
            "tenants: must name at least one tenant (omit it for every tenant)",
        ));
    }
    let mut out: Vec<String> = list.iter().map(|t| t.0.clone()).collect();
    out.sort();
    out.dedup();
    Ok(Some(out))
}

/// `secrets` of a body: names to values; `null` removes (PATCH).
fn secret_changes(secrets: Option<&BTreeMap<String, Option<String>>>) -> ApiResult<Vec<(String, Option<String>)>> {
    secrets
        .into_iter()
        .flatten()
        .map(|(k, v)| match v {
            // Rotation state is the server's: it is set by changing the secret itself.
            _ if k.starts_with("previous_") => Err(ApiError::invalid_field(
                &format!("secrets.{k}"),
                format!("secrets.{k} is managed by the server during a rotation and cannot be set"),
            )),
            Some(s) if s.is_empty() => Err(ApiError::invalid_field(
                &format!("secrets.{k}"),
                format!("secrets.{k} must be a non-empty string (or null to remove it)"),
            )),
            v => Ok((k.clone(), v.clone())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(v: Value) -> ApiResult<SinkSpec> {
        parse_body::<CreateSink>(&v)?.spec(&["json"])
    }

    fn field(e: ApiError) -> String {
        e.field().unwrap_or_default().to_owned()
    }

    #[test]
    fn defaults_are_explicit() {
        let s = create(json!({"name": "a", "kind": "webhook"})).unwrap();
        assert_eq!(s, SinkSpec::with_defaults("a", "webhook", "json"));
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
                json!({"name": "a", "kind": "webhook", "event_types": ["x", "Bad Type"]}),
                "event_types[1]",
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
            (
                json!({"name": "a", "kind": "webhook", "tenants": ["ok", "Not OK"]}),
                "tenants[1]",
            ),
            (
                json!({"name": "a", "kind": "webhook", "event_type": ["x"]}),
                "event_type",
            ),
            (json!({"name": "a", "kind": "webhook", "timeout_ms": 2.5}), "timeout_ms"),
            (
                json!({"name": "a", "kind": "webhook", "secrets": {"previous_x": "v"}}),
                "secrets.previous_x",
            ),
        ];
        for (b, expected) in cases {
            let e = parse_body::<CreateSink>(&b).and_then(|c| {
                c.secrets()?;
                c.spec(&["json"])
            });
            assert_eq!(field(e.unwrap_err()), expected, "{b}");
        }
    }

    #[test]
    fn patch_merges_and_keeps_the_rest() {
        let s = create(
            json!({"name": "a", "kind": "webhook", "config": {"url": "https://x", "headers": {"a": "b"}},
                              "batch": {"max_events": 10}, "event_types": ["a.*"]}),
        )
        .unwrap();
        let patch: PatchSink =
            parse_body(&json!({"config": {"headers": null}, "batch": {"flush_interval_ms": 5}})).unwrap();
        let p = patch.apply(&s, &["json"]).unwrap();
        assert_eq!(p.config.get("url"), Some(&json!("https://x")));
        assert!(!p.config.contains_key("headers"));
        assert_eq!((p.batch.max_events, p.batch.flush_interval_ms), (10, 5));
        assert_eq!(p.event_types, ["a.*"], "left out: kept");
        let cleared = parse_body::<PatchSink>(&json!({"event_types": null}))
            .unwrap()
            .apply(&s, &["json"])
            .unwrap();
        assert!(cleared.event_types.is_empty(), "null: every type");
        let kind = parse_body::<PatchSink>(&json!({"kind": "kafka"}))
            .unwrap()
            .apply(&s, &["json"]);
        assert_eq!(field(kind.unwrap_err()), "kind");
    }
}
