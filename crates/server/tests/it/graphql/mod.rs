#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
//! `POST /v1/graphql` is the REST sink API under another syntax: what one surface writes the
//! other reads, errors carry REST's codes, fields and messages, auth is REST's, and the limits
//! (depth, cost, page size) hold. Also: `docs/graphql.sdl` is the schema the server serves.

use crate::common;
use crate::delivery_support as support;

use std::time::Duration;

use common::receiver::{Fault, Receiver};
use common::{assert_error, send, TestServer};
use serde_json::{json, Value};

mod jobs;
mod limits;
mod surfaces;

/// Every field of `Sink`, to compare a GraphQL sink with its REST twin.
pub(super) const SINK: &str = "id tenant name kind config format eventTypes tenants startAt
    batch { maxEvents maxBytes flushIntervalMs } retry { maxAttempts initialBackoffMs maxBackoffMs }
    timeoutMs maxInFlight onExhausted breaker { failureThreshold cooldownMs }
    secretsSet secretRotation { secret previousValidUntil } paused pauseReason
    createdAt updatedAt revision generatedSecrets";

/// `POST /v1/graphql` → (status, body).
pub(super) async fn gql_raw(s: &TestServer, token: &str, query: &str, variables: Value) -> (u16, Value) {
    send(
        s.http
            .post(s.url("/v1/graphql"))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables })),
    )
    .await
}

/// A request that executes: 200 and the GraphQL response.
pub(super) async fn gql(s: &TestServer, token: &str, query: &str, variables: Value) -> Value {
    let (status, body) = gql_raw(s, token, query, variables).await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

/// The response's only error.
#[track_caller]
pub(super) fn only_error(body: &Value) -> &Value {
    let errors = body["errors"].as_array().unwrap_or_else(|| panic!("no errors: {body}"));
    assert_eq!(errors.len(), 1, "{body}");
    assert!(errors[0]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    &errors[0]
}

#[track_caller]
pub(super) fn assert_code(body: &Value, code: &str) {
    assert_eq!(only_error(body)["extensions"]["code"], code, "{body}");
}

pub(super) async fn rest_sink(s: &TestServer, token: &str, id: &str) -> (u16, Value) {
    send(s.http.get(s.url(&format!("/v1/sinks/{id}"))).bearer_auth(token)).await
}

pub(super) async fn rest_create(s: &TestServer, token: &str, body: &Value) -> (u16, Value) {
    send(s.http.post(s.url("/v1/sinks")).bearer_auth(token).json(body)).await
}

pub(super) async fn gql_sink(s: &TestServer, token: &str, id: &str) -> Value {
    gql(
        s,
        token,
        &format!("query($id: ID!) {{ sink(id: $id) {{ {SINK} }} }}"),
        json!({ "id": id }),
    )
    .await
}

/// The GraphQL sink and the REST sink say the same, field for field.
#[track_caller]
pub(super) fn assert_same_sink(g: &Value, rest: &Value) {
    let pairs = [
        ("id", "id"),
        ("tenant", "tenant"),
        ("name", "name"),
        ("kind", "kind"),
        ("config", "config"),
        ("format", "format"),
        ("eventTypes", "event_types"),
        ("startAt", "start_at"),
        ("timeoutMs", "timeout_ms"),
        ("maxInFlight", "max_in_flight"),
        ("onExhausted", "on_exhausted"),
        ("secretsSet", "secrets_set"),
        ("paused", "paused"),
        ("pauseReason", "pause_reason"),
        ("createdAt", "created_at"),
        ("updatedAt", "updated_at"),
        ("revision", "revision"),
    ];
    for (camel, snake) in pairs {
        assert_eq!(g[camel], rest[snake], "{camel}: graphql {g} rest {rest}");
    }
    // A tenant's sink has no `tenants` in REST; GraphQL shows null.
    assert_eq!(g["tenants"], rest.get("tenants").cloned().unwrap_or(Value::Null));
    for (obj, fields) in [
        (
            "batch",
            &[
                ("maxEvents", "max_events"),
                ("maxBytes", "max_bytes"),
                ("flushIntervalMs", "flush_interval_ms"),
            ][..],
        ),
        (
            "retry",
            &[
                ("maxAttempts", "max_attempts"),
                ("initialBackoffMs", "initial_backoff_ms"),
                ("maxBackoffMs", "max_backoff_ms"),
            ][..],
        ),
        (
            "breaker",
            &[("failureThreshold", "failure_threshold"), ("cooldownMs", "cooldown_ms")][..],
        ),
    ] {
        for (camel, snake) in fields {
            assert_eq!(
                g[obj][camel], rest[obj][snake],
                "{obj}.{camel}: graphql {g} rest {rest}"
            );
        }
    }
    let rotation: Vec<Value> = rest
        .get("secret_rotation")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| json!({ "secret": k, "previousValidUntil": v["previous_valid_until"] }))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(g["secretRotation"], json!(rotation));
    assert_eq!(
        g["generatedSecrets"],
        rest.get("generated_secrets").cloned().unwrap_or(Value::Null)
    );
}

pub(super) const CREATE: &str = "mutation($input: CreateSinkInput!) {
    createSink(input: $input) { generatedSecrets sink { id tenant name kind config format eventTypes tenants startAt
    batch { maxEvents maxBytes flushIntervalMs } retry { maxAttempts initialBackoffMs maxBackoffMs }
    timeoutMs maxInFlight onExhausted breaker { failureThreshold cooldownMs }
    secretsSet secretRotation { secret previousValidUntil } paused pauseReason
    createdAt updatedAt revision generatedSecrets } } }";

/// `docs/graphql.sdl`, and the copy in `docs/graphql.md`, are the schema the server serves.
/// `UPDATE_GRAPHQL_SDL=1` rewrites both.
#[test]
fn the_committed_sdl_is_the_servers_schema() {
    const BEGIN: &str = "<!-- sdl:begin -->\n```graphql\n";
    const END: &str = "```\n<!-- sdl:end -->";
    let sdl_path = common::repo_root().join("docs/graphql.sdl");
    let md_path = common::repo_root().join("docs/graphql.md");
    let mut sdl = auditrelay_server::graphql::sdl();
    if !sdl.ends_with('\n') {
        sdl.push('\n');
    }
    let md = std::fs::read_to_string(&md_path).unwrap();
    let (Some(begin), Some(end)) = (md.find(BEGIN), md.find(END)) else {
        panic!("docs/graphql.md lacks the `{BEGIN}` … `{END}` block");
    };
    let embedded = &md[begin + BEGIN.len()..end];
    if std::env::var_os("UPDATE_GRAPHQL_SDL").is_some() {
        std::fs::write(&sdl_path, &sdl).unwrap();
        std::fs::write(&md_path, format!("{}{sdl}{}", &md[..begin + BEGIN.len()], &md[end..])).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&sdl_path).unwrap_or_default();
    let hint = "run `UPDATE_GRAPHQL_SDL=1 cargo nextest run -p auditrelay-server -E 'test(/^graphql::/)'` \
                and commit the result (and say in docs/graphql.md what changed for clients)";
    assert!(
        committed == sdl,
        "docs/graphql.sdl differs from the schema the server serves; {hint}"
    );
    assert!(
        embedded == sdl,
        "the schema in docs/graphql.md differs from the one the server serves; {hint}"
    );
}
