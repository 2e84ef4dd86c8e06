//! Sink management (api.md "Sinks"): definitions with write-only secrets, and the operations
//! on a running sink — test delivery, health, pause/resume, replay, dead letters, delivery log.
//!
//! Visibility: a tenant key with `manage` sees only the sinks its tenant owns; anything else
//! answers 404 exactly like a missing sink, so ids cannot be probed.
//!
//! `POST /v1/graphql` calls these handlers too (`crate::graphql::schema`): what they decide and
//! answer is what GraphQL decides and answers, so a change here shows on both surfaces.

use auditrelay_core::ids::new_prefixed_id;
use auditrelay_core::time;
use auditrelay_engine::spec::{SinkSpec, BODY_FIELDS};
use auditrelay_engine::EngineError;
use auditrelay_sinks::{kind_spec, ConfigError, Secrets};
use auditrelay_store::{DeadLetter, DeliveryAttempt, SinkRow};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};

use super::extract::{ApiJson, ApiQuery, Page};
use crate::audit;
use crate::auth::{Principal, Scope};
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

/// What the API shows: the spec, ownership, state, and the *names* of the secrets.
fn sink_json(row: &SinkRow, spec: &SinkSpec, secrets: &Secrets) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(row.id));
    out.insert("tenant".into(), json!(row.owner_tenant));
    for (k, v) in spec.to_json() {
        if k == "tenants" && row.owner_tenant.is_some() {
            continue;
        }
        out.insert(k, v);
    }
    let set: Vec<&String> = secrets.keys().filter(|k| !k.starts_with("previous_")).collect();
    out.insert("secrets_set".into(), json!(set));
    let rotating: Map<String, Value> = secrets
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("previous_")?.strip_suffix("_expires_at")?;
            Some((name.to_owned(), json!({ "previous_valid_until": v })))
        })
        .collect();
    if !rotating.is_empty() {
        out.insert("secret_rotation".into(), Value::Object(rotating));
    }
    out.insert("paused".into(), json!(row.paused));
    out.insert("pause_reason".into(), json!(row.pause_reason));
    out.insert("created_at".into(), json!(row.created_at));
    out.insert("updated_at".into(), json!(row.updated_at));
    out.insert("revision".into(), json!(row.revision));
    Value::Object(out)
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

fn respond(state: &AppState, row: &SinkRow) -> ApiResult<Json<Value>> {
    Ok(Json(sink_json(row, &parse_spec(row)?, &open_secrets(state, row)?)))
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

pub async fn create_sink(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<ApiJson<Value>, ApiError>,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
    let mut out = sink_json(&row, &spec, &secrets);
    if !generated.is_empty() {
        out["generated_secrets"] = json!(generated);
    }
    Ok((StatusCode::CREATED, Json(out)))
}

pub async fn list_sinks(
    State(state): State<AppState>,
    principal: Principal,
    page: Result<ApiQuery<Page>, ApiError>,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({ "items": items, "next_cursor": next })))
}

pub async fn get_sink(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let row = visible_sink(&state, &principal, &id).await?;
    respond(&state, &row)
}

pub async fn patch_sink(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    body: Result<ApiJson<Value>, ApiError>,
) -> ApiResult<Json<Value>> {
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
    let mut out = sink_json(&saved, &next, &secrets);
    if !generated.is_empty() {
        out["generated_secrets"] = json!(generated);
    }
    Ok(Json(out))
}

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

pub async fn test_sink(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let row = visible_sink(&state, &principal, &id).await?;
    let result = state.engine.test_delivery(&row).await?;
    Ok(Json(json!(result)))
}

pub async fn sink_health(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let row = visible_sink(&state, &principal, &id).await?;
    Ok(Json(state.engine.health(&row).await?))
}

fn who(principal: &Principal) -> String {
    match principal {
        Principal::Operator => "the operator".into(),
        Principal::Tenant { key_id, .. } => format!("key {key_id}"),
    }
}

pub async fn pause_sink(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
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

pub async fn resume_sink(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
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
        Some(Value::Number(n)) => match n.as_u64() {
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

pub async fn replay_sink(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    body: Result<ApiJson<Value>, ApiError>,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
    Ok((StatusCode::ACCEPTED, Json(json!(info))))
}

pub async fn get_replay(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, replay)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let row = visible_sink(&state, &principal, &id).await?;
    state
        .engine
        .replay(&row.id, &replay)
        .map(|info| Json(json!(info)))
        .ok_or_else(|| ApiError::not_found(format!("replay `{replay}` not found")))
}

fn dead_letter_json(dl: &DeadLetter) -> Value {
    json!({
        "id": dl.id,
        "sink_id": dl.sink_id,
        "tenant": dl.tenant_id,
        "first_offset": dl.first_offset,
        "last_offset": dl.last_offset,
        "event_count": dl.event_count,
        "reason": dl.reason,
        "attempts": serde_json::from_str::<Value>(&dl.attempts).unwrap_or(Value::Array(Vec::new())),
        "created_at": dl.created_at,
    })
}

pub async fn list_dead_letters(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    page: Result<ApiQuery<Page>, ApiError>,
) -> ApiResult<Json<Value>> {
    let row = visible_sink(&state, &principal, &id).await?;
    let ApiQuery(page) = page?;
    let limit = page.limit()?;
    let items = state
        .store
        .list_dead_letters(&row.id, page.cursor.as_deref(), limit)
        .await?;
    let next = next_cursor(&items, limit, |d| d.id.clone());
    Ok(Json(json!({
        "items": items.iter().map(dead_letter_json).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

async fn visible_dead_letter(state: &AppState, row: &SinkRow, dl: &str) -> ApiResult<DeadLetter> {
    state
        .store
        .dead_letter(&row.id, dl)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("dead letter `{dl}` not found")))
}

pub async fn get_dead_letter(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, dl)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let row = visible_sink(&state, &principal, &id).await?;
    Ok(Json(dead_letter_json(&visible_dead_letter(&state, &row, &dl).await?)))
}

pub async fn retry_dead_letter(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, dl)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
            Json(json!({ "dead_letter_id": dl, "deleted": true, "attempt": result })),
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

fn attempt_json(seq: u64, a: &DeliveryAttempt) -> Value {
    json!({
        "seq": seq, "tenant": a.tenant_id, "first_offset": a.first_offset, "last_offset": a.last_offset,
        "event_count": a.event_count, "purpose": a.purpose, "attempt": a.attempt, "outcome": a.outcome,
        "status": a.status, "latency_ms": a.latency_ms, "error": a.error, "at": a.at,
    })
}

/// The delivery log, newest first; `cursor` pages backwards.
pub async fn list_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    page: Result<ApiQuery<Page>, ApiError>,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({
        "items": rows.iter().map(|(s, a)| attempt_json(*s, a)).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}
