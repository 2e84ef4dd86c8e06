//! Sink management (api.md "Sinks"): definitions with write-only secrets, and the operations
//! on a running sink — test delivery, health, pause/resume, replay, dead letters, delivery log.
//!
//! Visibility: a tenant key with `manage` sees only the sinks its tenant owns; anything else
//! answers 404 exactly like a missing sink, so ids cannot be probed.
//!
//! `POST /v1/graphql` calls these handlers too (`crate::graphql::schema`): what they decide and
//! answer is what GraphQL decides and answers, so a change here shows on both surfaces.

use std::collections::BTreeMap;

use auditrelay_core::ids::new_prefixed_id;
use auditrelay_core::time;
use auditrelay_engine::spec::{BatchPolicy, BreakerPolicy, OnExhausted, RetryPolicy, SinkSpec, BODY_FIELDS};
use auditrelay_engine::{AttemptResult, EngineError, ReplayInfo, SinkHealth};
use auditrelay_sinks::{kind_spec, ConfigError, Secrets};
use auditrelay_store::{DeadLetter, DeliveryAttempt, SinkRow};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::doc;
use super::event_doc::TenantId;
use super::extract::{ApiJson, ApiQuery, Page};
use crate::audit;
use crate::auth::{Principal, Scope};
use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Store(e) => e.into(),
            EngineError::Build(ConfigError { field, message }) => ApiError::new(
                StatusCode::CONFLICT,
                "sink_misconfigured",
                format!("the stored sink configuration does not work: {field}: {message}"),
            )
            .with_detail(json!({ "field": field })),
            EngineError::Gone(msg) => ApiError::new(StatusCode::GONE, "gone", msg),
            other => {
                tracing::error!(error = %other, "engine error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the sink could not be loaded",
                )
            }
        }
    }
}

fn config_error(e: ConfigError) -> ApiError {
    ApiError::invalid_field(&e.field, format!("{}: {}", e.field, e.message))
}

fn spec_error(e: auditrelay_engine::spec::SpecError) -> ApiError {
    ApiError::invalid_field(&e.field, format!("{}: {}", e.field, e.message))
}

fn body_object(body: Value) -> ApiResult<Map<String, Value>> {
    let Value::Object(map) = body else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    if let Some(unknown) = map.keys().find(|k| !BODY_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::invalid_field(
            unknown,
            format!("unknown field `{unknown}` (known: {})", BODY_FIELDS.join(", ")),
        ));
    }
    Ok(map)
}

/// `secrets` of a body: names to values; `null` removes (PATCH).
fn secrets_patch(body: &Map<String, Value>) -> ApiResult<Vec<(String, Option<String>)>> {
    match body.get("secrets") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                // Rotation state is the server's: it is set by changing the secret itself.
                _ if k.starts_with("previous_") => Err(ApiError::invalid_field(
                    &format!("secrets.{k}"),
                    format!("secrets.{k} is managed by the server during a rotation and cannot be set"),
                )),
                Value::String(s) if !s.is_empty() => Ok((k.clone(), Some(s.clone()))),
                Value::Null => Ok((k.clone(), None)),
                _ => Err(ApiError::invalid_field(
                    &format!("secrets.{k}"),
                    format!("secrets.{k} must be a non-empty string (or null to remove it)"),
                )),
            })
            .collect(),
        Some(_) => Err(ApiError::invalid_field("secrets", "secrets must be an object")),
    }
}

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

/// How events are rendered; each kind allows some (its first is its default).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // Only its schema is used.
pub enum SinkFormat {
    Json,
    Cef,
    Leef,
    Ocsf,
    Raw,
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
    fn new(row: &SinkRow, spec: SinkSpec, secrets: &Secrets) -> Self {
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

    fn with_generated(mut self, generated: Secrets) -> Self {
        self.generated_secrets = (!generated.is_empty()).then_some(generated);
        self
    }
}

/// Batching of a new or changed sink; omitted fields keep their default (create) or current
/// value (update).
#[derive(Serialize, ToSchema)]
#[schema(as = BatchPolicyInput)]
#[allow(dead_code)] // Only its schema is used; `SinkSpec::from_body` reads the body.
pub struct BatchInput {
    #[schema(minimum = 1, maximum = 10000)]
    max_events: Option<u64>,
    #[schema(minimum = 1024, maximum = 67108864)]
    max_bytes: Option<u64>,
    #[schema(minimum = 0, maximum = 3600000)]
    flush_interval_ms: Option<u64>,
}

/// Retries of a new or changed sink; `initial_backoff_ms` ≤ `max_backoff_ms`.
#[derive(Serialize, ToSchema)]
#[schema(as = RetryPolicyInput)]
#[allow(dead_code)] // Only its schema is used.
pub struct RetryInput {
    #[schema(minimum = 1, maximum = 100)]
    max_attempts: Option<u64>,
    #[schema(minimum = 1, maximum = 3600000)]
    initial_backoff_ms: Option<u64>,
    #[schema(minimum = 1, maximum = 86400000)]
    max_backoff_ms: Option<u64>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = BreakerPolicyInput)]
