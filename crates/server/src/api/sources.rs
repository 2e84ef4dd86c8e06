//! Sources (api.md "Sources"): listeners and pollers that append events. Operator only: a source
//! opens a port or reads a database on the server's side, which no tenant may decide.
//!
//! Secrets are write-only as for sinks (answers list `secrets_set`); a change to a source
//! restarts it (the supervisor notices the new revision) without a server restart.

use std::collections::BTreeMap;

use auditrelay_core::ids::SourceId;
use auditrelay_core::time;
use auditrelay_sources::kinds::kind_spec;
use auditrelay_sources::{ConfigError, SourceConfig, SourceSpec};
use auditrelay_store::SourceRow;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::doc;
use super::extract::{ApiJson, ApiQuery, Page};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// `src_` and 32 hex digits.
#[derive(Serialize, ToSchema)]
#[schema(pattern = "^src_[0-9a-f]{32}$", example = "src_0190b5d27c1e7f3a9a513f0e9c2d4b11")]
pub struct SourceIdDoc(String);

/// `POST /v1/sources`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateSource, example = json!({"name": "fw-syslog", "kind": "syslog", "tenant": "acme", "config": {"listen": "0.0.0.0:6514", "tls": true, "cert_file": "/etc/auditrelay/syslog.crt", "key_file": "/etc/auditrelay/syslog.key"}}))]
pub struct CreateSource {
    /// 1–128 characters.
    #[schema(min_length = 1, max_length = 128)]
    name: String,
    /// A kind from `GET /v1/source-kinds`.
    #[schema(example = "syslog")]
    kind: String,
    /// The tenant its events go to (required by kinds that say `needs_tenant`).
    #[serde(default)]
    #[schema(value_type = Option<super::event_doc::TenantId>)]
    tenant: Option<String>,
    /// The kind's settings; see its `config_schema`.
    #[schema(value_type = Object)]
    config: Map<String, Value>,
    /// Write-only secrets of the kind.
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    /// Create it paused (default false).
    #[serde(default)]
    paused: bool,
}

/// `PATCH /v1/sources/{id}`: the fields given replace the stored ones (`config` as a whole); a
/// secret set to `null` is removed, an omitted one kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PatchSource)]
pub struct PatchSource {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<super::event_doc::TenantId>)]
    tenant: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    config: Option<Map<String, Value>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    secrets: Option<BTreeMap<String, Option<String>>>,
}

/// A source as the API shows it: its definition and the *names* of its secrets.
#[derive(Serialize, ToSchema)]
#[schema(as = SourceDefinition)]
pub struct SourceView {
    #[schema(value_type = SourceIdDoc)]
    id: String,
    name: String,
    kind: String,
    #[schema(value_type = Option<super::event_doc::TenantId>)]
    tenant: Option<String>,
    #[schema(value_type = Object)]
    config: Map<String, Value>,
    secrets_set: Vec<String>,
    paused: bool,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    #[schema(minimum = 1)]
    revision: u64,
}

#[derive(Serialize, ToSchema)]
pub struct SourcePage {
    items: Vec<SourceView>,
    /// Present when there may be more: pass it as `cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// What a source has done since this node started running it.
#[derive(Serialize, ToSchema)]
pub struct SourceHealthView {
    /// `starting`, `running`, `failed` (retrying; see `last_error`), `paused`, `standby` (not run
    /// by this node: another node holds its lease, or it has not started yet) or `stopped`.
    #[schema(example = "running")]
    state: String,
    /// Messages received.
    received: u64,
    /// Events appended (durable), malformed ones included.
    appended: u64,
    /// Messages kept as `<kind>.malformed` events.
    malformed: u64,
    last_error: Option<String>,
    /// Records waiting at the source, where the kind can know it; `null` for listeners.
    lag: Option<u64>,
}

doc::json_schema! {
    /// The answer of `GET /v1/source-kinds`.
    pub struct SourceKindList = {
        "type": "object",
        "required": ["kinds"],
        "properties": {
            "kinds": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["kind", "secrets", "needs_tenant", "config_schema"],
                    "properties": {
                        "kind": { "type": "string", "enum": ["syslog"] },
                        "secrets": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name", "required"],
                                "properties": { "name": { "type": "string" }, "required": { "type": "boolean" } }
                            }
                        },
                        "needs_tenant": { "type": "boolean", "description": "Whether a source of this kind names the tenant its events go to." },
                        "config_schema": { "type": "object", "description": "JSON Schema 2020-12 of the kind's `config`, self-contained." }
                    }
                }
            }
        }
    }
}

