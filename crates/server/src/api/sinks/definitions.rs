//! Sink definitions: create, list, read, change, delete.

use auditrelay_core::ids::SinkId;
use auditrelay_core::time;
use auditrelay_sinks::{kind_spec, ConfigError, Secrets};
use auditrelay_store::SinkRow;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::body::{ensure_hash_key, parse_body, CreateSink, PatchSink};
use super::view::{SinkPage, SinkView};
use super::{config_error, next_cursor, not_found_sink, open_secrets, parse_spec, respond, sink_view, visible_sink};
use crate::api::doc;
use crate::api::extract::{ApiJson, ApiQuery, Page};
use crate::audit;
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use auditrelay_engine::EngineError;

/// Create a sink. A tenant key with `manage` creates a sink of its tenant; the operator names
/// the tenant, or omits it for a sink over all tenants (or those in `tenants`).
#[utoipa::path(
    post,
    path = "/v1/sinks",
    operation_id = "createSink",
    tag = "sinks",
    request_body = CreateSink,
    responses(
        (status = 201, description = "Created: the sink with `secrets_set` in place of the secrets, and `generated_secrets` when the server generated one (shown this once).", body = SinkView),
        (status = 400, description = "`invalid_json`, or `invalid_request` with `detail.field` naming the field at fault (an unknown field, a bad value, a `config` key the kind refuses, a receiver address the SSRF guard refuses).", body = ErrorBody),
        doc::BodyRequestErrors,
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
    let request: CreateSink = parse_body(&body)?;
    let owner = principal.tenant_for(request.tenant.as_deref())?;
    if let Some(owner) = &owner {
        state.tenants.ensure(state.store.as_ref(), owner).await?;
        if request.tenants.is_some() {
            return Err(ApiError::invalid_field(
                "tenants",
                "`tenants` is for operator sinks over several tenants; a tenant's sink reads its own tenant",
            ));
        }
    }
    let kind = request.kind.clone();
    // An unknown or not-yet-built kind is named precisely (registry wording).
    let Some(kind_spec) = kind_spec(&kind) else {
        let e = auditrelay_sinks::validate_config(&kind, &Value::Null, &mut Secrets::new(), state.engine.env())
            .await
            .err()
            .unwrap_or_else(|| ConfigError::new("kind", "unknown sink kind"));
        return Err(config_error(e));
    };
    let spec = request.spec(kind_spec.formats)?;
    if let Some(list) = &spec.tenants {
        for t in list {
            state.tenants.ensure(state.store.as_ref(), t).await?;
        }
    }
    let mut secrets: Secrets = request.secrets()?.into_iter().collect();
    let generated = auditrelay_sinks::validate_config(
        &kind,
        &Value::Object(spec.config.clone()),
        &mut secrets,
        state.engine.env(),
    )
    .await
    .map_err(config_error)?;
    let generated = with_hash_key(generated, &spec, &mut secrets);

    let id = SinkId::generate().to_string();
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
    state.engine.reload(&row.sink_id());
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
    request_body = PatchSink,
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
    let request: PatchSink = parse_body(&body)?;
    if request
        .tenant
        .as_ref()
        .is_some_and(|t| Some(t) != row.owner_tenant.as_ref())
    {
        return Err(ApiError::invalid_field("tenant", "a sink's tenant cannot change"));
    }
    if row.owner_tenant.is_some() && request.tenants.as_ref().is_some_and(Option::is_some) {
        return Err(ApiError::invalid_field(
            "tenants",
            "a tenant's sink reads its own tenant",
        ));
    }
    let spec = parse_spec(&row)?;
    let kind_spec = kind_spec(&spec.kind).ok_or_else(|| ApiError::invalid_field("kind", "kind not available"))?;
    let next = request.apply(&spec, kind_spec.formats)?;
    if let Some(list) = &next.tenants {
        for t in list {
            state.tenants.ensure(state.store.as_ref(), t).await?;
        }
    }
    let mut secrets = open_secrets(&state, &row)?;
    // Read as the webhook sink reads it (a whole number written `60.0` included), default one day.
    let grace = auditrelay_sinks::webhook::rotation_grace(&Value::Object(next.config.clone())).map_err(config_error)?;
    let grace = jiff::SignedDuration::from_secs(i64::try_from(grace.as_secs()).unwrap_or(i64::MAX));
    let patched_secrets = request.secrets()?;
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
    let generated = with_hash_key(generated, &next, &mut secrets);
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
    state.engine.reload(&saved.sink_id());
    let changed = PatchSink::changed_fields(&body);
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
    state.engine.deleted(&row.sink_id());
    tracing::info!(sink = %row.id, "sink deleted");
    audit::sink_event(&state, &principal, "sink.deleted", "delete", &row, json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The secrets the server generated for this answer, the stage's `hash_key` included.
fn with_hash_key(mut generated: Secrets, spec: &auditrelay_engine::spec::SinkSpec, secrets: &mut Secrets) -> Secrets {
    if let Some((name, key)) = ensure_hash_key(spec, secrets) {
        generated.insert(name, key);
    }
    generated
}
