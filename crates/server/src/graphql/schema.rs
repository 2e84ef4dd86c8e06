//! Resolvers. Each one calls the REST handler of the same operation (`crate::api::sinks`) with
//! the caller's principal and a body built from its arguments, then reads the JSON answer into
//! its GraphQL type. Nothing about sinks is decided here: scopes, tenant isolation, validation,
//! the SSRF guard, secrets and audit events are REST's, so the two surfaces cannot drift.

use async_graphql::{Context, Object, ID};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use super::errors::{from_api, projection, IntoGraphql};
use super::kinds;
use super::types::{
    CreateSinkInput, CreateSinkPayload, DeadLetter, DeadLetterConnection, DeadLetterEdge, PageInfo, Replay, RestPage,
    Sink, SinkConnection, SinkEdge, SinkHealth, SinkKind, TestResult, UpdateSinkInput,
};
use crate::api::extract::{ApiJson, ApiQuery, Page};
use crate::api::sinks;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

/// The largest `first`, as REST caps `limit`: more is served as this many.
pub const MAX_FIRST: i32 = 1000;

/// Extra cost, on top of one per selected field (see `super::MAX_COMPLEXITY`), of a root field
/// that reads a page from the store, or resolves a receiver's host and writes a definition.
const COST_IO: usize = 10;

/// Extra cost of a root field that calls a receiver or starts a replay. One request is one
/// hit on the per-key rate limit, so aliases could otherwise turn it into dozens of outbound
/// deliveries; with this cost a request makes at most 9.
const COST_OUTBOUND: usize = 100;

/// The state and the caller, put on every request by the route.
fn caller<'a>(ctx: &Context<'a>) -> async_graphql::Result<(&'a AppState, &'a Principal)> {
    Ok((ctx.data::<AppState>()?, ctx.data::<Principal>()?))
}

fn read<T: DeserializeOwned>(what: &str, v: Value) -> async_graphql::Result<T> {
    serde_json::from_value(v).map_err(|e| projection(what, e))
}

/// A body built from typed input; serializing our own input types cannot fail in practice,
/// but if it did the caller gets an error, not a panic.
fn body_of<T: serde::Serialize>(input: &T) -> async_graphql::Result<Value> {
    serde_json::to_value(input).map_err(|e| projection("request body", e))
}

/// `first` as REST's `limit`: at least 1 (REST refuses 0 too), at most `MAX_FIRST`.
fn limit_of(first: Option<i32>) -> async_graphql::Result<Option<usize>> {
    match first {
        None => Ok(None),
        Some(n) if n < 1 => Err(from_api(ApiError::invalid_param(
            "first",
            format!("`first` must be from 1 to {MAX_FIRST}"),
        ))),
        Some(n) => Ok(usize::try_from(n.min(MAX_FIRST)).ok()),
    }
}

/// The page query as the list handlers take it: the result of their extractor.
fn page(limit: Option<usize>, cursor: Option<String>, tenant: Option<String>) -> Result<ApiQuery<Page>, ApiError> {
    Ok(ApiQuery(Page { limit, cursor, tenant }))
}

/// Relay's page info for the cursors of one page, forward paging only.
///
/// REST hands out `next_cursor` whenever a page is full, even when nothing follows, while
/// Relay's `hasNextPage` must be exact: the connection resolvers follow a full page with a
/// one-item probe through the same handler to learn it.
fn page_info(cursors: &[String], has_next_page: bool) -> PageInfo {
    PageInfo {
        has_next_page,
        has_previous_page: false,
        start_cursor: cursors.first().cloned(),
        end_cursor: cursors.last().cloned(),
    }
}

pub struct Query;

#[Object]
impl Query {
    /// The sinks this caller may see (`GET /v1/sinks`), in id order. The operator may name a
    /// `tenant` to see only that tenant's sinks. `first` defaults to 100 and is capped at 1000.
    #[graphql(complexity = "1 + COST_IO + child_complexity")]
    async fn sinks(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        tenant: Option<String>,
    ) -> async_graphql::Result<SinkConnection> {
        let (state, principal) = caller(ctx)?;
        let limit = limit_of(first)?;
        let Json(answer) = sinks::list_sinks(
            State(state.clone()),
            principal.clone(),
            page(limit, after, tenant.clone()),
        )
        .await
        .gql()?;
        let rest: RestPage<Sink> = read("sink list", answer)?;
        let has_next_page = match rest.next_cursor {
            None => false,
            Some(next) => {
                let Json(probe) = sinks::list_sinks(
                    State(state.clone()),
                    principal.clone(),
                    page(Some(1), Some(next), tenant),
                )
                .await
                .gql()?;
                probe["items"].as_array().is_some_and(|items| !items.is_empty())
            }
        };
        let edges: Vec<SinkEdge> = rest
            .items
            .into_iter()
            .map(|node| SinkEdge {
                cursor: node.id.to_string(),
                node,
            })
            .collect();
        let cursors: Vec<String> = edges.iter().map(|e| e.cursor.clone()).collect();
        Ok(SinkConnection {
            page_info: page_info(&cursors, has_next_page),
            edges,
        })
    }