fn config_error(e: ConfigError) -> ApiError {
    ApiError::invalid_field(&e.field, format!("{}: {}", e.field, e.message))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("source `{id}` not found"))
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &Value) -> ApiResult<T> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    auditrelay_core::parse_at(body, "")
        .map_err(|e| ApiError::invalid_field(&e.field, format!("{}: {}", e.field, e.message)))
}

fn parse_spec(row: &SourceRow) -> ApiResult<SourceSpec> {
    serde_json::from_str(&row.spec).map_err(|e| {
        tracing::error!(source = %row.id, error = %e, "a stored source definition is unreadable");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the source could not be read",
        )
    })
}

fn open_secrets(state: &AppState, row: &SourceRow) -> ApiResult<BTreeMap<String, String>> {
    state
        .engine
        .master_key()
        .open(&row.id, &row.sealed_secrets)
        .map_err(|e| {
            tracing::error!(source = %row.id, error = %e, "a source's secrets cannot be opened");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the source's secrets could not be opened",
            )
        })
}

fn seal(state: &AppState, id: &str, secrets: &BTreeMap<String, String>) -> ApiResult<Vec<u8>> {
    state.engine.master_key().seal(id, secrets).map_err(|e| {
        tracing::error!(error = %e, "sealing a source's secrets");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the secrets could not be sealed",
        )
    })
}

fn view(row: &SourceRow, spec: SourceSpec, secrets: &BTreeMap<String, String>) -> SourceView {
    SourceView {
        id: row.id.clone(),
        name: spec.name,
        kind: spec.kind,
        tenant: row.tenant.clone(),
        config: spec.config,
        secrets_set: secrets.keys().cloned().collect(),
        paused: row.paused,
        created_at: row.created_at.clone(),
        updated_at: row.updated_at.clone(),
        revision: row.revision,
    }
}

fn respond(state: &AppState, row: &SourceRow) -> ApiResult<SourceView> {
    Ok(view(row, parse_spec(row)?, &open_secrets(state, row)?))
}

fn check_name(name: &str) -> ApiResult<()> {
    if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "name",
            "name: must be 1–128 characters without control characters",
        ));
    }
    Ok(())
}

fn check_secrets(kind: &str, secrets: &BTreeMap<String, String>) -> ApiResult<()> {
    let spec = kind_spec(kind).ok_or_else(|| ApiError::invalid_field("kind", "unknown source kind"))?;
    for name in secrets.keys() {
        if !spec.secrets.iter().any(|s| s.name == name) {
            return Err(ApiError::invalid_field(
                &format!("secrets.{name}"),
                format!("secrets.{name}: the `{kind}` kind takes no such secret"),
            ));
        }
    }
    for s in spec.secrets.iter().filter(|s| s.required) {
        if !secrets.contains_key(s.name) {
            return Err(ApiError::invalid_field(
                &format!("secrets.{}", s.name),
                format!("secrets.{}: is required", s.name),
            ));
        }
    }
    Ok(())
}

