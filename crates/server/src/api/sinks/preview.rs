//! `POST /v1/sinks/preview`: the exact records a sink definition would send for some events,
//! with which of them its `event_types` and `filter` let through. Nothing is stored or sent:
//! the console's "try it" panel calls this while a definition is being written.

use auditrelay_core::{parse_request, time, BodyFormat, StoredEvent};
use auditrelay_engine::stage::{Stage, Staged, HASH_KEY};
use auditrelay_format::{encode, Format, FormatOptions};
use auditrelay_sinks::kind_spec;
use auditrelay_store::ReadQuery;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::body::{parse_body, CreateSink};
use crate::api::doc;
use crate::api::extract::ApiJson;
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Events previewed when the request gives none: the tenant's latest.
pub const DEFAULT_PREVIEW_EVENTS: usize = 10;
/// At most this many events per preview.
pub const MAX_PREVIEW_EVENTS: usize = 100;

/// A sink definition and the events to try it on.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"sink": {"name": "soc", "kind": "webhook", "tenant": "acme", "config": {"url": "https://siem.example.com/intake"},
    "filter": "event.severity >= 7", "transform": {"redact": ["actor.email"]}}}))]
pub struct PreviewRequest {
    /// A sink definition, as for create (nothing is saved; `config` is not checked against the
    /// network). A tenant key previews over its own tenant; the operator names `tenant` when
    /// `events` is left out.
    #[schema(value_type = CreateSink)]
    sink: Value,
    /// Events as `POST /v1/events` takes them; left out: the tenant's last ten stored events.
    #[schema(value_type = Option<Vec<crate::api::event_doc::Event>>, min_items = 1, max_items = 100)]
    events: Option<Vec<Value>>,
}

/// What the sink would do with one event.
#[derive(Serialize, ToSchema)]
pub struct PreviewResult {
    /// The stored event's offset; `null` for an event given in the request.
    offset: Option<u64>,
    /// Whether `event_types` and `filter` let it through.
    matched: bool,
    /// The record the sink's format renders for it (after the transform), as text; `null`
    /// when it is not sent.
    record: Option<String>,
    /// Why the filter could not be evaluated on this event (it then counts as not matched).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    filter_error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PreviewAnswer {
    results: Vec<PreviewResult>,
}