    /// One sink (`GET /v1/sinks/{id}`). A missing sink, or one this caller may not see,
    /// answers null with a `not_found` error, exactly as REST answers 404 for both.
    async fn sink(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Sink>> {
        let (state, principal) = caller(ctx)?;
        let Json(answer) = sinks::get_sink(State(state.clone()), principal.clone(), Path(id.0))
            .await
            .gql()?;
        read("sink", answer).map(Some)
    }

    /// `GET /v1/sinks/{id}/health`; null with `not_found` like `sink`.
    async fn sink_health(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<SinkHealth>> {
        let (state, principal) = caller(ctx)?;
        let Json(answer) = sinks::sink_health(State(state.clone()), principal.clone(), Path(id.0))
            .await
            .gql()?;
        read("sink health", answer).map(Some)
    }

    /// A replay's progress (`GET /v1/sinks/{id}/replays/{replay}`); null with `not_found`
    /// when the sink or the replay is unknown.
    async fn replay(&self, ctx: &Context<'_>, sink_id: ID, id: ID) -> async_graphql::Result<Option<Replay>> {
        let (state, principal) = caller(ctx)?;
        let Json(answer) = sinks::get_replay(State(state.clone()), principal.clone(), Path((sink_id.0, id.0)))
            .await
            .gql()?;
        read("replay", answer).map(Some)
    }

    /// A sink's dead letters (`GET /v1/sinks/{id}/dead-letters`), oldest first.
    #[graphql(complexity = "1 + COST_IO + child_complexity")]
    async fn dead_letters(
        &self,
        ctx: &Context<'_>,
        sink_id: ID,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<DeadLetterConnection> {
        let (state, principal) = caller(ctx)?;
        let limit = limit_of(first)?;
        let sink_id = sink_id.0;
        let Json(answer) = sinks::list_dead_letters(
            State(state.clone()),
            principal.clone(),
            Path(sink_id.clone()),
            page(limit, after, None),
        )
        .await
        .gql()?;
        let rest: RestPage<DeadLetter> = read("dead letter list", answer)?;
        let has_next_page = match rest.next_cursor {
            None => false,
            Some(next) => {
                let Json(probe) = sinks::list_dead_letters(
                    State(state.clone()),
                    principal.clone(),
                    Path(sink_id),
                    page(Some(1), Some(next), None),
                )
                .await
                .gql()?;
                probe["items"].as_array().is_some_and(|items| !items.is_empty())
            }
        };
        let edges: Vec<DeadLetterEdge> = rest
            .items
            .into_iter()
            .map(|node| DeadLetterEdge {
                cursor: node.id.to_string(),
                node,
            })
            .collect();
        let cursors: Vec<String> = edges.iter().map(|e| e.cursor.clone()).collect();
        Ok(DeadLetterConnection {
            page_info: page_info(&cursors, has_next_page),
            edges,
        })
    }

    /// The sink kinds this server runs, with their formats and secrets (any valid token).
    async fn sink_kinds(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<SinkKind>> {
        let (state, principal) = caller(ctx)?;
        let answer = kinds::sink_kinds(state, principal).await.gql()?;
        read("sink kinds", answer.get("kinds").cloned().unwrap_or(Value::Null))
    }
}

pub struct Mutation;

#[Object]
impl Mutation {
    /// `POST /v1/sinks`. Secrets the server generates (a webhook's signing secret) are in
    /// `generatedSecrets`, shown this once.
    #[graphql(complexity = "1 + COST_IO + child_complexity")]
    async fn create_sink(&self, ctx: &Context<'_>, input: CreateSinkInput) -> async_graphql::Result<CreateSinkPayload> {
        let (state, principal) = caller(ctx)?;
        let body = body_of(&input)?;
        let (_, Json(answer)) = sinks::create_sink(State(state.clone()), principal.clone(), Ok(ApiJson(body)))
            .await
            .gql()?;
        let sink: Sink = read("sink", answer)?;
        Ok(CreateSinkPayload {
            generated_secrets: sink.generated_secrets.clone(),
            sink,
        })
    }

    /// `PATCH /v1/sinks/{id}`: what `input` leaves out keeps its value.
    #[graphql(complexity = "1 + COST_IO + child_complexity")]
    async fn update_sink(&self, ctx: &Context<'_>, id: ID, input: UpdateSinkInput) -> async_graphql::Result<Sink> {
        let (state, principal) = caller(ctx)?;
        let body = body_of(&input)?;
        let Json(answer) = sinks::patch_sink(State(state.clone()), principal.clone(), Path(id.0), Ok(ApiJson(body)))
            .await
            .gql()?;
        read("sink", answer)
    }

    /// `DELETE /v1/sinks/{id}`: true once deleted.
    async fn delete_sink(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let (state, principal) = caller(ctx)?;
        let status = sinks::delete_sink(State(state.clone()), principal.clone(), Path(id.0))
            .await
            .gql()?;
        Ok(status == StatusCode::NO_CONTENT)
    }

    /// `POST /v1/sinks/{id}/test`: one synthetic `system.test` event now; the receiver's
    /// answer, whether it accepted it or not.
    #[graphql(complexity = "1 + COST_OUTBOUND + child_complexity")]
    async fn test_sink(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<TestResult> {
        let (state, principal) = caller(ctx)?;
        let Json(answer) = sinks::test_sink(State(state.clone()), principal.clone(), Path(id.0))
            .await
            .gql()?;
        read("test result", answer)
    }

    /// `POST /v1/sinks/{id}/pause`.
    async fn pause_sink(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Sink> {
        let (state, principal) = caller(ctx)?;
        let Json(answer) = sinks::pause_sink(State(state.clone()), principal.clone(), Path(id.0))
            .await
            .gql()?;
        read("sink", answer)
    }

    /// `POST /v1/sinks/{id}/resume`.
    async fn resume_sink(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Sink> {
        let (state, principal) = caller(ctx)?;
        let Json(answer) = sinks::resume_sink(State(state.clone()), principal.clone(), Path(id.0))
            .await
            .gql()?;
        read("sink", answer)
    }

    /// `POST /v1/sinks/{id}/replay`: `from` and `to` are offsets (`"42"`) or RFC 3339 times;
    /// `to` defaults to the log head. `tenant` picks the tenant of an operator sink that reads
    /// several.
    #[graphql(complexity = "1 + COST_OUTBOUND + child_complexity")]
    async fn replay_sink(
        &self,
        ctx: &Context<'_>,
        id: ID,
        from: String,
        to: Option<String>,
        tenant: Option<String>,
    ) -> async_graphql::Result<Replay> {
        let (state, principal) = caller(ctx)?;
        let mut body = Map::new();
        body.insert("from".into(), json!(from));
        if let Some(to) = to {
            body.insert("to".into(), json!(to));
        }
        if let Some(tenant) = tenant {
            body.insert("tenant".into(), json!(tenant));
        }
        let (_, Json(answer)) = sinks::replay_sink(
            State(state.clone()),
            principal.clone(),
            Path(id.0),
            Ok(ApiJson(Value::Object(body))),
        )
        .await
        .gql()?;
        read("replay", answer)
    }

    /// `POST /v1/sinks/{id}/dead-letters/{dl}/retry`: the attempt, when the receiver accepted
    /// it (the dead letter is then gone). When it did not, the error `delivery_failed` carries
    /// the attempt in `extensions.attempt`, and the dead letter is kept.
    #[graphql(complexity = "1 + COST_OUTBOUND + child_complexity")]
    async fn retry_dead_letter(&self, ctx: &Context<'_>, sink_id: ID, id: ID) -> async_graphql::Result<TestResult> {
        let (state, principal) = caller(ctx)?;
        let (_, Json(answer)) =
            sinks::retry_dead_letter(State(state.clone()), principal.clone(), Path((sink_id.0, id.0)))
                .await
                .gql()?;
        read("retry attempt", answer.get("attempt").cloned().unwrap_or(Value::Null))
    }

    /// `DELETE /v1/sinks/{id}/dead-letters/{dl}`: true once deleted.
    async fn delete_dead_letter(&self, ctx: &Context<'_>, sink_id: ID, id: ID) -> async_graphql::Result<bool> {
        let (state, principal) = caller(ctx)?;
        let status = sinks::delete_dead_letter(State(state.clone()), principal.clone(), Path((sink_id.0, id.0)))
            .await
            .gql()?;
        Ok(status == StatusCode::NO_CONTENT)
    }
}
