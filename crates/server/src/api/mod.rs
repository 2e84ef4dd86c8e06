//! The HTTP surface (api.md "Routes"). Each file is one group of routes.

mod admin;
mod append;
mod consume;
pub mod doc;
mod event_doc;
mod export;
pub(crate) mod extract;
mod health;
mod ingest;
mod integrity;
mod otlp;
mod retention;
pub(crate) mod sink_kinds;
pub(crate) mod sinks;
mod sources;
mod tenants;

use axum::routing::{delete, get, post};
use axum::Router;

pub(crate) use append::append_events;

use crate::error::ApiError;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/events", post(ingest::post_events).get(consume::long_poll))
        .route("/v1/stream", get(consume::stream))
        .route("/otlp/v1/logs", post(otlp::export_logs))
        .route("/v1/tenants", post(tenants::create_tenant).get(tenants::list_tenants))
        .route("/v1/tenants/{tenant}", get(tenants::get_tenant))
        .route(
            "/v1/tenants/{tenant}/keys",
            post(tenants::create_key).get(tenants::list_keys),
        )
        .route("/v1/tenants/{tenant}/keys/{key}", delete(tenants::revoke_key))
        .route(
            "/v1/tenants/{tenant}/retention",
            get(retention::get_retention)
                .put(retention::put_retention)
                .delete(retention::delete_retention),
        )
        .route("/v1/sink-kinds", get(sink_kinds::list_sink_kinds))
        .route("/v1/sinks", post(sinks::create_sink).get(sinks::list_sinks))
        .route("/v1/sinks/preview", post(sinks::preview_sink))
        .route(
            "/v1/sinks/{id}",
            get(sinks::get_sink).patch(sinks::patch_sink).delete(sinks::delete_sink),
        )
        .route("/v1/sinks/{id}/test", post(sinks::test_sink))
        .route("/v1/sinks/{id}/health", get(sinks::sink_health))
        .route("/v1/sinks/{id}/pause", post(sinks::pause_sink))
        .route("/v1/sinks/{id}/resume", post(sinks::resume_sink))
        .route("/v1/sinks/{id}/replay", post(sinks::replay_sink))
        .route("/v1/sinks/{id}/replays/{replay}", get(sinks::get_replay))
        .route("/v1/sinks/{id}/deliveries", get(sinks::list_deliveries))
        .route("/v1/sinks/{id}/stats", get(sinks::sink_stats))
        .route("/v1/sinks/{id}/dead-letters", get(sinks::list_dead_letters))
        .route(
            "/v1/sinks/{id}/dead-letters/{dl}",
            get(sinks::get_dead_letter).delete(sinks::delete_dead_letter),
        )
        .route("/v1/sinks/{id}/dead-letters/{dl}/retry", post(sinks::retry_dead_letter))
        .route("/v1/source-kinds", get(sources::list_source_kinds))
        .route("/v1/sources", post(sources::create_source).get(sources::list_sources))
        .route(
            "/v1/sources/{id}",
            get(sources::get_source)
                .patch(sources::patch_source)
                .delete(sources::delete_source),
        )
        .route("/v1/sources/{id}/pause", post(sources::pause_source))
        .route("/v1/sources/{id}/resume", post(sources::resume_source))
        .route("/v1/sources/{id}/health", get(sources::source_health))
        .route("/v1/graphql", post(crate::graphql::post_graphql))
        .route("/v1/admin/token/rotate", post(admin::rotate_token))
        .route("/v1/export", get(export::export))
        .route("/v1/integrity/key", get(integrity::public_key))
        .route("/v1/integrity/checkpoints", get(integrity::list_checkpoints))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        // Bodies are read by the handlers with their own limits and JSON errors.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}
