//! `POST /otlp/v1/logs`: OTLP/HTTP logs in (api.md "OTLP logs in"). The append path is
//! `POST /v1/events`'s (same scope, tenant rules, limits, validation, dedup and durability);
//! only the body and the answer are OTLP's. The mapping itself is `auditrelay_otlp::to_event`.
//!
//! Unlike `POST /v1/events` a request is not all-or-nothing: OTLP has `partial_success`, so a
//! record that cannot become an event is counted there and the others are stored.

use auditrelay_otlp::wire::{self, Encoding, WireError};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::append::{
    append_events, refuse_far_oversized, refuse_system_tenant, requested_tenant, IngestRequestMetrics,
};
use super::doc;
use super::extract::{media_type, read_limited, unsupported_media_type, ApiQuery};
use crate::auth::{Principal, Scope};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OtlpQuery {
    /// Operator token: the tenant to append to (required). A tenant key may omit it or give its
    /// own tenant; another answers `404`, like a missing tenant.
    tenant: Option<String>,
}

/// An OTLP `ExportLogsServiceRequest` (opentelemetry-proto `collector/logs/v1`), in OTLP/JSON:
/// `resourceLogs[].scopeLogs[].logRecords[]`.
#[derive(ToSchema)]
#[schema(as = OtlpLogsRequest, value_type = Object, example = json!({"resourceLogs": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "billing"}}]},
    "scopeLogs": [{"scope": {"name": "audit"}, "logRecords": [{
        "timeUnixNano": "1780000000000000000", "severityNumber": 9, "eventName": "invoice.paid",
        "body": {"stringValue": "invoice paid"},
        "attributes": [{"key": "event.id", "value": {"stringValue": "inv-42-paid"}},
                       {"key": "enduser.id", "value": {"stringValue": "usr_1"}}]
    }]}]
}]}))]
#[allow(dead_code)] // Only its schema is used.
pub struct OtlpLogsRequest(serde_json::Value);

/// An OTLP `ExportLogsServiceResponse`: `{}` when every record was stored, else
/// `partialSuccess` with the count of records that could not become events.
#[derive(ToSchema)]
#[schema(as = OtlpLogsResponse, value_type = Object, example = json!({"partialSuccess": {"rejectedLogRecords": 1, "errorMessage": "log record 2: type must be 1–128 characters of [a-z0-9_.-], dotted like `category.verb`"}}))]
#[allow(dead_code)] // Only its schema is used.
pub struct OtlpLogsResponse(serde_json::Value);

/// An OTLP failure answer, a `google.rpc.Status` (`code` 3 = INVALID_ARGUMENT).
#[derive(ToSchema)]
#[schema(as = OtlpStatus, value_type = Object, example = json!({"code": 3, "message": "not a valid protobuf ExportLogsServiceRequest: …"}))]
#[allow(dead_code)] // Only its schema is used.
pub struct OtlpStatus(serde_json::Value);

/// What a request can end in besides success: our JSON error, or (for a body that is not an
/// OTLP request) an OTLP `Status` in the request's encoding.
enum Failure {
    Api(ApiError),
    Malformed(Encoding, String),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

impl Failure {
    fn status(&self) -> StatusCode {
        match self {
            Failure::Api(e) => e.status,
            Failure::Malformed(..) => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Api(e) => e.into_response(),
            Failure::Malformed(encoding, message) => otlp_answer(
                StatusCode::BAD_REQUEST,
                encoding,
                wire::encode_status(wire::CODE_INVALID_ARGUMENT, &message, encoding),
            ),
        }
    }
}

fn otlp_answer(status: StatusCode, encoding: Encoding, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(encoding.content_type()))],
        body,
    )
        .into_response()
}