#[allow(dead_code)] // Only its schema is used.
pub struct BreakerInput {
    #[schema(minimum = 1, maximum = 1000)]
    failure_threshold: Option<u64>,
    #[schema(minimum = 1, maximum = 3600000)]
    cooldown_ms: Option<u64>,
}

/// A new sink (api.md "Sinks"). Read by `SinkSpec::from_body`, which refuses unknown fields;
/// this type gives its rules to the API reference.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    as = SinkCreate,
    example = json!({"name": "soc-webhook", "kind": "webhook", "config": {"url": "https://siem.example.com/intake"},
        "secrets": {"signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "event_types": ["decision.*"], "start_at": "earliest",
        "batch": {"max_events": 100, "flush_interval_ms": 1000}, "retry": {"max_attempts": 8, "initial_backoff_ms": 1000, "max_backoff_ms": 60000}})
)]
#[allow(dead_code)] // Only its schema is used.
pub struct SinkCreate {
    #[schema(min_length = 1, max_length = 128)]
    name: String,
    /// One of `SinkKind`.
    kind: String,
    /// A tenant key's sink belongs to its tenant (it may give it or omit it). The operator
    /// names a tenant, or omits it for a sink over all tenants (or those in `tenants`).
    tenant: Option<TenantId>,
    /// Operator sinks only: the tenants to read (absent or `null`: every tenant).
    #[schema(min_items = 1)]
    tenants: Option<Vec<TenantId>>,
    /// The kind's endpoint settings.
    config: Option<Map<String, Value>>,
    /// Write-only: names to values (the kind's secret names). Never shown again.
    #[schema(write_only)]
    secrets: Option<BTreeMap<String, String>>,
    /// Default: the kind's first format.
    format: Option<SinkFormat>,
    /// Empty or absent: every type.
    event_types: Option<Vec<TypeGlob>>,
    /// Default `now`.
    start_at: Option<StartAt>,
    batch: Option<BatchInput>,
    retry: Option<RetryInput>,
    /// Per delivery; default 10000.
    #[schema(minimum = 1, maximum = 300000)]
    timeout_ms: Option<u64>,
    /// Batches in flight at once (ordered per tenant either way); default 1.
    #[schema(minimum = 1, maximum = 64)]
    max_in_flight: Option<u64>,
    /// Default `dead_letter`.
    on_exhausted: Option<OnExhausted>,
    breaker: Option<BreakerInput>,
}

/// Changes to a sink: present fields replace, objects (`config`, `batch`, `retry`, `breaker`)
/// merge key by key (a `null` member of `config` removes that key), an omitted secret keeps
/// the stored one and a `null` secret removes it. `kind` and `tenant` cannot change.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SinkPatch, example = json!({"event_types": ["decision.*", "auth.*"], "retry": {"max_attempts": 3}}))]
#[allow(dead_code)] // Only its schema is used.
pub struct SinkUpdate {
    #[schema(min_length = 1, max_length = 128)]
    name: Option<String>,
    /// Only the sink's own kind.
    kind: Option<String>,
    /// Only the sink's own tenant.
    tenant: Option<TenantId>,
    #[schema(min_items = 1)]
    tenants: Option<Vec<TenantId>>,
    config: Option<Map<String, Value>>,
    #[schema(write_only)]
    secrets: Option<BTreeMap<String, Option<String>>>,
    format: Option<SinkFormat>,
    event_types: Option<Vec<TypeGlob>>,
    start_at: Option<StartAt>,
    batch: Option<BatchInput>,
    retry: Option<RetryInput>,
    #[schema(minimum = 1, maximum = 300000)]
    timeout_ms: Option<u64>,
    #[schema(minimum = 1, maximum = 64)]
    max_in_flight: Option<u64>,
    on_exhausted: Option<OnExhausted>,
    breaker: Option<BreakerInput>,
}

#[derive(Serialize, ToSchema)]
pub struct SinkPage {
    pub(crate) items: Vec<SinkView>,
    /// The cursor for the next page; `null` when this page was not full.
    next_cursor: Option<String>,
}

fn sink_view(row: &SinkRow, spec: &SinkSpec, secrets: &Secrets) -> SinkView {
    SinkView::new(row, spec.clone(), secrets)
}

fn parse_spec(row: &SinkRow) -> ApiResult<SinkSpec> {
    serde_json::from_str(&row.spec).map_err(|e| EngineError::Spec(e.to_string()).into())
}

fn open_secrets(state: &AppState, row: &SinkRow) -> ApiResult<Secrets> {
    state
        .engine
        .master_key()
        .open(&row.id, &row.sealed_secrets)
        .map_err(|e| EngineError::from(e).into())
}

fn respond(state: &AppState, row: &SinkRow) -> ApiResult<Json<SinkView>> {
    Ok(Json(sink_view(row, &parse_spec(row)?, &open_secrets(state, row)?)))
}

/// The 404 for a sink that is missing or not this principal's.
fn not_found_sink(id: &str) -> ApiError {
    ApiError::not_found(format!("sink `{id}` not found"))
}

