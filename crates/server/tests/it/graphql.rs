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

/// Every field of `Sink`, to compare a GraphQL sink with its REST twin.
const SINK: &str = "id tenant name kind config format eventTypes tenants startAt
    batch { maxEvents maxBytes flushIntervalMs } retry { maxAttempts initialBackoffMs maxBackoffMs }
    timeoutMs maxInFlight onExhausted breaker { failureThreshold cooldownMs }
    secretsSet secretRotation { secret previousValidUntil } paused pauseReason
    createdAt updatedAt revision generatedSecrets";

/// `POST /v1/graphql` → (status, body).
async fn gql_raw(s: &TestServer, token: &str, query: &str, variables: Value) -> (u16, Value) {
    send(
        s.http
            .post(s.url("/v1/graphql"))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables })),
    )
    .await
}

/// A request that executes: 200 and the GraphQL response.
async fn gql(s: &TestServer, token: &str, query: &str, variables: Value) -> Value {
    let (status, body) = gql_raw(s, token, query, variables).await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

/// The response's only error.
#[track_caller]
fn only_error(body: &Value) -> &Value {
    let errors = body["errors"].as_array().unwrap_or_else(|| panic!("no errors: {body}"));
    assert_eq!(errors.len(), 1, "{body}");
    assert!(errors[0]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    &errors[0]
}

#[track_caller]
fn assert_code(body: &Value, code: &str) {
    assert_eq!(only_error(body)["extensions"]["code"], code, "{body}");
}

async fn rest_sink(s: &TestServer, token: &str, id: &str) -> (u16, Value) {
    send(s.http.get(s.url(&format!("/v1/sinks/{id}"))).bearer_auth(token)).await
}

async fn rest_create(s: &TestServer, token: &str, body: &Value) -> (u16, Value) {
    send(s.http.post(s.url("/v1/sinks")).bearer_auth(token).json(body)).await
}

async fn gql_sink(s: &TestServer, token: &str, id: &str) -> Value {
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
fn assert_same_sink(g: &Value, rest: &Value) {
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

const CREATE: &str = "mutation($input: CreateSinkInput!) {
    createSink(input: $input) { generatedSecrets sink { id tenant name kind config format eventTypes tenants startAt
    batch { maxEvents maxBytes flushIntervalMs } retry { maxAttempts initialBackoffMs maxBackoffMs }
    timeoutMs maxInFlight onExhausted breaker { failureThreshold cooldownMs }
    secretsSet secretRotation { secret previousValidUntil } paused pauseReason
    createdAt updatedAt revision generatedSecrets } } }";

#[tokio::test]
async fn a_sink_written_on_one_surface_reads_the_same_on_the_other() {
    let s = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    s.create_tenant("acme").await;
    let acme = s.create_key("acme", &["manage"]).await;

    // GraphQL writes, REST reads.
    let created = gql(
        &s,
        &acme,
        CREATE,
        json!({ "input": {
            "name": "gql-hook", "kind": "webhook", "config": { "url": "http://127.0.0.1:9/hook" },
            "eventTypes": ["user.*"], "batch": { "maxEvents": 50 }, "startAt": "earliest",
        } }),
    )
    .await;
    assert!(created.get("errors").is_none(), "{created}");
    let payload = &created["data"]["createSink"];
    let sink = &payload["sink"];
    let id = sink["id"].as_str().unwrap();
    assert!(id.starts_with("snk_"), "{sink}");
    assert_eq!(sink["tenant"], "acme", "a tenant key's sink belongs to its tenant");
    assert_eq!(sink["batch"]["maxEvents"], 50);
    assert_eq!(
        sink["batch"]["flushIntervalMs"], 100,
        "an unnamed batch member keeps its default"
    );
    assert_eq!(sink["secretsSet"], json!(["signing_secret"]));
    let secret = payload["generatedSecrets"]["signing_secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{payload}");
    assert_eq!(sink["generatedSecrets"], payload["generatedSecrets"]);
    let (status, rest) = rest_sink(&s, &acme, id).await;
    assert_eq!(status, 200, "{rest}");
    assert!(!rest.to_string().contains(secret), "REST leaked the generated secret");
    let mut shown_once = sink.clone();
    shown_once["generatedSecrets"] = Value::Null;
    assert_same_sink(&shown_once, &rest);

    // REST writes, GraphQL reads: equal field for field, and the secret is not shown again.
    let (status, rest) = rest_create(
        &s,
        &acme,
        &json!({ "name": "rest-hook", "kind": "webhook", "config": { "url": "http://127.0.0.1:9/other" },
                 "secrets": { "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }, "on_exhausted": "pause" }),
    )
    .await;
    assert_eq!(status, 201, "{rest}");
    let rest_id = rest["id"].as_str().unwrap();
    let read = gql_sink(&s, &acme, rest_id).await;
    assert!(read.get("errors").is_none(), "{read}");
    assert_same_sink(&read["data"]["sink"], &rest);
    assert_eq!(read["data"]["sink"]["onExhausted"], "pause");
    let again = gql_sink(&s, &acme, id).await;
    assert_eq!(again["data"]["sink"]["generatedSecrets"], Value::Null, "{again}");
    assert!(!again.to_string().contains(secret));

    // Both lists hold both sinks, in the same order.
    let list = gql(&s, &acme, "{ sinks { edges { node { id } cursor } } }", json!({})).await;
    let gql_ids: Vec<Value> = list["data"]["sinks"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].clone())
        .collect();
    let (_, rest_list) = send(s.http.get(s.url("/v1/sinks")).bearer_auth(&acme)).await;
    let rest_ids: Vec<Value> = rest_list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    assert_eq!(gql_ids.len(), 2, "{list}");
    assert_eq!(gql_ids, rest_ids);
}

#[tokio::test]
async fn update_pause_resume_and_delete_round_trip_through_rest() {
    let s = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    s.create_tenant("acme").await;
    let (key_id, acme) = s.create_key_full("acme", &["manage"]).await;
    let (status, rest) = rest_create(
        &s,
        &acme,
        &json!({ "name": "hook", "kind": "webhook", "config": { "url": "http://127.0.0.1:9/hook" } }),
    )
    .await;
    assert_eq!(status, 201, "{rest}");
    let id = rest["id"].as_str().unwrap();

    let update =
        format!("mutation($id: ID!, $input: UpdateSinkInput!) {{ updateSink(id: $id, input: $input) {{ {SINK} }} }}");
    let updated = gql(
        &s,
        &acme,
        &update,
        json!({ "id": id, "input": {
            "name": "renamed", "config": { "headers": { "x-team": "soc" } },
            "batch": { "maxEvents": 7 }, "eventTypes": ["user.*"],
        } }),
    )
    .await;
    assert!(updated.get("errors").is_none(), "{updated}");
    let g = &updated["data"]["updateSink"];
    assert_eq!(g["name"], "renamed");
    assert_eq!(
        g["config"]["url"], "http://127.0.0.1:9/hook",
        "config merges key by key"
    );
    assert_eq!(g["config"]["headers"], json!({ "x-team": "soc" }));
    assert_eq!(g["batch"]["maxEvents"], 7);
    assert_eq!(
        g["batch"]["maxBytes"], rest["batch"]["max_bytes"],
        "unnamed members are kept"
    );
    assert_eq!(g["eventTypes"], json!(["user.*"]));
    assert_eq!(g["revision"], 2);
    assert_eq!(g["secretsSet"], json!(["signing_secret"]), "an omitted secret is kept");
    let (_, after) = rest_sink(&s, &acme, id).await;
    assert_same_sink(g, &after);

    // A new signing secret rotates, as on REST.
    let rotated = gql(
        &s,
        &acme,
        &update,
        json!({ "id": id, "input": { "secrets": { "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" } } }),
    )
    .await;
    let rotation = &rotated["data"]["updateSink"]["secretRotation"];
    assert_eq!(rotation[0]["secret"], "signing_secret", "{rotated}");
    assert!(rotation[0]["previousValidUntil"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    let (_, after) = rest_sink(&s, &acme, id).await;
    assert_same_sink(&rotated["data"]["updateSink"], &after);

    // A bad value: REST's code, field and message.
    let bad = gql(
        &s,
        &acme,
        &update,
        json!({ "id": id, "input": { "batch": { "maxEvents": 0 } } }),
    )
    .await;
    let rest_bad = send(
        s.http
            .patch(s.url(&format!("/v1/sinks/{id}")))
            .bearer_auth(&acme)
            .json(&json!({ "batch": { "max_events": 0 } })),
    )
    .await;
    assert_error(&rest_bad, 400, "invalid_request");
    let e = only_error(&bad);
    assert_eq!(e["extensions"]["code"], "invalid_request", "{bad}");
    assert_eq!(e["extensions"]["field"], "batch.max_events");
    assert_eq!(e["extensions"]["field"], rest_bad.1["error"]["detail"]["field"]);
    assert_eq!(e["message"], rest_bad.1["error"]["message"]);
    assert_eq!(bad["data"], Value::Null, "updateSink is non-null: the error nulls data");

    // Pause and resume: both surfaces agree, and so does health.
    let paused = gql(
        &s,
        &acme,
        "mutation($id: ID!) { pauseSink(id: $id) { id paused pauseReason revision } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(paused["data"]["pauseSink"]["paused"], true, "{paused}");
    assert_eq!(
        paused["data"]["pauseSink"]["pauseReason"],
        format!("paused by key {key_id}")
    );
    let (_, after) = rest_sink(&s, &acme, id).await;
    assert_eq!(after["paused"], true);
    assert_eq!(after["pause_reason"], paused["data"]["pauseSink"]["pauseReason"]);
    let health = gql(
        &s,
        &acme,
        "query($id: ID!) { sinkHealth(id: $id) { sinkId state paused lag deadLetters tenants { tenant head lag } } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(health["data"]["sinkHealth"]["state"], "paused", "{health}");
    assert_eq!(health["data"]["sinkHealth"]["sinkId"], id);
    assert_eq!(health["data"]["sinkHealth"]["tenants"][0]["tenant"], "acme");
    let (_, rest_health) = send(s.http.get(s.url(&format!("/v1/sinks/{id}/health"))).bearer_auth(&acme)).await;
    assert_eq!(rest_health["state"], "paused");
    let resumed = gql(
        &s,
        &acme,
        "mutation($id: ID!) { resumeSink(id: $id) { paused pauseReason } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(
        resumed["data"]["resumeSink"],
        json!({ "paused": false, "pauseReason": null }),
        "{resumed}"
    );
    let (_, after) = rest_sink(&s, &acme, id).await;
    assert_eq!(after["paused"], false);

    // Delete: gone on both; a second delete is not_found.
    let delete = "mutation($id: ID!) { deleteSink(id: $id) }";
    let deleted = gql(&s, &acme, delete, json!({ "id": id })).await;
    assert_eq!(deleted["data"]["deleteSink"], true, "{deleted}");
    assert_error(&rest_sink(&s, &acme, id).await, 404, "not_found");
    let gone = gql_sink(&s, &acme, id).await;
    assert_eq!(gone["data"]["sink"], Value::Null, "{gone}");
    assert_code(&gone, "not_found");
    assert_code(&gql(&s, &acme, delete, json!({ "id": id })).await, "not_found");
}

#[tokio::test]
async fn another_tenants_sink_is_not_found_on_both_surfaces() {
    let s = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    s.create_tenant("acme").await;
    s.create_tenant("globex").await;
    let acme = s.create_key("acme", &["manage"]).await;
    let globex = s.create_key("globex", &["manage"]).await;
    let (status, sink) = rest_create(
        &s,
        &acme,
        &json!({ "name": "a", "kind": "webhook", "config": { "url": "http://127.0.0.1:9/a" } }),
    )
    .await;
    assert_eq!(status, 201, "{sink}");
    let id = sink["id"].as_str().unwrap();

    let rest = send(s.http.get(s.url(&format!("/v1/sinks/{id}"))).bearer_auth(&globex)).await;
    assert_error(&rest, 404, "not_found");
    let operations = [
        "query($id: ID!) { sink(id: $id) { id name } }",
        "query($id: ID!) { sinkHealth(id: $id) { state } }",
        "query($id: ID!) { deadLetters(sinkId: $id) { edges { cursor } } }",
        "mutation($id: ID!) { updateSink(id: $id, input: { name: \"stolen\" }) { id } }",
        "mutation($id: ID!) { pauseSink(id: $id) { id } }",
        "mutation($id: ID!) { resumeSink(id: $id) { id } }",
        "mutation($id: ID!) { testSink(id: $id) { delivered } }",
        "mutation($id: ID!) { replaySink(id: $id, from: \"1\") { id } }",
        "mutation($id: ID!) { retryDeadLetter(sinkId: $id, id: \"dl_x\") { delivered } }",
        "mutation($id: ID!) { deleteSink(id: $id) }",
    ];
    for op in operations {
        let got = gql(&s, &globex, op, json!({ "id": id })).await;
        assert_code(&got, "not_found");
        // Exactly like a missing sink: ids cannot be probed.
        let missing = gql(&s, &globex, op, json!({ "id": "snk_missing" })).await;
        assert_eq!(
            only_error(&got)["message"].as_str().unwrap().replace(id, "X"),
            only_error(&missing)["message"]
                .as_str()
                .unwrap()
                .replace("snk_missing", "X"),
            "{op}"
        );
        if op.contains("sink(id") {
            assert_eq!(got["data"]["sink"], Value::Null);
            assert_eq!(
                only_error(&got)["message"],
                rest.1["error"]["message"],
                "REST's message"
            );
        }
    }
    let list = gql(&s, &globex, "{ sinks { edges { node { id } } } }", json!({})).await;
    assert_eq!(list["data"]["sinks"]["edges"], json!([]), "{list}");
    // Naming another tenant on create: not_found, as on REST.
    let named = gql(
        &s,
        &globex,
        CREATE,
        json!({ "input": { "name": "x", "kind": "webhook", "tenant": "acme", "config": { "url": "http://127.0.0.1:9/a" } } }),
    )
    .await;
    assert_code(&named, "not_found");
    // None of it touched acme's sink.
    let (_, after) = rest_sink(&s, &acme, id).await;
    assert_eq!(after["name"], "a");
    assert_eq!(after["paused"], false);
    assert_eq!(after["revision"], 1);
}

#[tokio::test]
async fn private_and_metadata_targets_are_invalid_request_naming_config_url_on_both() {
    let s = TestServer::spawn();
    s.create_tenant("acme").await;
    for url in [
        "http://169.254.169.254/latest/meta-data",
        "http://127.0.0.1:8080/x",
        "http://10.1.2.3/x",
    ] {
        let rest = rest_create(
            &s,
            &s.admin,
            &json!({ "name": "x", "kind": "webhook", "tenant": "acme", "config": { "url": url } }),
        )
        .await;
        assert_error(&rest, 400, "invalid_request");
        assert_eq!(rest.1["error"]["detail"]["field"], "config.url", "{url}: {}", rest.1);
        let got = gql(
            &s,
            &s.admin,
            CREATE,
            json!({ "input": { "name": "x", "kind": "webhook", "tenant": "acme", "config": { "url": url } } }),
        )
        .await;
        let e = only_error(&got);
        assert_eq!(e["extensions"]["code"], "invalid_request", "{url}: {got}");
        assert_eq!(e["extensions"]["field"], "config.url", "{url}: {got}");
        assert_eq!(e["message"], rest.1["error"]["message"], "{url}");
        assert_eq!(got["data"], Value::Null);
    }
    let list = gql(&s, &s.admin, "{ sinks { edges { node { id } } } }", json!({})).await;
    assert_eq!(list["data"]["sinks"]["edges"], json!([]), "nothing was created: {list}");
}

#[tokio::test]
async fn auth_is_rests_and_get_is_not_accepted() {
    let s = TestServer::spawn();
    s.create_tenant("acme").await;
    let reader = s.create_key("acme", &["ingest", "read"]).await;
    let introspect = json!({ "query": "{ __schema { queryType { name } } }" });

    // No token, a bad one, a malformed header: REST's 401, before the schema is reached.
    let none = send(s.http.post(s.url("/v1/graphql")).json(&introspect)).await;
    assert_error(&none, 401, "unauthorized");
    let rest_none = send(s.http.get(s.url("/v1/sinks"))).await;
    assert_eq!(none.1, rest_none.1, "the same 401 body as REST");
    assert!(none.1.get("data").is_none());
    let bad = send(
        s.http
            .post(s.url("/v1/graphql"))
            .bearer_auth("not-a-key")
            .json(&introspect),
    )
    .await;
    assert_error(&bad, 401, "unauthorized");
    let malformed = send(
        s.http
            .post(s.url("/v1/graphql"))
            .header("authorization", "Basic Zm9vOmJhcg==")
            .json(&introspect),
    )
    .await;
    assert_error(&malformed, 401, "unauthorized");

    // Any valid token may introspect and read the sink kinds.
    let schema = gql(
        &s,
        &reader,
        "{ __schema { queryType { name } mutationType { name } } }",
        json!({}),
    )
    .await;
    assert_eq!(schema["data"]["__schema"]["queryType"]["name"], "Query", "{schema}");
    assert_eq!(schema["data"]["__schema"]["mutationType"]["name"], "Mutation");
    let kinds = gql(&s, &reader, "{ sinkKinds { kind } }", json!({})).await;
    assert!(kinds.get("errors").is_none(), "{kinds}");

    // Without `manage`: forbidden, REST's message.
    let rest = send(s.http.get(s.url("/v1/sinks")).bearer_auth(&reader)).await;
    assert_error(&rest, 403, "forbidden");
    let listed = gql(&s, &reader, "{ sinks { edges { node { id } } } }", json!({})).await;
    assert_code(&listed, "forbidden");
    assert_eq!(only_error(&listed)["message"], rest.1["error"]["message"]);
    let created = gql(
        &s,
        &reader,
        CREATE,
        json!({ "input": { "name": "x", "kind": "webhook", "config": { "url": "https://siem.example.com/x" } } }),
    )
    .await;
    assert_code(&created, "forbidden");

    // GET is not accepted: REST's 405.
    let get = send(
        s.http
            .get(s.url("/v1/graphql?query=%7B__typename%7D"))
            .bearer_auth(&s.admin),
    )
    .await;
    assert_error(&get, 405, "method_not_allowed");

    // A body that is no GraphQL request: REST's errors, naming the field.
    let no_query = send(s.http.post(s.url("/v1/graphql")).bearer_auth(&s.admin).json(&json!({}))).await;
    assert_error(&no_query, 400, "invalid_request");
    assert_eq!(no_query.1["error"]["detail"]["field"], "query");
    let bad_vars = send(
        s.http
            .post(s.url("/v1/graphql"))
            .bearer_auth(&s.admin)
            .json(&json!({ "query": "{ __typename }", "variables": [1] })),
    )
    .await;
    assert_error(&bad_vars, 400, "invalid_request");
    assert_eq!(bad_vars.1["error"]["detail"]["field"], "variables");
    let text = send(
        s.http
            .post(s.url("/v1/graphql"))
            .bearer_auth(&s.admin)
            .header("content-type", "application/graphql")
            .body("{ __typename }"),
    )
    .await;
    assert_error(&text, 415, "unsupported_media_type");
}

/// `{ __schema { types { fields { type { ofType … { name } } } } } }` with `levels` of `ofType`:
/// 5 + levels deep.
fn introspection_of_depth(depth: usize) -> String {
    let levels = depth - 5;
    format!(
        "{{ __schema {{ types {{ fields {{ type {{ {}name{} }} }} }} }} }}",
        "ofType { ".repeat(levels),
        " }".repeat(levels)
    )
}

/// graphql-js's `getIntrospectionQuery()` with `levels` of `ofType` in `TypeRef` (it has 7).
fn standard_introspection(levels: usize) -> String {
    let type_ref = format!(
        "kind name {}{}",
        "ofType { kind name ".repeat(levels),
        "}".repeat(levels)
    );
    format!(
        "query IntrospectionQuery {{ __schema {{ queryType {{ name }} mutationType {{ name }} subscriptionType {{ name }}
           types {{ ...FullType }} directives {{ name description locations args {{ ...InputValue }} }} }} }}
         fragment FullType on __Type {{ kind name description
           fields(includeDeprecated: true) {{ name description args {{ ...InputValue }} type {{ ...TypeRef }} isDeprecated deprecationReason }}
           inputFields {{ ...InputValue }} interfaces {{ ...TypeRef }}
           enumValues(includeDeprecated: true) {{ name description isDeprecated deprecationReason }}
           possibleTypes {{ ...TypeRef }} }}
         fragment InputValue on __InputValue {{ name description type {{ ...TypeRef }} defaultValue }}
         fragment TypeRef on __Type {{ {type_ref} }}"
    )
}

/// A type reference read to its end names a type (no wrapper left unresolved).
fn resolved(type_ref: &Value) -> bool {
    match type_ref["kind"].as_str() {
        Some("NON_NULL" | "LIST") => resolved(&type_ref["ofType"]),
        Some(_) => type_ref["name"].is_string(),
        None => false,
    }
}

#[tokio::test]
async fn introspection_for_tools_fits_the_depth_limit_with_four_of_type_levels() {
    let s = TestServer::spawn();
    s.create_tenant("acme").await;
    // Tools introspect with whatever key they hold: `read` is enough.
    let reader = s.create_key("acme", &["read"]).await;
    let standard = gql(&s, &reader, &standard_introspection(7), json!({})).await;
    assert_code(&standard, "invalid_request");
    let fitted = gql(&s, &reader, &standard_introspection(4), json!({})).await;
    assert!(fitted.get("errors").is_none(), "{fitted}");
    let types = fitted["data"]["__schema"]["types"].as_array().unwrap();
    let mut refs = 0;
    for t in types {
        for f in t["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(t["inputFields"].as_array().into_iter().flatten())
        {
            assert!(
                resolved(&f["type"]),
                "{}.{} is not fully described: {}",
                t["name"],
                f["name"],
                f["type"]
            );
            refs += 1;
            for a in f["args"].as_array().into_iter().flatten() {
                assert!(
                    resolved(&a["type"]),
                    "{}.{}({}) is not fully described",
                    t["name"],
                    f["name"],
                    a["name"]
                );
            }
        }
    }
    assert!(refs > 100, "only {refs} fields described");
    assert!(types.iter().any(|t| t["name"] == "Sink"));
}

#[tokio::test]
async fn deep_or_costly_queries_are_refused_and_first_is_bounded() {
    let s = TestServer::spawn();
    let ten = gql(&s, &s.admin, &introspection_of_depth(10), json!({})).await;
    assert!(ten.get("errors").is_none(), "depth 10 is accepted: {ten}");
    assert!(ten["data"]["__schema"]["types"].is_array());
    let eleven = gql(&s, &s.admin, &introspection_of_depth(11), json!({})).await;
    assert_code(&eleven, "invalid_request");
    assert!(
        only_error(&eleven)["message"].as_str().unwrap().contains("too deep"),
        "{eleven}"
    );
    assert!(eleven["data"].is_null(), "nothing ran: {eleven}");

    // Cost: every alias of a page read costs 10 more than its fields.
    let aliases = |n: usize| {
        let fields: Vec<String> = (0..n)
            .map(|i| format!("a{i}: sinks {{ edges {{ cursor }} }}"))
            .collect();
        format!("{{ {} }}", fields.join(" "))
    };
    let cheap = gql(&s, &s.admin, &aliases(5), json!({})).await;
    assert!(cheap.get("errors").is_none(), "{cheap}");
    let costly = gql(&s, &s.admin, &aliases(100), json!({})).await;
    assert_code(&costly, "invalid_request");
    assert!(
        only_error(&costly)["message"].as_str().unwrap().contains("complex"),
        "{costly}"
    );
    assert!(costly["data"].is_null());
    // A delivery costs 100 more: ten test deliveries in one request are refused, none is sent.
    let deliveries: Vec<String> = (0..10)
        .map(|i| format!("t{i}: testSink(id: \"snk_x\") {{ delivered }}"))
        .collect();
    let many = gql(
        &s,
        &s.admin,
        &format!("mutation {{ {} }}", deliveries.join(" ")),
        json!({}),
    )
    .await;
    assert_code(&many, "invalid_request");
    assert!(many["data"].is_null(), "{many}");
    let nine = gql(
        &s,
        &s.admin,
        &format!("mutation {{ {} }}", deliveries[..9].join(" ")),
        json!({}),
    )
    .await;
    // Nine are accepted: they run, and fail on the missing sink, not on the cost.
    let errors = nine["errors"].as_array().unwrap();
    assert!(!errors.is_empty(), "{nine}");
    assert!(errors.iter().all(|e| e["extensions"]["code"] == "not_found"), "{nine}");

    // `first` as REST's `limit`: 0 is refused naming it, past 1000 is served as 1000.
    let zero = gql(&s, &s.admin, "{ sinks(first: 0) { edges { cursor } } }", json!({})).await;
    assert_code(&zero, "invalid_parameter");
    assert_eq!(only_error(&zero)["extensions"]["parameter"], "first");
    let huge = gql(&s, &s.admin, "{ sinks(first: 100000) { edges { cursor } } }", json!({})).await;
    assert!(huge.get("errors").is_none(), "{huge}");
}

#[tokio::test]
async fn test_sink_returns_the_receivers_status() {
    let s = support::server();
    s.create_tenant("acme").await;
    let r = Receiver::start().await;
    let created = gql(
        &s,
        &s.admin,
        CREATE,
        json!({ "input": { "name": "t", "kind": "webhook", "tenant": "acme", "config": { "url": r.url() } } }),
    )
    .await;
    let id = created["data"]["createSink"]["sink"]["id"].as_str().unwrap().to_owned();
    let test = "mutation($id: ID!) { testSink(id: $id) { delivered outcome status latencyMs error } }";
    let ok = gql(&s, &s.admin, test, json!({ "id": id })).await;
    let result = &ok["data"]["testSink"];
    assert_eq!(result["delivered"], true, "{ok}");
    assert_eq!(result["status"], 200);
    assert_eq!(result["error"], Value::Null);
    assert!(result["latencyMs"].as_f64().is_some_and(|ms| ms >= 0.0), "{ok}");
    let requests = r.requests();
    assert_eq!(requests.len(), 1, "one synthetic delivery");
    assert_eq!(requests[0].events()[0]["type"], "system.test");

    r.push([Fault::status(503)]);
    let failed = gql(&s, &s.admin, test, json!({ "id": id })).await;
    assert!(
        failed.get("errors").is_none(),
        "a refused test is an answer, not an error: {failed}"
    );
    let result = &failed["data"]["testSink"];
    assert_eq!(result["delivered"], false, "{failed}");
    assert_eq!(result["status"], 503);
    assert!(result["error"].as_str().is_some_and(|e| !e.is_empty()));
    // REST answers the same shape, snake_case.
    let (status, rest) = send(
        s.http
            .post(s.url(&format!("/v1/sinks/{id}/test")))
            .bearer_auth(&s.admin),
    )
    .await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["delivered"], true);
    assert!(rest["latency_ms"].is_number());
}

#[tokio::test]
async fn relay_pages_walk_the_rest_pages() {
    let s = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    s.create_tenant("acme").await;
    for n in 0..3 {
        let (status, body) = rest_create(
            &s,
            &s.admin,
            &json!({ "name": format!("s{n}"), "kind": "webhook", "tenant": "acme", "config": { "url": "http://127.0.0.1:9/h" } }),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let page = "query($first: Int, $after: String) { sinks(first: $first, after: $after) {
        edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";
    let first = gql(&s, &s.admin, page, json!({ "first": 2 })).await;
    let conn = &first["data"]["sinks"];
    let edges = conn["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2, "{first}");
    assert_eq!(conn["pageInfo"]["hasNextPage"], true);
    assert_eq!(conn["pageInfo"]["hasPreviousPage"], false);
    assert_eq!(conn["pageInfo"]["startCursor"], edges[0]["cursor"]);
    assert_eq!(conn["pageInfo"]["endCursor"], edges[1]["cursor"]);
    // The cursors are REST's: `next_cursor` of the same page is `endCursor`.
    let (_, rest_page) = send(s.http.get(s.url("/v1/sinks?limit=2")).bearer_auth(&s.admin)).await;
    assert_eq!(rest_page["next_cursor"], conn["pageInfo"]["endCursor"]);

    let second = gql(
        &s,
        &s.admin,
        page,
        json!({ "first": 2, "after": conn["pageInfo"]["endCursor"] }),
    )
    .await;
    let conn2 = &second["data"]["sinks"];
    assert_eq!(conn2["edges"].as_array().unwrap().len(), 1, "{second}");
    assert_eq!(conn2["pageInfo"]["hasNextPage"], false);

    let mut walked: Vec<Value> = edges.iter().map(|e| e["node"]["id"].clone()).collect();
    walked.push(conn2["edges"][0]["node"]["id"].clone());
    let (_, all) = send(s.http.get(s.url("/v1/sinks")).bearer_auth(&s.admin)).await;
    let rest_ids: Vec<Value> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    assert_eq!(walked, rest_ids, "two pages walk every sink once, in REST's order");

    // A full last page: REST still hands out a cursor, Relay's hasNextPage is exact.
    let exact = gql(&s, &s.admin, page, json!({ "first": 3 })).await;
    assert_eq!(exact["data"]["sinks"]["edges"].as_array().unwrap().len(), 3);
    assert_eq!(exact["data"]["sinks"]["pageInfo"]["hasNextPage"], false, "{exact}");
}

#[tokio::test]
async fn dead_letters_retry_and_replay_over_graphql() {
    let s = support::server();
    s.create_tenant("acme").await;
    let r = Receiver::start().await;
    // The first batch is refused (400): a dead letter at once, no retries.
    r.push([Fault::status(400)]);
    let sink = support::webhook(&s, "acme", &r, json!({})).await;
    let id = sink["id"].as_str().unwrap().to_owned();
    support::ingest(&s, "acme", 1, 1).await;
    support::wait_until("a dead letter", Duration::from_secs(10), || async {
        !support::get(&s, &format!("/v1/sinks/{id}/dead-letters")).await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    })
    .await;
    let rest = support::get(&s, &format!("/v1/sinks/{id}/dead-letters")).await;
    let letters = "query($id: ID!) { deadLetters(sinkId: $id, first: 10) {
        edges { cursor node { id sinkId tenant firstOffset lastOffset eventCount reason createdAt
        attempts { attempt at outcome status error latencyMs } } } pageInfo { hasNextPage endCursor } } }";
    let got = gql(&s, &s.admin, letters, json!({ "id": id })).await;
    let edges = got["data"]["deadLetters"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1, "{got}");
    let node = &edges[0]["node"];
    let dl = &rest["items"][0];
    assert_eq!(node["id"], dl["id"]);
    assert_eq!(node["sinkId"], id);
    assert_eq!(node["tenant"], "acme");
    assert_eq!(node["firstOffset"], dl["first_offset"]);
    assert_eq!(node["eventCount"], 1);
    assert_eq!(node["reason"], dl["reason"]);
    assert_eq!(node["attempts"][0]["status"], 400, "{got}");
    assert_eq!(
        node["attempts"].as_array().unwrap().len(),
        dl["attempts"].as_array().unwrap().len()
    );
    assert_eq!(got["data"]["deadLetters"]["pageInfo"]["hasNextPage"], false);

    // A retry the receiver refuses: REST's `delivery_failed`, the attempt in the extensions.
    let retry = "mutation($sink: ID!, $dl: ID!) { retryDeadLetter(sinkId: $sink, id: $dl) { delivered status outcome latencyMs } }";
    let dl_id = node["id"].as_str().unwrap();
    r.push([Fault::status(503)]);
    let refused = gql(&s, &s.admin, retry, json!({ "sink": id, "dl": dl_id })).await;
    let e = only_error(&refused);
    assert_eq!(e["extensions"]["code"], "delivery_failed", "{refused}");
    assert_eq!(e["extensions"]["attempt"]["status"], 503);
    assert_eq!(e["extensions"]["dead_letter_id"], dl_id);
    // Accepted now: the attempt, and the dead letter is gone on both surfaces.
    let retried = gql(&s, &s.admin, retry, json!({ "sink": id, "dl": dl_id })).await;
    assert_eq!(retried["data"]["retryDeadLetter"]["delivered"], true, "{retried}");
    assert_eq!(retried["data"]["retryDeadLetter"]["status"], 200);
    let empty = gql(&s, &s.admin, letters, json!({ "id": id })).await;
    assert_eq!(empty["data"]["deadLetters"]["edges"], json!([]), "{empty}");
    let rest = support::get(&s, &format!("/v1/sinks/{id}/dead-letters")).await;
    assert_eq!(rest["items"], json!([]));

    // Replay offset 1 to the head; its progress reads the same on both surfaces.
    let replayed = gql(
        &s,
        &s.admin,
        "mutation($id: ID!) { replaySink(id: $id, from: \"1\") { id sinkId tenant fromOffset toOffset state } }",
        json!({ "id": id }),
    )
    .await;
    let replay = &replayed["data"]["replaySink"];
    assert_eq!(replay["fromOffset"], 1, "{replayed}");
    assert_eq!(replay["toOffset"], 1);
    assert_eq!(replay["tenant"], "acme");
    let replay_id = replay["id"].as_str().unwrap().to_owned();
    support::wait_until("the replay to finish", Duration::from_secs(10), || async {
        let got = gql(
            &s,
            &s.admin,
            "query($sink: ID!, $id: ID!) { replay(sinkId: $sink, id: $id) { state deliveredEvents } }",
            json!({ "sink": id, "id": replay_id }),
        )
        .await;
        got["data"]["replay"]["state"] == "completed"
    })
    .await;
    let rest_replay = support::get(&s, &format!("/v1/sinks/{id}/replays/{replay_id}")).await;
    assert_eq!(rest_replay["state"], "completed");
    assert_eq!(rest_replay["delivered_events"], 1);
    // An empty range: REST's field and message.
    let empty_range = gql(
        &s,
        &s.admin,
        "mutation($id: ID!) { replaySink(id: $id, from: \"5\") { id } }",
        json!({ "id": id }),
    )
    .await;
    let e = only_error(&empty_range);
    assert_eq!(e["extensions"]["code"], "invalid_request", "{empty_range}");
    assert_eq!(e["extensions"]["field"], "from");
}

#[tokio::test]
async fn sink_kinds_list_what_rest_accepts() {
    let s = TestServer::spawn();
    let got = gql(
        &s,
        &s.admin,
        "{ sinkKinds { kind formats defaultFormat secrets { name required } configSchema defaults } }",
        json!({}),
    )
    .await;
    let kinds = got["data"]["sinkKinds"].as_array().unwrap();
    let webhook = kinds.iter().find(|k| k["kind"] == "webhook").unwrap();
    assert_eq!(webhook["formats"], json!(["json"]), "{got}");
    assert_eq!(webhook["defaultFormat"], "json");
    assert_eq!(webhook["secrets"][0]["name"], "signing_secret");
    assert_eq!(webhook["defaults"]["retry"]["max_attempts"], 8);
    for k in kinds {
        let formats = k["formats"].as_array().unwrap();
        assert!(formats.contains(&k["defaultFormat"]), "{k}");
    }
    for kind in [
        "splunk_hec",
        "sentinel",
        "elastic",
        "datadog",
        "generic_https",
        "s3",
        "syslog",
    ] {
        assert!(kinds.iter().any(|k| k["kind"] == kind), "{kind} missing: {got}");
    }
    // The same document as REST's, field for field: one source for both.
    let (status, rest) = common::send(s.http.get(s.url("/v1/sink-kinds")).bearer_auth(&s.admin)).await;
    assert_eq!(status, 200, "{rest}");
    let rest = rest["kinds"].as_array().unwrap();
    assert_eq!(rest.len(), kinds.len());
    for (r, g) in rest.iter().zip(kinds) {
        assert_eq!(r["kind"], g["kind"]);
        assert_eq!(r["config_schema"], g["configSchema"], "{}", r["kind"]);
        assert!(g["configSchema"]["properties"].is_object(), "{g}");
        assert_eq!(r["defaults"], g["defaults"]);
        let names = |v: &Value, req: &str| -> Vec<(Value, Value)> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| (x["name"].clone(), x[req].clone()))
                .collect()
        };
        assert_eq!(names(&r["secrets"], "required"), names(&g["secrets"], "required"));
    }
}

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
