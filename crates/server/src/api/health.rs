//! Liveness, readiness and metrics: unauthenticated, as load balancers and scrapers expect.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Serialize, ToSchema)]
#[schema(as = Health)]
pub struct Liveness {
    status: LiveStatus,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LiveStatus {
    Ok,
}

#[derive(Serialize, ToSchema)]
#[schema(as = Readiness)]
pub struct Readiness {
    status: ReadyStatus,
}

#[derive(Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    Ready,
    ShuttingDown,
    StoreUnavailable,
    StoreTimeout,
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    responses((status = 200, description = "Alive.", body = Liveness, example = json!({"status": "ok"}))),
)]
pub async fn healthz() -> Json<Liveness> {
    Json(Liveness { status: LiveStatus::Ok })
}

/// Readiness: ready when the store answers reads and its writer takes writes.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready.", body = Readiness, example = json!({"status": "ready"})),
        (status = 503, description = "Not ready: shutting down, or the store does not answer (in time).", body = Readiness,
            example = json!({"status": "store_unavailable"})),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let check = tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await;
    let status = match check {
        Ok(Ok(())) if !state.shutdown.is_cancelled() => ReadyStatus::Ready,
        Ok(Ok(())) => ReadyStatus::ShuttingDown,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            ReadyStatus::StoreUnavailable
        }
        Err(_) => ReadyStatus::StoreTimeout,
    };
    let code = match status {
        ReadyStatus::Ready => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    (code, Json(Readiness { status })).into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4.", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)),
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
        .into_response()
}

/// This document: the API reference (OpenAPI 3.1), generated from the handlers and types of
/// this build (`docs/openapi.json` is a snapshot of it).
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json", body = Object)),
)]
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::doc::document_json(),
    )
        .into_response()
}