/// The cursor for the next page: the last item's key when the page is full.
fn next_cursor<T>(items: &[T], limit: usize, key: impl Fn(&T) -> String) -> Option<String> {
    (items.len() == limit).then(|| items.last().map(key)).flatten()
}

/// The sink if this principal may see it; 404 otherwise (also for another tenant's sink).
async fn visible_sink(state: &AppState, principal: &Principal, id: &str) -> ApiResult<SinkRow> {
    principal.require(Scope::Manage)?;
    let row = state.store.sink(id).await?;
    match (row, principal) {
        (Some(row), Principal::Operator) => Ok(row),
        (Some(row), Principal::Tenant { tenant, .. }) if row.owner_tenant.as_deref() == Some(tenant) => Ok(row),
        _ => Err(not_found_sink(id)),
    }
}

/// Create a sink. A tenant key with `manage` creates a sink of its tenant; the operator names
/// the tenant, or omits it for a sink over all tenants (or those in `tenants`).
#[utoipa::path(
    post,
    path = "/v1/sinks",
    operation_id = "createSink",
    tag = "sinks",
    request_body = SinkCreate,
    responses(
        (status = 201, description = "Created: the sink with `secrets_set` in place of the secrets, and `generated_secrets` when the server generated one (shown this once).", body = SinkView),
        (status = 400, description = "`invalid_json`, or `invalid_request` with `detail.field` naming the field at fault (an unknown field, a bad value, a `config` key the kind refuses, a receiver address the SSRF guard refuses).", body = ErrorBody),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 408, response = doc::RequestTimeout),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 415, response = doc::UnsupportedMediaType),
        (status = 429, response = doc::TooManyRequests),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn create_sink(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<ApiJson<Value>, ApiError>,
) -> ApiResult<(StatusCode, Json<SinkView>)> {
    principal.require(Scope::Manage)?;
    let ApiJson(body) = body?;
    let body = body_object(body)?;
    let requested_tenant = match body.get("tenant") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.as_str()),
        Some(_) => return Err(ApiError::invalid_field("tenant", "tenant must be a string")),
    };
    let owner = principal.tenant_for(requested_tenant)?;
    if let Some(owner) = &owner {
        state.tenants.ensure(state.store.as_ref(), owner).await?;
        if body.get("tenants").is_some_and(|v| !v.is_null()) {
            return Err(ApiError::invalid_field(
                "tenants",
                "`tenants` is for operator sinks over several tenants; a tenant's sink reads its own tenant",
            ));
        }
    }
    let kind = match body.get("kind") {
        Some(Value::String(k)) => k.clone(),
        None | Some(Value::Null) => return Err(ApiError::invalid_field("kind", "kind is required")),
        Some(_) => return Err(ApiError::invalid_field("kind", "kind must be a string")),
    };
    // An unknown or not-yet-built kind is named precisely (registry wording).
    let Some(kind_spec) = kind_spec(&kind) else {
        let e = auditrelay_sinks::validate_config(&kind, &Value::Null, &mut Secrets::new(), state.engine.env())
            .await
            .err()
            .unwrap_or_else(|| ConfigError::new("kind", "unknown sink kind"));
        return Err(config_error(e));
    };
    let spec = SinkSpec::from_body(&body, kind_spec.formats).map_err(spec_error)?;
    if let Some(list) = &spec.tenants {
        for t in list {
            state.tenants.ensure(state.store.as_ref(), t).await?;
        }
    }
    let mut secrets = Secrets::new();
    for (name, value) in secrets_patch(&body)? {
        if let Some(v) = value {
            secrets.insert(name, v);
        }
    }
    let generated = auditrelay_sinks::validate_config(
        &kind,
        &Value::Object(spec.config.clone()),
        &mut secrets,
        state.engine.env(),
    )
    .await
    .map_err(config_error)?;

    let id = new_prefixed_id("snk");
    let now = time::now_rfc3339();
    let row = SinkRow {
        sealed_secrets: state
            .engine
            .master_key()
            .seal(&id, &secrets)
            .map_err(EngineError::from)?,
        id,
        owner_tenant: owner,
        spec: serde_json::to_string(&spec).map_err(|e| EngineError::Spec(e.to_string()))?,
        paused: false,
        pause_reason: None,
        created_at: now.clone(),
        updated_at: now,
        revision: 1,
    };
    state.store.create_sink(row.clone()).await?;
    state.engine.reload(&row.id);
    tracing::info!(sink = %row.id, kind = %spec.kind, tenant = ?row.owner_tenant, "sink created");
    let secret_names: Vec<&String> = secrets.keys().collect();
    audit::sink_event(
        &state,
        &principal,
        "sink.created",
        "create",
        &row,
        json!({ "kind": spec.kind, "tenants": spec.tenants, "secrets_set": secret_names }),
    )
    .await?;
    let out = sink_view(&row, &spec, &secrets).with_generated(generated);
    Ok((StatusCode::CREATED, Json(out)))
}