/// The tenant rules: kinds that append to one tenant need an existing one, never the system
/// tenant.
async fn check_tenant(state: &AppState, kind: &str, tenant: Option<&str>, config: &SourceConfig) -> ApiResult<()> {
    let needs = kind_spec(kind).is_some_and(|s| s.needs_tenant) || !config.tenant_from_records();
    match tenant {
        None if needs => Err(ApiError::invalid_field(
            "tenant",
            if config.tenant_from_records() || kind_spec(kind).is_some_and(|s| s.needs_tenant) {
                format!("tenant: is required for `{kind}` sources (their events go to one tenant)")
            } else {
                format!("tenant: is required for `{kind}` sources without `config.tenant_column`")
            },
        )),
        Some(t) if t == auditrelay_core::ids::SYSTEM_TENANT => Err(ApiError::invalid_field(
            "tenant",
            format!("tenant: the `{t}` tenant is written by auditrelay itself"),
        )),
        Some(t) => state.tenants.ensure(state.store.as_ref(), t).await,
        None => Ok(()),
    }
}

/// Checks that need the machine (files readable, the listen address free and not claimed by
/// another source). `previous`: the source being changed, whose own listener may hold the
/// address.
async fn preflight(
    state: &AppState,
    config: &SourceConfig,
    id: &str,
    previous: Option<&SourceConfig>,
    secrets: &BTreeMap<String, String>,
) -> ApiResult<()> {
    // Another stored source on the same address would fail to bind later: say so now.
    let mut after: Option<String> = None;
    loop {
        let page = state.store.list_sources(after.as_deref(), 500).await?;
        for row in &page {
            if row.id == id {
                continue;
            }
            let Ok(other) = serde_json::from_str::<SourceSpec>(&row.spec).map(|s| s.typed()) else {
                continue;
            };
            if let Ok(other) = other {
                if let Some(field) = config.conflicts_with(&other) {
                    return Err(ApiError::invalid_field(
                        &field,
                        format!("{field}: already used by source `{}`", row.id),
                    ));
                }
            }
        }
        if page.len() < 500 {
            break;
        }
        after = page.last().map(|r| r.id.clone());
    }
    config.preflight(previous, secrets).await.map_err(config_error)
}

/// List the source kinds this build can run.
#[utoipa::path(
    get,
    path = "/v1/source-kinds",
    operation_id = "listSourceKinds",
    tag = "sources",
    responses(
        (status = 200, description = "Every kind with its secrets and the JSON Schema of its `config`.", body = SourceKindList),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 429, response = doc::TooManyRequests),
    ),
    security(("bearerAuth" = ["operator"])),
)]
pub async fn list_source_kinds(principal: Principal) -> ApiResult<Json<Value>> {
    principal.require_operator()?;
    Ok(Json(json!({ "kinds": auditrelay_sources::source_kinds() })))
}

/// Create a source. It starts at once (unless `paused`); a syslog source is listening by the time
/// this answers, or its health says why not.
#[utoipa::path(
    post,
    path = "/v1/sources",
    operation_id = "createSource",
    tag = "sources",
    request_body = CreateSource,
    responses(
        (status = 201, description = "Created.", body = SourceView),
        (status = 400, description = "`invalid_json`, or `invalid_request` with `detail.field` naming the field at fault (an unknown field, a bad `config` value, a listen address that is taken or privileged).", body = ErrorBody),
        doc::BodyRequestErrors,
        (status = 500, response = doc::Internal),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["operator"])),
)]
pub async fn create_source(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<ApiJson<Value>, ApiError>,
) -> ApiResult<(StatusCode, Json<SourceView>)> {
    principal.require_operator()?;
    let ApiJson(body) = body?;
    let request: CreateSource = parse_body(&body)?;
    check_name(&request.name)?;
    let config = SourceConfig::parse(&request.kind, &Value::Object(request.config.clone())).map_err(config_error)?;
    check_tenant(&state, &request.kind, request.tenant.as_deref(), &config).await?;
    check_secrets(&request.kind, &request.secrets)?;
    let id = SourceId::generate().to_string();
    if !request.paused {
        preflight(&state, &config, &id, None, &request.secrets).await?;
    }
    let spec = SourceSpec {
        name: request.name,
        kind: request.kind,
        config: request.config,
    };
    let now = time::now_rfc3339();
    let row = SourceRow {
        sealed_secrets: seal(&state, &id, &request.secrets)?,
        id,
        tenant: request.tenant,
        spec: serde_json::to_string(&spec)
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "serializing the source"))?,
        paused: request.paused,
        created_at: now.clone(),
        updated_at: now,
        revision: 1,
    };
    state.store.create_source(row.clone()).await?;
    state.sources.reload();
    tracing::info!(source = %row.id, kind = %spec.kind, tenant = ?row.tenant, "source created");
    if !row.paused {
        // So that a sender connecting right after the answer finds the listener.
        state
            .sources
            .wait_for_state(&row.id, &["running", "failed"], std::time::Duration::from_secs(5))
            .await;
    }
    Ok((StatusCode::CREATED, Json(view(&row, spec, &request.secrets))))
}

