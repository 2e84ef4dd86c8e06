//! Extractors that answer with our JSON errors instead of axum's plain-text rejections.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Query string parsed into `T`; a bad parameter answers 400 naming it.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(ApiError::bad_request(format!("bad query string: {}", e.body_text()))),
        }
    }
}

/// Reads a body up to `limit` bytes. Past the limit it keeps draining (up to a bound) so the
/// client reads our 413 instead of a reset connection.
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    const DRAIN_BOUND: usize = 64 * 1024 * 1024;
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    let mut total = 0usize;
    use futures::StreamExt;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(body_read_error)?;
        total += chunk.len();
        if total <= limit {
            buf.extend_from_slice(&chunk);
        } else if total > DRAIN_BOUND {
            break;
        }
    }
    if total > limit {
        return Err(auditrelay_core::IngestError::RequestTooLarge { size: total, limit }.into());
    }
    Ok(buf.freeze())
}

/// A body that failed to arrive: too slow (408, the connection is closed) or broken (400).
fn body_read_error(e: axum::Error) -> ApiError {
    let source = e.into_inner();
    // The timeout may arrive wrapped (axum wraps body errors): look along the source chain.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
    while let Some(err) = cause {
        let Some(timeout) = err.downcast_ref::<crate::http_serve::BodyTimedOut>() else {
            cause = err.source();
            continue;
        };
        return ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("{timeout}; send the body faster or split the request"),
        )
        .with_detail(serde_json::json!({ "timeout_secs": timeout.0.as_secs() }));
    }
    ApiError::bad_request(format!("could not read the request body: {source}"))
}

/// A JSON body (management routes): content type checked, size-limited, parse errors located.
pub struct ApiJson<T>(pub T);

const MANAGEMENT_BODY_LIMIT: usize = 1024 * 1024;

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !is_json_content_type(ct) {
            return Err(unsupported_media_type(ct, "application/json"));
        }
        let bytes = read_limited(req.into_body(), MANAGEMENT_BODY_LIMIT).await?;
        // Every management body is an object. serde reads a struct from an array too (by
        // position), so `[null, null]` would otherwise pass as an empty retention policy.
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => {}
            first => {
                let got = match first {
                    Some(b'[') => "an array",
                    Some(b'"') => "a string",
                    Some(b'n') => "null",
                    Some(b't' | b'f') => "a boolean",
                    Some(b'-' | b'0'..=b'9') => "a number",
                    None => "an empty body",
                    Some(_) => "something that is not JSON",
                };
                return Err(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "invalid_json",
                    format!("invalid request body: expected a JSON object, got {got}"),
                )
                .with_detail(serde_json::json!({ "line": 1, "column": 1 })));
            }
        }
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("invalid request body: {e}"),
            )
            .with_detail(serde_json::json!({ "line": e.line(), "column": e.column() }))
        })
    }
}

pub fn media_type(ct: &str) -> String {
    ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

pub fn is_json_content_type(ct: &str) -> bool {
    let m = media_type(ct);
    m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
}

pub fn unsupported_media_type(got: &str, want: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!(
            "Content-Type `{}` is not accepted; send {want}",
            if got.is_empty() { "(none)" } else { got }
        ),
    )
    .with_detail(serde_json::json!({ "content_type": got }))
}

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// `?limit=&cursor=` of the list routes (`tenant=` where the operator may filter by it; each
/// route documents `tenant` itself, since its meaning differs).
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Page size: 1–1000, default 100.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<String>,
    /// The previous page's `next_cursor` (opaque). Absent: the first page.
    pub cursor: Option<String>,
    #[param(ignore)]
    pub tenant: Option<String>,
}

impl Page {
    /// The page size: default 100, from 1 to 1000. Enforced rather than clamped (api.md: max
    /// 1000), so the documented range is exactly what is accepted.
    pub fn limit(&self) -> Result<usize, ApiError> {
        let bad = || ApiError::invalid_param("limit", "`limit` must be an integer from 1 to 1000");
        match self.limit.as_deref() {
            None => Ok(DEFAULT_PAGE),
            Some(s) => match s.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
                _ => Err(bad()),
            },
        }
    }
}