/// List sinks in id order: a tenant key its tenant's; the operator every sink, or one tenant's.
#[utoipa::path(
    get,
    path = "/v1/sinks",
    operation_id = "listSinks",
    tag = "sinks",
    params(
        ("tenant" = Option<String>, Query, description = "Only the sinks this tenant owns. The operator token without it lists every sink; a tenant key lists its own tenant's and may give its own tenant (another answers `404`)."),
        Page,
    ),
    responses(
        (status = 200, description = "A page of sinks.", body = SinkPage),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 500, response = doc::Internal),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn list_sinks(
    State(state): State<AppState>,
    principal: Principal,
    page: Result<ApiQuery<Page>, ApiError>,
) -> ApiResult<Json<SinkPage>> {
    principal.require(Scope::Manage)?;
    let ApiQuery(page) = page?;
    let limit = page.limit()?;
    let owner = principal.tenant_for(page.tenant.as_deref())?;
    let rows = state
        .store
        .list_sinks(owner.as_deref(), page.cursor.as_deref(), limit)
        .await?;
    let next = next_cursor(&rows, limit, |r| r.id.clone());
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        items.push(respond(&state, row)?.0);
    }
    Ok(Json(SinkPage {
        items,
        next_cursor: next,
    }))
}

/// One sink.
#[utoipa::path(
    get,
    path = "/v1/sinks/{id}",
    operation_id = "getSink",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`).")),
    responses(
        (status = 200, description = "The sink.", body = SinkView),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 500, response = doc::Internal),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn get_sink(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<SinkView>> {
    let row = visible_sink(&state, &principal, &id).await?;
    respond(&state, &row)
}

/// Change a sink. The running sink picks the change up at its next batch.
#[utoipa::path(
    patch,
    path = "/v1/sinks/{id}",
    operation_id = "updateSink",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`).")),
    request_body = SinkUpdate,
    responses(
        (status = 200, description = "The changed sink.", body = SinkView),
        (status = 400, description = "`invalid_json`, or `invalid_request` with `detail.field` naming the field at fault.", body = ErrorBody),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 408, response = doc::RequestTimeout),
        (status = 409, response = doc::Conflict),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 415, response = doc::UnsupportedMediaType),
        (status = 429, response = doc::TooManyRequests),
        (status = 500, response = doc::Internal),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn patch_sink(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    body: Result<ApiJson<Value>, ApiError>,
) -> ApiResult<Json<SinkView>> {
    let row = visible_sink(&state, &principal, &id).await?;
    let ApiJson(body) = body?;
    let body = body_object(body)?;
    match body.get("tenant") {
        None | Some(Value::Null) => {}
        Some(t) if t.as_str() == row.owner_tenant.as_deref() => {}
        Some(_) => return Err(ApiError::invalid_field("tenant", "a sink's tenant cannot change")),
    }
    if row.owner_tenant.is_some() && body.get("tenants").is_some_and(|v| !v.is_null()) {
        return Err(ApiError::invalid_field(
            "tenants",
            "a tenant's sink reads its own tenant",
        ));
    }
    let spec = parse_spec(&row)?;
    let kind_spec = kind_spec(&spec.kind).ok_or_else(|| ApiError::invalid_field("kind", "kind not available"))?;
    let next = spec.patched(&body, kind_spec.formats).map_err(spec_error)?;
    if let Some(list) = &next.tenants {
        for t in list {
            state.tenants.ensure(state.store.as_ref(), t).await?;
        }
    }
    let mut secrets = open_secrets(&state, &row)?;
    // Read as the webhook sink reads it (a whole number written `60.0` included), default one day.
    let grace = auditrelay_sinks::webhook::rotation_grace(&Value::Object(next.config.clone())).map_err(config_error)?;
    let grace = jiff::SignedDuration::from_secs(i64::try_from(grace.as_secs()).unwrap_or(i64::MAX));
    let patched_secrets = secrets_patch(&body)?;
    let changed_secrets: Vec<String> = patched_secrets.iter().map(|(name, _)| name.clone()).collect();
    for (name, value) in patched_secrets {
        let old = secrets.get(&name).cloned();
        match value {
            Some(v) => {
                secrets.insert(name.clone(), v.clone());
            }
            None => {
                secrets.remove(&name);
            }
        }
        // Rotation: the old signing secret keeps signing beside the new one for the grace
        // period, so receivers can switch without rejecting deliveries in between.
        if kind_spec.rotating_secrets.contains(&name.as_str()) {
            if let Some(old) = old.filter(|o| secrets.get(&name) != Some(o)) {
                let until = jiff::Timestamp::now()
                    .checked_add(grace)
                    .unwrap_or(jiff::Timestamp::MAX);
                secrets.insert(format!("previous_{name}"), old);
                secrets.insert(format!("previous_{name}_expires_at"), time::format_timestamp(until));
            }
        }
    }
    let generated = auditrelay_sinks::validate_config(
        &next.kind,
        &Value::Object(next.config.clone()),
        &mut secrets,
        state.engine.env(),
    )
    .await
    .map_err(config_error)?;
    let updated = SinkRow {
        spec: serde_json::to_string(&next).map_err(|e| EngineError::Spec(e.to_string()))?,
        sealed_secrets: state
            .engine
            .master_key()
            .seal(&row.id, &secrets)
            .map_err(EngineError::from)?,
        ..row
    };
    let Some(saved) = state.store.update_sink(updated).await? else {
        return Err(not_found_sink(&id));
    };
    state.engine.reload(&saved.id);
    let changed: Vec<&String> = body.keys().filter(|k| k.as_str() != "secrets").collect();
    audit::sink_event(
        &state,
        &principal,
        "sink.updated",
        "update",
        &saved,
        json!({ "changed": changed, "secrets_changed": changed_secrets, "revision": saved.revision }),
    )
    .await?;
    Ok(Json(sink_view(&saved, &next, &secrets).with_generated(generated)))
}