/// List the sources.
#[utoipa::path(
    get,
    path = "/v1/sources",
    operation_id = "listSources",
    tag = "sources",
    params(Page),
    responses(
        (status = 200, description = "A page of sources, by id.", body = SourcePage),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 429, response = doc::TooManyRequests),
        (status = 500, response = doc::Internal),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["operator"])),
)]
pub async fn list_sources(
    State(state): State<AppState>,
    principal: Principal,
    page: Result<ApiQuery<Page>, ApiError>,
) -> ApiResult<Json<SourcePage>> {
    principal.require_operator()?;
    let ApiQuery(page) = page?;
    let limit = page.limit()?;
    let rows = state.store.list_sources(page.cursor.as_deref(), limit).await?;
    let next_cursor = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    let items = rows.iter().map(|r| respond(&state, r)).collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(SourcePage { items, next_cursor }))
}

async fn stored(state: &AppState, principal: &Principal, id: &str) -> ApiResult<SourceRow> {
    principal.require_operator()?;
    state.store.source(id).await?.ok_or_else(|| not_found(id))
}

/// Read a source.
#[utoipa::path(
    get,
    path = "/v1/sources/{id}",
    operation_id = "getSource",
    tag = "sources",
    params(("id" = String, Path, description = "The source id (`src_…`).")),
    responses(
        (status = 200, description = "The source.", body = SourceView),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 500, response = doc::Internal),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["operator"])),
)]
pub async fn get_source(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<SourceView>> {
    let row = stored(&state, &principal, &id).await?;
    Ok(Json(respond(&state, &row)?))
}

/// Change a source; it restarts with the new definition.
#[utoipa::path(
    patch,
    path = "/v1/sources/{id}",
    operation_id = "updateSource",
    tag = "sources",
    params(("id" = String, Path, description = "The source id (`src_…`).")),
    request_body = PatchSource,
    responses(
        (status = 200, description = "The changed source.", body = SourceView),
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
    security(("bearerAuth" = ["operator"])),
)]
pub async fn patch_source(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    body: Result<ApiJson<Value>, ApiError>,
) -> ApiResult<Json<SourceView>> {
    let row = stored(&state, &principal, &id).await?;
    let ApiJson(body) = body?;
    let request: PatchSource = parse_body(&body)?;
    let mut spec = parse_spec(&row)?;
    let previous = spec.typed().ok();
    if let Some(name) = request.name {
        check_name(&name)?;
        spec.name = name;
    }
    if let Some(config) = request.config {
        spec.config = config;
    }
    let config = SourceConfig::parse(&spec.kind, &Value::Object(spec.config.clone())).map_err(config_error)?;
    let tenant = request.tenant.or(row.tenant.clone());
    check_tenant(&state, &spec.kind, tenant.as_deref(), &config).await?;
    let mut secrets = open_secrets(&state, &row)?;
    for (name, value) in request.secrets.unwrap_or_default() {
        match value {
            Some(v) => secrets.insert(name, v),
            None => secrets.remove(&name),
        };
    }
    check_secrets(&spec.kind, &secrets)?;
    if !row.paused {
        preflight(&state, &config, &id, previous.as_ref(), &secrets).await?;
    }
    let next = SourceRow {
        tenant,
        spec: serde_json::to_string(&spec)
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "serializing the source"))?,
        sealed_secrets: seal(&state, &id, &secrets)?,
        ..row
    };
    let updated = state.store.update_source(next).await?.ok_or_else(|| not_found(&id))?;
    state.sources.reload();
    Ok(Json(view(&updated, spec, &secrets)))
}

