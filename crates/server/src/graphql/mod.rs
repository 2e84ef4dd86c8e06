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

crate::api::doc::json_schema! {
    /// A GraphQL request (GraphQL over HTTP, JSON encoding).
    pub struct GraphqlRequest = {
        "type": "object",
        "required": ["query"],
        "properties": {
            "query": { "type": "string", "description": "The GraphQL document (docs/graphql.sdl has the schema)." },
            "variables": { "type": ["object", "null"] },
            "operationName": { "type": ["string", "null"] }
        }
    }
}

crate::api::doc::json_schema! {
    /// A GraphQL response: `data`, and `errors` whose `extensions.code` is the REST error code.
    pub struct GraphqlResponse = {
        "type": "object",
        "properties": {
            "data": { "type": ["object", "null"], "description": "The selected fields; null when the request failed as a whole." },
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["message"],
                    "properties": {
                        "message": { "type": "string" },
                        "path": { "type": "array" },
                        "locations": { "type": "array" },
                        "extensions": {
                            "type": "object",
                            "properties": {
                                "code": { "type": "string", "description": "The REST error code (`not_found`, `forbidden`, `invalid_request`, …)." },
                                "field": { "type": "string", "description": "With `invalid_request`: the field at fault, as REST's `detail.field`." }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The sink admin surface as GraphQL (docs/graphql.md).
///
/// Any valid token reaches the schema; each field then applies its REST route's scope and
/// tenant rules, answering `200` with GraphQL `errors` whose `extensions.code` is the REST code.
#[utoipa::path(
    post,
    path = "/v1/graphql",
    operation_id = "graphql",
    tag = "graphql",
    request_body = GraphqlRequest,
    responses(
        (status = 200, description = "The GraphQL response; errors of single fields are in `errors`, with the REST code in `extensions.code`.", body = GraphqlResponse),
        (status = 400, description = "`invalid_json`, or `invalid_request` naming `query`, `variables` or `operationName`.", body = crate::error::ErrorBody),
        (status = 401, response = crate::api::doc::Unauthorized),
        (status = 408, response = crate::api::doc::RequestTimeout),
        (status = 413, response = crate::api::doc::PayloadTooLarge),
        (status = 415, response = crate::api::doc::UnsupportedMediaType),
        (status = 429, response = crate::api::doc::TooManyRequests),
    ),
    security(("bearerAuth" = [])),
)]
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