/// Delete a sink: it stops, and its cursors, dead letters and delivery log go with it.
#[utoipa::path(
    delete,
    path = "/v1/sinks/{id}",
    operation_id = "deleteSink",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`).")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn delete_sink(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let row = visible_sink(&state, &principal, &id).await?;
    if !state.store.delete_sink(&row.id).await? {
        return Err(not_found_sink(&id));
    }
    state.engine.deleted(&row.id);
    tracing::info!(sink = %row.id, "sink deleted");
    audit::sink_event(&state, &principal, "sink.deleted", "delete", &row, json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deliver one synthetic `system.test` event now and answer what the receiver did, without
/// touching the cursor. A receiver's refusal is an answer (`delivered: false`), not an error.
#[utoipa::path(
    post,
    path = "/v1/sinks/{id}/test",
    operation_id = "testSink",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`).")),
    responses(
        (status = 200, description = "What the receiver answered.", body = AttemptResult),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 409, response = doc::Conflict),
        (status = 429, response = doc::TooManyRequests),
        (status = 500, response = doc::Internal),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn test_sink(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<AttemptResult>> {
    let row = visible_sink(&state, &principal, &id).await?;
    Ok(Json(state.engine.test_delivery(&row).await?))
}

/// The sink's state, lag, failures, counters and delivery latency.
#[utoipa::path(
    get,
    path = "/v1/sinks/{id}/health",
    operation_id = "getSinkHealth",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`).")),
    responses(
        (status = 200, description = "Health.", body = SinkHealth),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 500, response = doc::Internal),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn sink_health(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<SinkHealth>> {
    let row = visible_sink(&state, &principal, &id).await?;
    Ok(Json(state.engine.health(&row).await?))
}

fn who(principal: &Principal) -> String {
    match principal {
        Principal::Operator => "the operator".into(),
        Principal::Tenant { key_id, .. } => format!("key {key_id}"),
    }
}

/// Pause delivery: the cursor stays where it is; events keep arriving in the log.
#[utoipa::path(
    post,
    path = "/v1/sinks/{id}/pause",
    operation_id = "pauseSink",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`).")),
    responses(
        (status = 200, description = "The paused sink.", body = SinkView),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 500, response = doc::Internal),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn pause_sink(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<SinkView>> {
    let row = visible_sink(&state, &principal, &id).await?;
    let reason = format!("paused by {}", who(&principal));
    let row = state
        .store
        .set_sink_paused(&row.id, true, Some(&reason))
        .await?
        .ok_or_else(|| not_found_sink(&id))?;
    state.engine.reload(&row.id);
    audit::sink_event(&state, &principal, "sink.paused", "pause", &row, json!({})).await?;
    respond(&state, &row)
}

/// Resume delivery from the committed cursor (also after a pause on exhausted retries).
#[utoipa::path(
    post,
    path = "/v1/sinks/{id}/resume",
    operation_id = "resumeSink",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`).")),
    responses(
        (status = 200, description = "The resumed sink.", body = SinkView),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 500, response = doc::Internal),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn resume_sink(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<SinkView>> {
    let row = visible_sink(&state, &principal, &id).await?;
    let row = state
        .store
        .set_sink_paused(&row.id, false, None)
        .await?
        .ok_or_else(|| not_found_sink(&id))?;
    state.engine.resumed(&row.id);
    audit::sink_event(&state, &principal, "sink.resumed", "resume", &row, json!({})).await?;
    respond(&state, &row)
}

/// A position in a replay body: an offset (integer ≥ 1) or an RFC 3339 time.
enum Position {
    Offset(u64),
    Time(String),
}

fn position(body: &Map<String, Value>, field: &str) -> ApiResult<Option<Position>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64().or_else(|| auditrelay_core::integral(n.as_f64())) {
            Some(o) if o >= 1 => Ok(Some(Position::Offset(o))),
            _ => Err(ApiError::invalid_field(
                field,
                format!("`{field}` offset must be an integer ≥ 1"),
            )),
        },
        Some(Value::String(s)) if time::parse_rfc3339(s).is_some() => Ok(Some(Position::Time(s.clone()))),
        Some(Value::String(s)) if s.parse::<u64>().is_ok_and(|o| o >= 1) => {
            Ok(Some(Position::Offset(s.parse().unwrap_or(1))))
        }
        Some(_) => Err(ApiError::invalid_field(
            field,
            format!("`{field}` must be an offset (integer ≥ 1) or an RFC 3339 time"),
        )),
    }
}

/// A replay range: `from` and `to` are offsets (integers ≥ 1, or their decimal strings) or
/// RFC 3339 times (events received from `from`, before `to`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"from": 1, "to": 500}))]
#[allow(dead_code)] // Only its schema is used; `replay_sink` reads the body.
pub struct ReplayRequest {
    from: ReplayPosition,
    /// Default: the log head. An offset past the head means the head.
    to: Option<ReplayPosition>,
    /// The tenant to replay: required for an operator sink over several tenants; a tenant's
    /// sink replays its own tenant.
    tenant: Option<String>,
}

doc::json_schema! {
    /// An offset, as a number or its decimal string, or an RFC 3339 time.
    pub struct ReplayPosition = {
        "description": "An offset (an integer ≥ 1, or its decimal string) or an RFC 3339 time.",
        "oneOf": [
            { "type": "integer", "minimum": 1, "maximum": 18446744073709551615u64 },
            { "type": "string", "pattern": "^[1-9][0-9]{0,18}$" },
            { "type": "string", "format": "date-time" }
        ]
    }
}

/// Re-deliver a range of the log to this sink only, beside its normal delivery (its cursor
/// does not move). Answers at once; follow the replay with `GET …/replays/{replay}`.
#[utoipa::path(
    post,
    path = "/v1/sinks/{id}/replay",
    operation_id = "startReplay",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`).")),
    request_body = ReplayRequest,
    responses(
        (status = 202, description = "Started.", body = ReplayInfo),
        (status = 400, description = "`invalid_json`, or `invalid_request` naming the field (`from`, `to`, `tenant`).", body = ErrorBody),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 408, response = doc::RequestTimeout),
        (status = 409, response = doc::Conflict),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 415, response = doc::UnsupportedMediaType),
        (status = 429, response = doc::TooManyRequests),
        (status = 500, response = doc::Internal),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn replay_sink(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    body: Result<ApiJson<Value>, ApiError>,
) -> ApiResult<(StatusCode, Json<ReplayInfo>)> {
    let row = visible_sink(&state, &principal, &id).await?;
    let ApiJson(body) = body?;
    let Value::Object(body) = body else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    if let Some(unknown) = body.keys().find(|k| !["from", "to", "tenant"].contains(&k.as_str())) {
        return Err(ApiError::invalid_field(
            unknown,
            format!("unknown field `{unknown}` (known: from, to, tenant)"),
        ));
    }
    let spec = parse_spec(&row)?;
    let requested = match body.get("tenant") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => return Err(ApiError::invalid_field("tenant", "tenant must be a string")),
    };
    let tenant = match (&row.owner_tenant, &spec.tenants, requested) {
        (Some(owner), _, None) => owner.clone(),
        (Some(owner), _, Some(t)) if &t == owner => t,
        (Some(_), _, Some(t)) => return Err(ApiError::not_found(format!("tenant `{t}` not found"))),
        (None, Some(list), None) if list.len() == 1 => list[0].clone(),
        (None, Some(list), Some(t)) if !list.contains(&t) => {
            return Err(ApiError::invalid_field(
                "tenant",
                format!("this sink does not read tenant `{t}`"),
            ))
        }
        (None, _, Some(t)) => t,
        (None, _, None) => {
            return Err(ApiError::invalid_field(
                "tenant",
                "this sink reads several tenants: name the one to replay (`tenant`)",
            ))
        }
    };
    state.tenants.ensure(state.store.as_ref(), &tenant).await?;
    let head = state.store.head(&tenant).await?;
    let from = match position(&body, "from")? {
        None => {
            return Err(ApiError::invalid_field(
                "from",
                "`from` is required (an offset or a time)",
            ))
        }
        Some(Position::Offset(o)) => o,
        Some(Position::Time(t)) => state.store.offset_at_time(&tenant, &t).await? + 1,
    };
    let to = match position(&body, "to")? {
        None => head,
        Some(Position::Offset(o)) => o.min(head),
        Some(Position::Time(t)) => state.store.offset_at_time(&tenant, &t).await?,
    };
    if from > to {
        return Err(ApiError::invalid_field(
            "from",
            format!("the range is empty: from offset {from} to offset {to} (the log head is {head})"),
        )
        .with_detail(json!({ "field": "from", "from_offset": from, "to_offset": to, "head": head })));
    }
    let info = state.engine.start_replay(&row, &tenant, from, to)?;
    audit::sink_event(
        &state,
        &principal,
        "sink.replayed",
        "replay",
        &row,
        json!({ "replay_id": info.id, "replay_tenant": tenant, "from_offset": from, "to_offset": to }),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(info)))
}

