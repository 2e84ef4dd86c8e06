//! Both surfaces write and read the same sinks; auth, tenants and the SSRF guard are REST's.

use super::*;

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