/// Export log records. Each record becomes one event (the mapping is api.md's table); the
/// answer comes only after the stored ones are durable.
#[utoipa::path(
    post,
    path = "/otlp/v1/logs",
    operation_id = "exportOtlpLogs",
    tag = "events",
    params(OtlpQuery),
    request_body(
        description = "An OTLP/HTTP `ExportLogsServiceRequest`, protobuf (`application/x-protobuf`) or OTLP/JSON (`application/json`); `Content-Encoding: gzip` is accepted. An OpenTelemetry SDK's OTLP/HTTP log exporter pointed at `<base>/otlp` works unchanged.",
        content(
            (OtlpLogsRequest = "application/json"),
            (Vec<u8> = "application/x-protobuf"),
        )
    ),
    responses(
        (status = 200, description = "The accepted records are durable. Records that could not become events are counted in `partialSuccess` (do not retry them). In the request's encoding.",
            content((OtlpLogsResponse = "application/json"), (Vec<u8> = "application/x-protobuf"))),
        (status = 400, description = "The body is not an OTLP `ExportLogsServiceRequest`: an OTLP `Status`, in the request's encoding.",
            content((OtlpStatus = "application/json"), (Vec<u8> = "application/x-protobuf"))),
        doc::BodyRequestErrors,
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["ingest"])),
)]
pub async fn export_logs(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    query: Result<ApiQuery<OtlpQuery>, ApiError>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_metrics =
        IngestRequestMetrics::start(&principal, query.as_ref().ok().and_then(|q| q.0.tenant.as_deref()));
    let result = export(&state, principal, query, &headers, body).await;
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(f) => f.status(),
    };
    request_metrics.finish(status);
    match result {
        Ok((encoding, body)) => otlp_answer(StatusCode::OK, encoding, body),
        Err(f) => f.into_response(),
    }
}

fn encoding_of(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Encoding::from_media_type(&media_type(ct))
        .ok_or_else(|| unsupported_media_type(ct, "application/x-protobuf or application/json"))
}

/// Whether the body is gzip (`Content-Encoding: gzip`), plain (absent or `identity`), or in an
/// encoding we do not read (415).
fn gzipped(headers: &HeaderMap) -> Result<bool, ApiError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(false);
    };
    match value.to_str().map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        Ok("gzip") | Ok("x-gzip") => Ok(true),
        Ok("identity") | Ok("") => Ok(false),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Encoding must be gzip or identity",
        )),
    }
}

async fn export(
    state: &AppState,
    principal: Result<Principal, ApiError>,
    query: Result<ApiQuery<OtlpQuery>, ApiError>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Encoding, Vec<u8>), Failure> {
    let principal = principal?;
    principal.require(Scope::Ingest)?;
    let ApiQuery(query) = query?;
    let encoding = encoding_of(headers)?;
    let gzip = gzipped(headers)?;
    let tenant = requested_tenant(&principal, query.tenant.as_deref())?
        .ok_or_else(|| ApiError::invalid_param("tenant", "the operator token must name the tenant with ?tenant="))?;
    refuse_system_tenant(&tenant)?;
    let limit = state.limits.max_request_bytes;
    refuse_far_oversized(headers, limit)?;
    let raw = read_limited(body, limit).await?;
    let plain = if gzip {
        match wire::gunzip(&raw, limit) {
            Ok(bytes) => std::borrow::Cow::Owned(bytes),
            Err(WireError::TooLarge { .. }) => {
                return Err(
                    ApiError::from(auditrelay_core::IngestError::RequestTooLarge { size: limit + 1, limit })
                        .with_detail(serde_json::json!({ "limit": limit, "decompressed": true }))
                        .into(),
                )
            }
            Err(e) => return Err(Failure::Malformed(encoding, e.to_string())),
        }
    } else {
        std::borrow::Cow::Borrowed(&raw[..])
    };
    let request = wire::decode_request(&plain, encoding).map_err(|e| Failure::Malformed(encoding, e.to_string()))?;
    let count = auditrelay_otlp::to_event::count(&request.resource_logs);
    if count > state.limits.max_request_events {
        return Err(ApiError::from(auditrelay_core::IngestError::TooManyEvents {
            count,
            limit: state.limits.max_request_events,
        })
        .into());
    }

    // A missing tenant is a 404 even when no record would be stored.
    state.tenants.ensure(state.store.as_ref(), &tenant).await?;

    // Map every record; the ones that cannot become events go to partial_success.
    let mapped = auditrelay_otlp::to_event::map_request(&request.resource_logs, &state.limits);
    let mut rejected: i64 = 0;
    let mut first_rejection: Option<String> = None;
    let received_at = state.clock.now_rfc3339();
    let mut events = Vec::with_capacity(mapped.len());
    for (i, result) in mapped.into_iter().enumerate() {
        match result {
            Ok(parsed) => events.push(parsed.into_new_event(tenant.clone(), &received_at)),
            Err(reason) => {
                rejected += 1;
                first_rejection.get_or_insert_with(|| format!("log record {i}: {reason}"));
            }
        }
    }
    if !events.is_empty() {
        append_events(state.store.as_ref(), events)
            .await
            .map_err(ApiError::from)?;
    }
    let message = first_rejection.map(|first| {
        if rejected > 1 {
            format!("{rejected} log records could not become events; first: {first}")
        } else {
            first
        }
    });
    Ok((encoding, wire::encode_response(rejected, message, encoding)))
}