/// A replay's progress (kept in memory by the node that runs it).
#[utoipa::path(
    get,
    path = "/v1/sinks/{id}/replays/{replay}",
    operation_id = "getReplay",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`)."), ("replay" = String, Path, description = "The replay id (`rpl_…`).")),
    responses(
        (status = 200, description = "Progress.", body = ReplayInfo),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn get_replay(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, replay)): Path<(String, String)>,
) -> ApiResult<Json<ReplayInfo>> {
    let row = visible_sink(&state, &principal, &id).await?;
    state
        .engine
        .replay(&row.id, &replay)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("replay `{replay}` not found")))
}

/// One attempt at a dead-lettered batch, as the engine recorded it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct DeadLetterAttempt {
    #[schema(minimum = 1)]
    attempt: u32,
    #[schema(format = DateTime)]
    at: String,
    #[schema(value_type = auditrelay_engine::AttemptOutcome)]
    outcome: String,
    status: Option<u16>,
    error: Option<String>,
    #[schema(minimum = 0)]
    latency_ms: f64,
}

/// A batch that exhausted its retries, with every attempt.
#[derive(Serialize, ToSchema)]
#[schema(as = DeadLetter)]
pub struct DeadLetterView {
    #[schema(pattern = "^dl_[0-9a-f]{32}$")]
    id: String,
    #[schema(value_type = SinkId)]
    sink_id: String,
    #[schema(value_type = TenantId)]
    tenant: String,
    first_offset: u64,
    last_offset: u64,
    /// Events of the range that matched the sink's type filter, i.e. what was sent.
    event_count: u64,
    reason: String,
    attempts: Vec<DeadLetterAttempt>,
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<&DeadLetter> for DeadLetterView {
    fn from(dl: &DeadLetter) -> Self {
        DeadLetterView {
            id: dl.id.clone(),
            sink_id: dl.sink_id.clone(),
            tenant: dl.tenant_id.clone(),
            first_offset: dl.first_offset,
            last_offset: dl.last_offset,
            event_count: dl.event_count,
            reason: dl.reason.clone(),
            attempts: serde_json::from_str(&dl.attempts).unwrap_or_else(|e| {
                // The batch itself is what matters; an unreadable history is logged, not fatal.
                tracing::warn!(dead_letter = %dl.id, error = %e, "unreadable attempt history");
                Vec::new()
            }),
            created_at: dl.created_at.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeadLetterPage {
    pub(crate) items: Vec<DeadLetterView>,
    /// The cursor for the next page; `null` when this page was not full.
    next_cursor: Option<String>,
}

/// A dead letter retried with success (it is deleted).
#[derive(Serialize, ToSchema)]
pub struct DeadLetterRetried {
    dead_letter_id: String,
    deleted: bool,
    pub(crate) attempt: AttemptResult,
}

/// The sink's dead letters, oldest first.
#[utoipa::path(
    get,
    path = "/v1/sinks/{id}/dead-letters",
    operation_id = "listDeadLetters",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`)."), Page),
    responses(
        (status = 200, description = "A page of dead letters.", body = DeadLetterPage),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn list_dead_letters(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    page: Result<ApiQuery<Page>, ApiError>,
) -> ApiResult<Json<DeadLetterPage>> {
    let row = visible_sink(&state, &principal, &id).await?;
    let ApiQuery(page) = page?;
    let limit = page.limit()?;
    let items = state
        .store
        .list_dead_letters(&row.id, page.cursor.as_deref(), limit)
        .await?;
    let next = next_cursor(&items, limit, |d| d.id.clone());
    Ok(Json(DeadLetterPage {
        items: items.iter().map(DeadLetterView::from).collect(),
        next_cursor: next,
    }))
}

async fn visible_dead_letter(state: &AppState, row: &SinkRow, dl: &str) -> ApiResult<DeadLetter> {
    state
        .store
        .dead_letter(&row.id, dl)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("dead letter `{dl}` not found")))
}

