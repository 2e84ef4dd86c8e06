//! API errors: one JSON shape for all of them, `{"error": {"code", "message", "detail"}}`.

use auditrelay_core::IngestError;
use auditrelay_store::StoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub detail: Value,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            detail: Value::Object(Default::default()),
            retry_after: None,
        }
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 400 for a management body whose field breaks a rule; `detail.field` names it.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::bad_request(message).with_detail(json!({ "field": field }))
    }

    /// The field `detail.field` names, if any.
    pub fn field(&self) -> Option<&str> {
        self.detail.get("field").and_then(Value::as_str)
    }

    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_parameter", message).with_detail(json!({ "parameter": param }))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
        e.retry_after = Some(1);
        e
    }
}

/// The body of every error answer; the OpenAPI document's `Error` schema is derived from it.
#[derive(Serialize, ToSchema)]
#[schema(as = Error, example = json!({"error": {"code": "invalid_event", "message": "event 3: actor.ip_address: not an IP address", "detail": {"index": 3, "field": "actor.ip_address"}}}))]
pub struct ErrorBody {
    pub error: ErrorFields,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorFields {
    /// Stable and machine-readable.
    #[schema(value_type = ErrorCode)]
    pub code: &'static str,
    /// For humans.
    pub message: String,
    /// Locates the problem (`index`, `field`, `parameter`, `limit`, …); `{}` when there is
    /// nothing to add.
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// Every `code` an error answer can carry. Documentation of the `&'static str` codes used with
/// [`ApiError::new`]: the schema fuzzer (tests/schema_fuzz.rs) fails on a code missing here.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Only its schema is used.
pub enum ErrorCode {
    InvalidRequest,
    InvalidParameter,
    InvalidJson,
    InvalidEvent,
    InvalidUtf8,
    EmptyRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    EventTooLarge,
    TooManyEvents,
    RequestTooLarge,
    UnsupportedMediaType,
    SinkMisconfigured,
    Gone,
    Internal,
    DeliveryFailed,
    Unavailable,
    RequestTimeout,
    RateLimited,
    TooManyStreams,
    AuditUnavailable,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorFields {
                code: self.code,
                message: self.message,
                detail: self.detail,
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::PAYLOAD_TOO_LARGE || self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of an oversized or too slow body is unread: do not reuse the connection.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        let status = if e.is_too_large() {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        let detail = match &e {
            IngestError::Empty => json!({}),
            IngestError::InvalidUtf8 { byte_offset } => json!({ "byte_offset": byte_offset }),
            IngestError::MalformedJson {
                index, line, column, ..
            } => {
                json!({ "index": index, "line": line, "column": column })
            }
            IngestError::InvalidEvent { index, field, .. } => json!({ "index": index, "field": field }),
            IngestError::EventTooLarge { index, size, limit } => {
                json!({ "index": index, "size": size, "limit": limit })
            }
            IngestError::TooManyEvents { count, limit } => json!({ "count": count, "limit": limit }),
            IngestError::RequestTooLarge { size, limit } => json!({ "size": size, "limit": limit }),
        };
        ApiError::new(status, e.code(), e.to_string()).with_detail(detail)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(msg) => ApiError::new(StatusCode::CONFLICT, "conflict", msg),
            StoreError::UnknownTenant(t) => ApiError::not_found(format!("tenant `{t}` not found")),
            StoreError::ShuttingDown => ApiError::unavailable("the server is shutting down"),
            other => {
                // Logged here with context; the client gets no internals.
                tracing::error!(error = %other, "store error");
                ApiError::unavailable("the event store is unavailable; nothing from this request was stored")
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