/// Preview a sink definition: what it would send for the given events (or the tenant's last
/// ten), with which matched. Nothing is stored or sent.
#[utoipa::path(
    post,
    path = "/v1/sinks/preview",
    operation_id = "previewSink",
    tag = "sinks",
    request_body = PreviewRequest,
    responses(
        (status = 200, description = "One result per event, in order.", body = PreviewAnswer),
        (status = 400, description = "`invalid_json`, `invalid_event`, or `invalid_request` naming the field (`sink.filter` with `line` and `column`, `sink.transform.<op>`, `events`).", body = ErrorBody),
        doc::BodyRequestErrors,
        (status = 500, response = doc::Internal),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn preview_sink(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<ApiJson<Value>, ApiError>,
) -> ApiResult<Json<PreviewAnswer>> {
    principal.require(Scope::Manage)?;
    let ApiJson(body) = body?;
    let request: PreviewRequest = parse_body(&body)?;
    let sink: CreateSink = parse_body(&request.sink).map_err(|e| under_sink(e, "sink"))?;
    let tenant = principal.tenant_for(sink.tenant.as_deref())?;
    let kind = kind_spec(&sink.kind)
        .ok_or_else(|| ApiError::invalid_field("sink.kind", format!("sink.kind: unknown sink kind `{}`", sink.kind)))?;
    let spec = sink.spec(kind.formats).map_err(|e| under_sink(e, "sink"))?;
    // The kind's own checks that need no network: the same `config` a create would refuse is
    // refused here, so a preview never shows records for a definition that cannot be saved.
    auditrelay_sinks::SinkConfig::parse(&sink.kind, &Value::Object(spec.config.clone())).map_err(|e| {
        ApiError::invalid_field(&format!("sink.{}", e.field), format!("sink.{}: {}", e.field, e.message))
    })?;
    let format = Format::parse(&spec.format)
        .ok_or_else(|| ApiError::invalid_field("sink.format", "sink.format: unknown format"))?;
    let options = FormatOptions::from_config(&spec.config)
        .map_err(|e| ApiError::invalid_field("sink.config", format!("sink.config: {e}")))?;
    // The key the sink would use if it were saved with one; otherwise a throwaway one (hashes
    // then differ from a saved sink's, which gets its own key).
    let hash_key = sink
        .secrets
        .as_ref()
        .and_then(|s| s.get(HASH_KEY).cloned().flatten())
        .unwrap_or_else(auditrelay_pipeline::generate_hash_key);
    let stage = Stage::from_spec(&spec, Some(&hash_key)).map_err(|e| {
        ApiError::invalid_field(&format!("sink.{}", e.field), format!("sink.{}: {}", e.field, e.message))
    })?;
    let events = match request.events {
        Some(events) => given_events(&state, events, tenant.as_deref())?,
        None => {
            let Some(tenant) = tenant else {
                return Err(ApiError::invalid_field(
                    "sink.tenant",
                    "sink.tenant: name the tenant whose latest events to preview, or give `events`",
                ));
            };
            latest_events(&state, &tenant).await?
        }
    };
    let types = spec.type_filter();
    let results = events
        .into_iter()
        .map(|(offset, event)| {
            if !types.matches(&event.event_type) {
                return PreviewResult {
                    offset,
                    matched: false,
                    record: None,
                    filter_error: None,
                };
            }
            let staged = match &stage {
                None => Staged::Send(event),
                Some(stage) => stage.apply(event),
            };
            match staged {
                Staged::Send(event) => PreviewResult {
                    offset,
                    matched: true,
                    record: Some(render(format, &event, &options)),
                    filter_error: None,
                },
                Staged::Skip => PreviewResult {
                    offset,
                    matched: false,
                    record: None,
                    filter_error: None,
                },
                Staged::FilterError(e) => PreviewResult {
                    offset,
                    matched: false,
                    record: None,
                    filter_error: Some(e),
                },
            }
        })
        .collect();
    Ok(Json(PreviewAnswer { results }))
}

/// A field error of the embedded definition, named from the request's root (`sink.filter`).
fn under_sink(mut e: ApiError, root: &str) -> ApiError {
    if let Some(field) = e.field().map(str::to_owned) {
        e.message = format!("{root}.{}", e.message);
        e.detail["field"] = json!(format!("{root}.{field}"));
    }
    e
}

fn render(format: Format, event: &StoredEvent, options: &FormatOptions) -> String {
    match encode(format, event, options) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("(this event cannot be rendered as {}: {e})", format.name()),
    }
}

/// Request events, validated as ingest validates them, as they would be stored (no offset).
fn given_events(
    state: &AppState,
    events: Vec<Value>,
    tenant: Option<&str>,
) -> ApiResult<Vec<(Option<u64>, StoredEvent)>> {
    if events.len() > MAX_PREVIEW_EVENTS {
        return Err(ApiError::invalid_field(
            "events",
            format!("events: at most {MAX_PREVIEW_EVENTS} events per preview"),
        ));
    }
    let bytes = serde_json::to_vec(&events).map_err(|e| ApiError::bad_request(format!("events: {e}")))?;
    let now = time::now_rfc3339();
    let parsed = parse_request(&bytes, BodyFormat::Json, &state.limits)?;
    Ok(parsed
        .into_iter()
        .map(|p| {
            let event = p.into_new_event(tenant.unwrap_or("preview").to_owned(), &now);
            (
                None,
                StoredEvent {
                    tenant_id: event.tenant_id,
                    offset: 0,
                    id: event.id,
                    event_type: event.event_type,
                    body: event.body,
                    chain: None,
                },
            )
        })
        .collect())
}

async fn latest_events(state: &AppState, tenant: &str) -> ApiResult<Vec<(Option<u64>, StoredEvent)>> {
    let head = state.store.head(tenant).await?;
    let events = state
        .store
        .read(ReadQuery {
            tenant: tenant.to_owned(),
            after: head.saturating_sub(DEFAULT_PREVIEW_EVENTS as u64),
            limit: DEFAULT_PREVIEW_EVENTS,
            filter: auditrelay_core::TypeFilter::all(),
        })
        .await?;
    Ok(events.into_iter().map(|e| (Some(e.offset), e)).collect())
}