/// One dead letter.
#[utoipa::path(
    get,
    path = "/v1/sinks/{id}/dead-letters/{dl}",
    operation_id = "getDeadLetter",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`)."), ("dl" = String, Path, description = "The dead letter id (`dl_…`).")),
    responses(
        (status = 200, description = "The dead letter.", body = DeadLetterView),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn get_dead_letter(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, dl)): Path<(String, String)>,
) -> ApiResult<Json<DeadLetterView>> {
    let row = visible_sink(&state, &principal, &id).await?;
    Ok(Json(DeadLetterView::from(
        &visible_dead_letter(&state, &row, &dl).await?,
    )))
}

/// Deliver a dead letter's batch again now. Delivered: the dead letter is deleted. Refused:
/// `502` with the attempt, and the dead letter is kept.
#[utoipa::path(
    post,
    path = "/v1/sinks/{id}/dead-letters/{dl}/retry",
    operation_id = "retryDeadLetter",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`)."), ("dl" = String, Path, description = "The dead letter id (`dl_…`).")),
    responses(
        (status = 200, description = "Delivered; the dead letter is deleted.", body = DeadLetterRetried),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 409, response = doc::Conflict),
        (status = 410, description = "`gone`: the batch's events were purged by retention.", body = ErrorBody),
        (status = 429, response = doc::TooManyRequests),
        (status = 500, response = doc::Internal),
        (status = 502, description = "`delivery_failed`: the receiver did not accept it; `detail.attempt` is the attempt. The dead letter is kept.", body = ErrorBody),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn retry_dead_letter(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, dl)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<DeadLetterRetried>)> {
    let row = visible_sink(&state, &principal, &id).await?;
    let dead_letter = visible_dead_letter(&state, &row, &dl).await?;
    let result = state.engine.retry_dead_letter(&row, &dead_letter).await?;
    audit::sink_event_outcome(
        &state,
        &principal,
        "dead_letter.retried",
        "retry",
        result.delivered,
        &row,
        json!({ "dead_letter_id": dl, "delivered": result.delivered }),
    )
    .await?;
    if result.delivered {
        return Ok((
            StatusCode::OK,
            Json(DeadLetterRetried {
                dead_letter_id: dl,
                deleted: true,
                attempt: result,
            }),
        ));
    }
    Err(ApiError::new(
        StatusCode::BAD_GATEWAY,
        "delivery_failed",
        format!(
            "the receiver did not accept the retry: {}; the dead letter is kept",
            result.error.clone().unwrap_or_else(|| result.outcome.clone())
        ),
    )
    .with_detail(json!({ "dead_letter_id": dl, "attempt": result })))
}