/// Delete a source; it stops at once (in-flight appends finish).
#[utoipa::path(
    delete,
    path = "/v1/sources/{id}",
    operation_id = "deleteSource",
    tag = "sources",
    params(("id" = String, Path, description = "The source id (`src_…`).")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["operator"])),
)]
pub async fn delete_source(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    principal.require_operator()?;
    if !state.store.delete_source(&id).await? {
        return Err(not_found(&id));
    }
    state.sources.reload();
    // So that the address is free (and no event is appended by it) once this answers.
    state
        .sources
        .wait_until_stopped(&id, std::time::Duration::from_secs(10))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_paused(state: &AppState, principal: &Principal, id: &str, paused: bool) -> ApiResult<Json<SourceView>> {
    let row = stored(state, principal, id).await?;
    if !paused && row.paused {
        // Resuming binds again: check the address is still free.
        if let Ok(config) = parse_spec(&row)?.typed() {
            let secrets = open_secrets(state, &row)?;
            preflight(state, &config, id, None, &secrets).await?;
        }
    }
    let row = state
        .store
        .set_source_paused(id, paused)
        .await?
        .ok_or_else(|| not_found(id))?;
    state.sources.reload();
    if paused {
        state
            .sources
            .wait_until_stopped(id, std::time::Duration::from_secs(10))
            .await;
    } else {
        state
            .sources
            .wait_for_state(id, &["running", "failed"], std::time::Duration::from_secs(5))
            .await;
    }
    Ok(Json(respond(state, &row)?))
}

/// Pause a source: it stops listening (or polling) until resumed.
#[utoipa::path(
    post,
    path = "/v1/sources/{id}/pause",
    operation_id = "pauseSource",
    tag = "sources",
    params(("id" = String, Path, description = "The source id (`src_…`).")),
    responses(
        (status = 200, description = "The paused source.", body = SourceView),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 500, response = doc::Internal),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["operator"])),
)]
pub async fn pause_source(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<SourceView>> {
    set_paused(&state, &principal, &id, true).await
}

/// Resume a paused source.
#[utoipa::path(
    post,
    path = "/v1/sources/{id}/resume",
    operation_id = "resumeSource",
    tag = "sources",
    params(("id" = String, Path, description = "The source id (`src_…`).")),
    responses(
        (status = 200, description = "The resumed source.", body = SourceView),
        (status = 400, description = "`invalid_request`: its listen address is now taken (`detail.field`).", body = ErrorBody),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 500, response = doc::Internal),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["operator"])),
)]
pub async fn resume_source(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<SourceView>> {
    set_paused(&state, &principal, &id, false).await
}

/// A source's health as the node answering sees it.
#[utoipa::path(
    get,
    path = "/v1/sources/{id}/health",
    operation_id = "sourceHealth",
    tag = "sources",
    params(("id" = String, Path, description = "The source id (`src_…`).")),
    responses(
        (status = 200, description = "State and counters since this node started running it.", body = SourceHealthView),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["operator"])),
)]
pub async fn source_health(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<SourceHealthView>> {
    let row = stored(&state, &principal, &id).await?;
    let h = state.sources.health(&row);
    Ok(Json(SourceHealthView {
        state: h.state,
        received: h.received,
        appended: h.appended,
        malformed: h.malformed,
        last_error: h.last_error,
        lag: h.lag,
    }))
}
