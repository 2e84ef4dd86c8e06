//! How the API shows a sink, and the schema-only types its reference uses.

use std::borrow::Cow;
use std::collections::BTreeMap;

use auditrelay_engine::spec::{BatchPolicy, BreakerPolicy, OnExhausted, RetryPolicy, SinkSpec};
use auditrelay_format::Format;
use auditrelay_sinks::Secrets;
use auditrelay_store::SinkRow;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

use crate::api::doc;
use crate::api::event_doc::TenantId;

/// `snk_` and 32 hex digits.
#[derive(Serialize, ToSchema)]
#[schema(pattern = "^snk_[0-9a-f]{32}$", example = "snk_0190b5d27c1e7f3a9a513f0e9c2d4b11")]
pub struct SinkId(String);

doc::json_schema! {
    /// A type glob: `*` matches any run of characters (dots included), `?` exactly one.
    pub struct TypeGlob = {
        "type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[a-z0-9_.*?-]{1,128}$",
        "description": "A type glob: `*` matches any run of characters (dots included), `?` exactly one.",
        "examples": ["decision.*"]
    }
}

/// A sink's `format`: one of `auditrelay_format::Format`'s names, listed from `Format::ALL` so
/// that the document names every format the server renders, and no other.
#[allow(dead_code)] // Only its schema is used.
pub struct SinkFormat;

impl utoipa::PartialSchema for SinkFormat {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "How events are rendered; each kind allows some (its first is its default).",
            ))
            .enum_values(Some(Format::ALL.iter().map(|f| f.name())))
            .into()
    }
}

impl ToSchema for SinkFormat {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("SinkFormat")
    }
}

doc::json_schema! {
    /// Where a new sink starts reading.
    pub struct StartAt = {
        "description": "Where a new sink starts reading: `now` (events committed from now on), `earliest` (the whole log) or an RFC 3339 time (events received from then on).",
        "oneOf": [
            { "type": "string", "enum": ["now", "earliest"] },
            { "type": "string", "format": "date-time" }
        ]
    }
}

doc::json_schema! {
    /// Operations on each sent event's copy (api.md "Per-sink filter and transform").
    pub struct TransformSchema = {
        "type": "object",
        "additionalProperties": false,
        "description": "Applied in this order: drop, redact (\"[REDACTED]\"), hash (\"hmac-sha256:<hex>\" keyed by the write-only `hash_key` secret), rename, set. Paths are dotted (no empty segment); a missing path is a no-op; `offset`, `tenant_id`, `id`, `chain` and `transformed` cannot be changed; a path appears in at most one of drop, redact and hash, and a rename cannot be onto itself.",
        "properties": {
            "drop": { "type": "array", "uniqueItems": true, "items": { "type": "string", "pattern": "^[^.]+(\\.[^.]+)*$", "not": { "pattern": "^(offset|tenant_id|id|chain|transformed)(\\.|$)" } } },
            "redact": { "type": "array", "uniqueItems": true, "items": { "type": "string", "pattern": "^[^.]+(\\.[^.]+)*$", "not": { "pattern": "^(offset|tenant_id|id|chain|transformed)(\\.|$)" } } },
            "hash": { "type": "array", "uniqueItems": true, "items": { "type": "string", "pattern": "^[^.]+(\\.[^.]+)*$", "not": { "pattern": "^(offset|tenant_id|id|chain|transformed)(\\.|$)" } } },
            "rename": { "type": "object", "propertyNames": { "type": "string", "pattern": "^[^.]+(\\.[^.]+)*$", "not": { "pattern": "^(offset|tenant_id|id|chain|transformed)(\\.|$)" } }, "additionalProperties": { "type": "string", "pattern": "^[^.]+(\\.[^.]+)*$", "not": { "pattern": "^(offset|tenant_id|id|chain|transformed)(\\.|$)" } } },
            "set": { "type": "object", "propertyNames": { "type": "string", "pattern": "^[^.]+(\\.[^.]+)*$", "not": { "pattern": "^(offset|tenant_id|id|chain|transformed)(\\.|$)" } } }
        },
        "examples": [{"drop": ["actor.email"], "redact": ["actor.ip_address"], "hash": ["actor.id"], "rename": {"metadata.domain": "metadata.folder"}, "set": {"metadata.env": "prod"}}]
    }
}