/// Delete a dead letter (its events stay in the log).
#[utoipa::path(
    delete,
    path = "/v1/sinks/{id}/dead-letters/{dl}",
    operation_id = "deleteDeadLetter",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`)."), ("dl" = String, Path, description = "The dead letter id (`dl_…`).")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn delete_dead_letter(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, dl)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let row = visible_sink(&state, &principal, &id).await?;
    if state.store.delete_dead_letter(&row.id, &dl).await? {
        audit::sink_event(
            &state,
            &principal,
            "dead_letter.deleted",
            "delete",
            &row,
            json!({ "dead_letter_id": dl }),
        )
        .await?;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("dead letter `{dl}` not found")))
    }
}

/// One attempt in the delivery log.
#[derive(Serialize, ToSchema)]
#[schema(as = DeliveryAttempt)]
pub struct AttemptView {
    /// Its position in the sink's delivery log (the cursor pages by it).
    #[schema(minimum = 1)]
    seq: u64,
    #[schema(value_type = TenantId)]
    tenant: String,
    first_offset: u64,
    last_offset: u64,
    event_count: u64,
    #[schema(value_type = AttemptPurpose)]
    purpose: String,
    #[schema(minimum = 1)]
    attempt: u32,
    #[schema(value_type = auditrelay_engine::AttemptOutcome)]
    outcome: String,
    status: Option<u16>,
    #[schema(minimum = 0)]
    latency_ms: f64,
    error: Option<String>,
    #[schema(format = DateTime)]
    at: String,
}

/// What an attempt was for.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // Only its schema is used.
pub enum AttemptPurpose {
    Delivery,
    Replay,
    DeadLetterRetry,
    Test,
}

impl AttemptView {
    fn new(seq: u64, a: &DeliveryAttempt) -> Self {
        AttemptView {
            seq,
            tenant: a.tenant_id.clone(),
            first_offset: a.first_offset,
            last_offset: a.last_offset,
            event_count: a.event_count,
            purpose: a.purpose.clone(),
            attempt: a.attempt,
            outcome: a.outcome.clone(),
            status: a.status,
            latency_ms: a.latency_ms,
            error: a.error.clone(),
            at: a.at.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = DeliveryAttemptPage)]
pub struct AttemptPage {
    items: Vec<AttemptView>,
    /// The cursor for the next (older) page; `null` when this page was not full.
    next_cursor: Option<String>,
}

/// The delivery log, newest first; `cursor` pages backwards.
#[utoipa::path(
    get,
    path = "/v1/sinks/{id}/deliveries",
    operation_id = "listDeliveries",
    tag = "sinks",
    params(
        ("id" = String, Path, description = "The sink id (`snk_…`)."),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "Page size: 1–1000, default 100."),
        ("cursor" = Option<String>, Query, pattern = "^[0-9]{1,19}$", description = "The previous page's `next_cursor`: the page then holds the attempts older than the last one returned. Absent: the newest attempts."),
    ),
    responses(
        (status = 200, description = "A page of attempts, newest first.", body = AttemptPage),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    page: Result<ApiQuery<Page>, ApiError>,
) -> ApiResult<Json<AttemptPage>> {
    let row = visible_sink(&state, &principal, &id).await?;
    let ApiQuery(page) = page?;
    let limit = page.limit()?;
    let before = match page.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            c.parse::<u64>()
                .map_err(|_| ApiError::invalid_param("cursor", "`cursor` must come from a previous answer"))?,
        ),
    };
    let rows = state.store.list_attempts(&row.id, before, limit).await?;
    let next = next_cursor(&rows, limit, |(s, _)| s.to_string());
    Ok(Json(AttemptPage {
        items: rows.iter().map(|(s, a)| AttemptView::new(*s, a)).collect(),
        next_cursor: next,
    }))
}
