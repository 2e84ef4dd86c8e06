//! Operations that run jobs: test, pages, dead letters, replay, kinds.

use super::*;

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