/// A secret in rotation: the previous value keeps signing beside the new one until then.
#[derive(Serialize, ToSchema)]
pub struct SecretRotation {
    #[schema(format = DateTime)]
    previous_valid_until: String,
}

/// A sink as the API shows it: its definition with every default explicit, ownership, state,
/// and the *names* of its secrets (never a value).
#[derive(Serialize, ToSchema)]
#[schema(as = Sink)]
pub struct SinkView {
    #[schema(value_type = SinkId)]
    id: String,
    /// The owning tenant; `null` for an operator sink.
    #[schema(value_type = Option<TenantId>)]
    tenant: Option<String>,
    name: String,
    /// One of `SinkKind`.
    kind: String,
    /// The kind's endpoint settings (see the per-kind variants).
    config: Map<String, Value>,
    #[schema(value_type = SinkFormat)]
    format: String,
    /// Empty: every type.
    #[schema(value_type = Vec<TypeGlob>)]
    event_types: Vec<String>,
    /// Operator sinks only (absent on a tenant's sink): the tenants read; `null` = every
    /// tenant, present and future.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<TenantId>>)]
    tenants: Option<Option<Vec<String>>>,
    #[schema(value_type = StartAt)]
    start_at: String,
    batch: BatchPolicy,
    retry: RetryPolicy,
    #[schema(minimum = 1, maximum = 300000)]
    timeout_ms: u64,
    #[schema(minimum = 1, maximum = 64)]
    max_in_flight: usize,
    on_exhausted: OnExhausted,
    breaker: BreakerPolicy,
    /// The CEL condition events must meet to be sent; absent: every event.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    filter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<TransformSchema>, nullable = false)]
    transform: Option<Value>,
    /// Names of the secrets that are set.
    secrets_set: Vec<String>,
    /// Secrets being rotated, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    secret_rotation: Option<BTreeMap<String, SecretRotation>>,
    /// Secrets the server generated because none was given (e.g. a webhook's
    /// `signing_secret`): in the answer that created them only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    generated_secrets: Option<BTreeMap<String, String>>,
    paused: bool,
    pause_reason: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    /// Incremented by each change.
    #[schema(minimum = 1)]
    revision: u64,
}

impl SinkView {
    pub(crate) fn new(row: &SinkRow, spec: SinkSpec, secrets: &Secrets) -> Self {
        let rotating: BTreeMap<String, SecretRotation> = secrets
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("previous_")?.strip_suffix("_expires_at")?;
                Some((
                    name.to_owned(),
                    SecretRotation {
                        previous_valid_until: v.clone(),
                    },
                ))
            })
            .collect();
        SinkView {
            id: row.id.clone(),
            tenant: row.owner_tenant.clone(),
            name: spec.name,
            kind: spec.kind,
            config: spec.config,
            format: spec.format,
            event_types: spec.event_types,
            // A tenant's sink reads its own tenant: `tenants` would only confuse.
            tenants: row.owner_tenant.is_none().then_some(spec.tenants),
            start_at: spec.start_at.as_str().to_owned(),
            batch: spec.batch,
            retry: spec.retry,
            timeout_ms: spec.timeout_ms,
            max_in_flight: spec.max_in_flight,
            on_exhausted: spec.on_exhausted,
            breaker: spec.breaker,
            filter: spec.filter,
            transform: spec.transform,
            secrets_set: secrets
                .keys()
                .filter(|k| !k.starts_with("previous_"))
                .cloned()
                .collect(),
            secret_rotation: (!rotating.is_empty()).then_some(rotating),
            generated_secrets: None,
            paused: row.paused,
            pause_reason: row.pause_reason.clone(),
            created_at: row.created_at.clone(),
            updated_at: row.updated_at.clone(),
            revision: row.revision,
        }
    }

    pub(crate) fn with_generated(mut self, generated: Secrets) -> Self {
        self.generated_secrets = (!generated.is_empty()).then_some(generated);
        self
    }
}

#[derive(Serialize, ToSchema)]
pub struct SinkPage {
    pub(crate) items: Vec<SinkView>,
    /// The cursor for the next page; `null` when this page was not full.
    pub(crate) next_cursor: Option<String>,
}
