//! `POST /v1/graphql` (api.md "One typed sink model, several projections"): the sink admin
//! surface as GraphQL, over the REST handlers themselves (see `schema.rs`). `docs/graphql.md`
//! is the reference; `docs/graphql.sdl` is the schema, checked against `sdl()` by a test.
//!
//! Transport: a JSON body `{"query", "variables"?, "operationName"?}` (no batches, no GET, no
//! uploads). The caller is authenticated before the body is read, exactly as on REST, so an
//! unauthenticated caller gets REST's 401 and never reaches the schema or its introspection.
//! A request that executes answers 200 with `data` and/or `errors`; one that is not a GraphQL
//! request at all answers REST's 4xx JSON error.

mod errors;
mod kinds;
mod schema;
mod types;

use std::sync::OnceLock;

use async_graphql::{EmptySubscription, Schema, Variables};
use axum::extract::State;
use axum::Json;
use serde_json::Value;

use crate::api::extract::ApiJson;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub use schema::MAX_FIRST;

/// Deepest selection accepted: `{ a { b } }` is 2 deep. The data types nest 5 deep at most
/// (`sinks.edges.node.batch.maxEvents`); the rest of the margin is for introspection.
pub const MAX_DEPTH: usize = 10;

/// Most costly query accepted. Each selected field costs 1; `sinks`, `deadLetters` (a page
/// from the store), `createSink` and `updateSink` (a host resolved, a definition written) cost
/// 10 more; `testSink`, `retryDeadLetter` (a delivery) and `replaySink` (a background job) 100
/// more. Aliases count each time, so one request, one hit on the per-key rate limit, cannot
/// multiply store reads past about 90 or outbound deliveries past 9.
pub const MAX_COMPLEXITY: usize = 1000;

pub type AdminSchema = Schema<schema::Query, schema::Mutation, EmptySubscription>;

/// Built once: the schema holds no state (that comes with each request), only the registry.
fn admin_schema() -> &'static AdminSchema {
    static SCHEMA: OnceLock<AdminSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::build(schema::Query, schema::Mutation, EmptySubscription)
            .limit_depth(MAX_DEPTH)
            .limit_complexity(MAX_COMPLEXITY)
            .finish()
    })
}

/// The schema in SDL, as `docs/graphql.sdl` holds it.
pub fn sdl() -> String {
    admin_schema().sdl()
}

/// The body of a GraphQL request, read with REST's rules (JSON object, size limit), then
/// checked here so a malformed one names its field like any REST body.
fn request_of(body: Value) -> ApiResult<async_graphql::Request> {
    let Value::Object(mut body) = body else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    let query = match body.remove("query") {
        Some(Value::String(q)) => q,
        None | Some(Value::Null) => return Err(ApiError::invalid_field("query", "`query` is required")),
        Some(_) => return Err(ApiError::invalid_field("query", "`query` must be a string")),
    };
    let mut request = async_graphql::Request::new(query);
    match body.remove("variables") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Object(_)) => request = request.variables(Variables::from_json(v)),
        Some(_) => return Err(ApiError::invalid_field("variables", "`variables` must be an object")),
    }
    match body.remove("operationName") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => request = request.operation_name(name),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "operationName",
                "`operationName` must be a string",
            ))
        }
    }
    Ok(request)
}

/// `POST /v1/graphql`.
pub async fn post_graphql(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<ApiJson<Value>, ApiError>,
) -> ApiResult<Json<async_graphql::Response>> {
    let ApiJson(body) = body?;
    let request = request_of(body)?.data(state).data(principal);
    let mut response = admin_schema().execute(request).await;
    errors::ensure_codes(&mut response.errors);
    Ok(Json(response))
}
