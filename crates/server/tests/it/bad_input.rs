//! Every bad input api.md names gets its documented status and JSON error, and nothing from a
//! rejected request is stored: each test snapshots both tenants' logs before and after, and
//! finally appends one valid event to prove no offset was consumed.

use crate::common;

use common::{assert_error, ids, offsets, send, TestServer};
use serde_json::{json, Value};

const JSON: &str = "application/json";
const NDJSON: &str = "application/x-ndjson";

/// A server with tenants `acme` (one seeded event) and `bravo` (one seeded event), and keys.
struct Fixture {
    server: TestServer,
    /// acme: ingest + read + manage.
    acme: String,
    acme_read: String,
    acme_ingest: String,
    bravo: String,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture::with_args(&[]).await
    }

    async fn with_args(args: &[&str]) -> Fixture {
        let server = TestServer::spawn_with(args, &[]);
        server.create_tenant("acme").await;
        server.create_tenant("bravo").await;
        let acme = server.create_key("acme", &["ingest", "read", "manage"]).await;
        let acme_read = server.create_key("acme", &["read"]).await;
        let acme_ingest = server.create_key("acme", &["ingest"]).await;
        let bravo = server.create_key("bravo", &["ingest", "read"]).await;
        for (key, id) in [(&acme, "acme-seed"), (&bravo, "bravo-seed")] {
            let r = server.post_json(key, &json!({"type": "seed.event", "id": id})).await;
            assert_eq!(r.0, 202, "{}", r.1);
        }
        Fixture {
            server,
            acme,
            acme_read,
            acme_ingest,
            bravo,
        }
    }

    async fn snapshot(&self) -> (Vec<Value>, Vec<Value>) {
        (self.server.read_log("acme").await, self.server.read_log("bravo").await)
    }

    /// Asserts the logs are unchanged since `before`, and that the next valid append in each
    /// tenant gets the next offset (nothing consumed one).
    async fn assert_nothing_stored(&self, before: &(Vec<Value>, Vec<Value>)) {
        let now = self.snapshot().await;
        assert_eq!(now.0, before.0, "a rejected request changed acme's log");
        assert_eq!(now.1, before.1, "a rejected request changed bravo's log");
        for (key, log) in [(&self.acme, &before.0), (&self.bravo, &before.1)] {
            let r = self.server.post_json(key, &json!({"type": "probe.after"})).await;
            assert_eq!(r.0, 202, "{}", r.1);
            assert_eq!(
                r.1["events"][0]["offset"],
                log.len() as u64 + 1,
                "an offset was consumed"
            );
        }
    }

    async fn post(&self, body: impl Into<reqwest::Body>, content_type: &str) -> (u16, Value) {
        self.server.post_events(&self.acme, body, content_type).await
    }
}

#[track_caller]
fn assert_detail(got: &(u16, Value), key: &str, expected: Value) {
    assert_eq!(got.1["error"]["detail"][key], expected, "detail.{key} in {}", got.1);
}

#[tokio::test]
async fn malformed_json_and_invalid_events_name_index_and_field() {
    let fx = Fixture::new().await;
    let before = fx.snapshot().await;

    // Malformed JSON.
    for body in [
        r#"{"type": "a.b","#,
        r#"[{"type":"a.b"}, {nope}]"#,
        r#"{"type": "a.b"} trailing"#,
        "42",
        r#""a string""#,
        "nul\u{0}l",
    ] {
        let r = fx.post(body, JSON).await;
        assert_error(&r, 400, "invalid_json");
        assert!(r.1["error"]["detail"]["line"].is_u64(), "line in {}", r.1);
    }
    let r = fx.post("{\"type\":\"a.b\"}\n{nope\n", NDJSON).await;
    assert_error(&r, 400, "invalid_json");
    assert_detail(&r, "index", json!(1));
    assert_detail(&r, "line", json!(2));

    // Empty requests.
    for (body, ct) in [("", JSON), ("  \n", JSON), ("[]", JSON), ("\n\n", NDJSON)] {
        assert_error(&fx.post(body, ct).await, 400, "empty_request");
    }

    // Invalid fields: (event, field). Each sent as event #1 of a two-event batch, and alone.
    let cases: Vec<(Value, &str)> = vec![
        (json!({"type": "Bad Type"}), "type"),
        (json!({"type": "nodot"}), "type"),
        (json!({"type": "a..b"}), "type"),
        (json!({"type": "x".repeat(127) + ".y"}), "type"),
        (json!({"type": 5}), "type"),
        (json!({"severity": 3}), "type"),
        (json!({"type": "a.b", "severity": 11}), "severity"),
        (json!({"type": "a.b", "severity": -1}), "severity"),
        (json!({"type": "a.b", "severity": 2.5}), "severity"),
        (json!({"type": "a.b", "severity": "9"}), "severity"),
        (json!({"type": "a.b", "outcome": "ok"}), "outcome"),
        (json!({"type": "a.b", "occurred_at": "yesterday"}), "occurred_at"),
        (
            json!({"type": "a.b", "actor": {"ip_address": "not-an-ip"}}),
            "actor.ip_address",
        ),
        (json!({"type": "a.b", "actor": {"role": "admin"}}), "actor.role"),
        (json!({"type": "a.b", "actor": "usr_1"}), "actor"),
        (json!({"type": "a.b", "metadata": [1]}), "metadata"),
        (json!({"type": "a.b", "changes": "x"}), "changes"),
        (json!({"type": "a.b", "extra": 1}), "extra"),
        (json!({"type": "a.b", "id": ""}), "id"),
        (json!({"type": "a.b", "id": "has space"}), "id"),
        (json!({"type": "a.b", "tenant_id": "Not Valid"}), "tenant_id"),
        (json!({"type": "a.b", "action": 7}), "action"),
        (json!({"type": "a.b", "source": {"service": 1}}), "source.service"),
    ];
    for (event, field) in cases {
        let r = fx.server.post_json(&fx.acme, &event).await;
        assert_error(&r, 400, "invalid_event");
        assert_detail(&r, "field", json!(field));
        assert_detail(&r, "index", json!(0));
        let r = fx
            .server
            .post_json(&fx.acme, &json!([{"type": "fine.event"}, event]))
            .await;
        assert_error(&r, 400, "invalid_event");
        assert_detail(&r, "field", json!(field));
        assert_detail(&r, "index", json!(1));
        let nd = format!("{}\n{}\n", json!({"type": "fine.event"}), event);
        let r = fx.post(nd, NDJSON).await;
        assert_error(&r, 400, "invalid_event");
        assert_detail(&r, "field", json!(field));
        assert_detail(&r, "index", json!(1));
    }
    // A non-object element of an array.
    let r = fx.post(r#"[{"type":"a.b"}, 7]"#, JSON).await;
    assert_error(&r, 400, "invalid_event");
    assert_detail(&r, "index", json!(1));

    // The operator must name the tenant; an unknown tenant is 404.
    let r = fx
        .server
        .post_json(
            &fx.server.admin,
            &json!([{"type": "a.b", "tenant_id": "acme"}, {"type": "a.b"}]),
        )
        .await;
    assert_error(&r, 400, "invalid_event");
    assert_detail(&r, "field", json!("tenant_id"));
    assert_detail(&r, "index", json!(1));
    let r = fx
        .server
        .post_events_to("/v1/events?tenant=nosuch", &fx.server.admin, r#"{"type":"a.b"}"#, JSON)
        .await;
    assert_error(&r, 404, "not_found");
    let r = fx
        .server
        .post_json(
            &fx.server.admin,
            &json!([{"type": "a.b", "tenant_id": "acme"}, {"type": "a.b", "tenant_id": "nosuch"}]),
        )
        .await;
    assert_error(&r, 404, "not_found");

    fx.assert_nothing_stored(&before).await;
}

#[tokio::test]
async fn one_invalid_event_rejects_the_whole_batch() {
    let fx = Fixture::new().await;
    let before = fx.snapshot().await;

    let mut batch: Vec<Value> = (0..5)
        .map(|i| json!({"type": "batch.item", "id": format!("bt-{i}")}))
        .collect();
    batch[3] = json!({"type": "Batch Item", "id": "bt-3"});
    let r = fx.server.post_json(&fx.acme, &Value::Array(batch.clone())).await;
    assert_error(&r, 400, "invalid_event");
    assert_detail(&r, "index", json!(3));
    assert_detail(&r, "field", json!("type"));
    let nd: String = batch.iter().map(|e| format!("{e}\n")).collect();
    let r = fx.post(nd, NDJSON).await;
    assert_error(&r, 400, "invalid_event");
    assert_detail(&r, "index", json!(3));

    // Same with the bad event last and a too-large one in the middle.
    let mut batch2 = batch.clone();
    batch2[3] = json!({"type": "batch.item", "id": "bt-3"});
    batch2[4] = json!({"type": "batch.item", "id": "bt-4", "severity": 11});
    let r = fx.server.post_json(&fx.acme, &Value::Array(batch2.clone())).await;
    assert_error(&r, 400, "invalid_event");
    assert_detail(&r, "index", json!(4));
    assert_detail(&r, "field", json!("severity"));

    let snap = fx.snapshot().await;
    assert_eq!(snap, before, "a rejected batch stored something");

    // The ids were not reserved: the corrected batch is stored fresh, offsets 2..6.
    batch2[4] = json!({"type": "batch.item", "id": "bt-4"});
    let r = fx.server.post_json(&fx.acme, &Value::Array(batch2)).await;
    assert_eq!(r.0, 202, "{}", r.1);
    for (i, e) in r.1["events"].as_array().expect("events").iter().enumerate() {
        assert_eq!(e["offset"], i as u64 + 2, "{}", r.1);
        assert!(e.get("duplicate").is_none_or(|d| d == false), "{}", r.1);
    }
    let log = fx.server.read_log("acme").await;
    assert_eq!(ids(&log), ["acme-seed", "bt-0", "bt-1", "bt-2", "bt-3", "bt-4"]);
}

/// An event of exactly `size` bytes of JSON.
fn event_of_size(size: usize) -> String {
    let shell = r#"{"type":"big.event","metadata":{"pad":""}}"#;
    let pad = "p".repeat(size - shell.len());
    let ev = format!(r#"{{"type":"big.event","metadata":{{"pad":"{pad}"}}}}"#);
    assert_eq!(ev.len(), size);
    ev
}

#[tokio::test]
async fn size_limits_answer_413_with_json_errors() {
    let fx = Fixture::new().await;
    let before = fx.snapshot().await;

    // One event over 64 KiB, alone and as #1 of a batch.
    let over = event_of_size(64 * 1024 + 1);
    let r = fx.post(over.clone(), JSON).await;
    assert_error(&r, 413, "event_too_large");
    assert_detail(&r, "index", json!(0));
    assert_detail(&r, "limit", json!(65536));
    let r = fx.post(format!(r#"[{{"type":"a.b"}},{over}]"#), JSON).await;
    assert_error(&r, 413, "event_too_large");
    assert_detail(&r, "index", json!(1));
    let r = fx.post(format!("{{\"type\":\"a.b\"}}\n{over}\n"), NDJSON).await;
    assert_error(&r, 413, "event_too_large");
    assert_detail(&r, "index", json!(1));

    // A request over 5 MiB, with a Content-Length and chunked: the client reads the 413.
    let item = event_of_size(60_000);
    let big = format!("[{}]", vec![item.as_str(); 90].join(","));
    assert!(big.len() > 5 * 1024 * 1024);
    let r = fx.post(big.clone(), JSON).await;
    assert_error(&r, 413, "request_too_large");
    assert_detail(&r, "limit", json!(5 * 1024 * 1024));
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.as_bytes().chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let r = fx
        .post(reqwest::Body::wrap_stream(futures::stream::iter(chunks)), JSON)
        .await;
    assert_error(&r, 413, "request_too_large");
    // Far over the limit (40 MiB of NDJSON), still read and answered.
    let huge = vec![b'\n'; 40 * 1024 * 1024];
    let r = fx.post(huge, NDJSON).await;
    assert_error(&r, 413, "request_too_large");

    // 10,001 events.
    let many = format!("[{}]", vec![r#"{"type":"a.b"}"#; 10_001].join(","));
    let r = fx.post(many, JSON).await;
    assert_error(&r, 413, "too_many_events");
    assert_detail(&r, "count", json!(10_001));
    assert_detail(&r, "limit", json!(10_000));
    let many_nd = vec![r#"{"type":"a.b"}"#; 10_001].join("\n");
    let r = fx.post(many_nd, NDJSON).await;
    assert_error(&r, 413, "too_many_events");
    assert_detail(&r, "limit", json!(10_000));

    fx.assert_nothing_stored(&before).await;

    // At the limits exactly: accepted.
    let at = event_of_size(64 * 1024);
    let r = fx.post(at, JSON).await;
    assert_eq!(r.0, 202, "an event of exactly 64 KiB: {}", r.1);
    let max = vec![r#"{"type":"a.b"}"#; 10_000].join("\n");
    let r = fx.post(max, NDJSON).await;
    assert_eq!(r.0, 202, "10,000 events: {}", r.1);
    assert_eq!(r.1["accepted"], 10_000);
}

#[tokio::test]
async fn content_type_and_encoding_errors() {
    let fx = Fixture::new().await;
    let before = fx.snapshot().await;
    let ok = r#"{"type":"a.b"}"#;

    for ct in [
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let r = fx.post(ok, ct).await;
        assert_error(&r, 415, "unsupported_media_type");
    }
    // No Content-Type at all.
    let r = send(
        fx.server
            .http
            .post(fx.server.url("/v1/events"))
            .bearer_auth(&fx.acme)
            .body(ok),
    )
    .await;
    assert_error(&r, 415, "unsupported_media_type");
    // Management routes too.
    let r = send(
        fx.server
            .http
            .post(fx.server.url("/v1/tenants"))
            .bearer_auth(&fx.server.admin)
            .header("content-type", "text/plain")
            .body(r#"{"id":"zed"}"#),
    )
    .await;
    assert_error(&r, 415, "unsupported_media_type");

    // Invalid UTF-8, in JSON and NDJSON.
    let r = fx.post(b"{\"type\":\"a.\xff\"}".to_vec(), JSON).await;
    assert_error(&r, 400, "invalid_utf8");
    assert_detail(&r, "byte_offset", json!(11));
    let r = fx
        .post(
            b"{\"type\":\"a.b\"}\n{\"type\":\"a.b\",\"action\":\"\xc3\x28\"}\n".to_vec(),
            NDJSON,
        )
        .await;
    assert_error(&r, 400, "invalid_utf8");
    // An overlong encoding and a lone surrogate (CESU) are invalid UTF-8 as well.
    let r = fx
        .post(b"{\"type\":\"a.b\",\"action\":\"\xc0\xaf\"}".to_vec(), JSON)
        .await;
    assert_error(&r, 400, "invalid_utf8");
    let r = fx
        .post(b"{\"type\":\"a.b\",\"action\":\"\xed\xa0\x80\"}".to_vec(), JSON)
        .await;
    assert_error(&r, 400, "invalid_utf8");

    fx.assert_nothing_stored(&before).await;

    // Parameters on the media type are fine.
    let r = fx.post(ok, "application/json; charset=utf-8").await;
    assert_eq!(r.0, 202, "{}", r.1);
}

#[tokio::test]
async fn deeply_nested_json_is_refused_and_the_server_stays_up() {
    let fx = Fixture::new().await;
    let before = fx.snapshot().await;
    let depth = 100_000;

    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!(
        r#"{{"type":"a.b","metadata":{}1{}}}"#,
        r#"{"a":"#.repeat(depth),
        "}".repeat(depth)
    );
    let unclosed = "[".repeat(depth);
    for (body, ct) in [
        (arrays.clone(), JSON),
        (arrays.clone(), NDJSON),
        (objects.clone(), JSON),
        (objects.clone(), NDJSON),
        (unclosed.clone(), JSON),
    ] {
        let r = fx.post(body, ct).await;
        assert!((400..500).contains(&r.0), "status {}: {}", r.0, r.1);
        assert!(r.1["error"]["code"].is_string(), "{}", r.1);
        assert!(fx.server.healthy().await, "the server died on deep nesting");
    }
    // Within the size limits, the nesting itself is refused.
    let within = format!(
        r#"{{"type":"a.b","metadata":{}1{}}}"#,
        r#"{"a":"#.repeat(10_000),
        "}".repeat(10_000)
    );
    assert!(within.len() < 64 * 1024);
    assert_error(&fx.post(within, JSON).await, 400, "invalid_json");
    // Management routes.
    let r = send(
        fx.server
            .http
            .post(fx.server.url("/v1/tenants"))
            .bearer_auth(&fx.server.admin)
            .header("content-type", JSON)
            .body(format!(r#"{{"id":{arrays}}}"#)),
    )
    .await;
    assert!((400..500).contains(&r.0), "status {}: {}", r.0, r.1);
    assert!(fx.server.healthy().await);
    fx.assert_nothing_stored(&before).await;

    // With the event limit raised so the parser itself meets 100,000 levels.
    let roomy = Fixture::with_args(&["--max-event-bytes", "10000000"]).await;
    for body in [arrays, objects] {
        let r = roomy.post(body, JSON).await;
        assert_error(&r, 400, "invalid_json");
        assert!(roomy.server.healthy().await, "the server died on deep nesting");
    }
}

#[tokio::test]
async fn missing_bad_and_under_scoped_tokens() {
    let fx = Fixture::new().await;
    let before = fx.snapshot().await;
    let s = &fx.server;
    let ev = r#"{"type":"a.b"}"#;

    // Missing token, on every kind of /v1 route (the body is not even looked at).
    let no_auth = [
        s.http.post(s.url("/v1/events")).header("content-type", JSON).body(ev),
        s.http
            .post(s.url("/v1/events"))
            .header("content-type", "text/plain")
            .body("junk"),
        s.http.get(s.url("/v1/events?after=0")),
        s.http.get(s.url("/v1/events?tenant=acme")),
        s.http.get(s.url("/v1/stream")),
        s.http.post(s.url("/v1/tenants")).json(&json!({"id": "zed"})),
        s.http.get(s.url("/v1/tenants")),
        s.http
            .post(s.url("/v1/tenants/acme/keys"))
            .json(&json!({"scopes": ["read"]})),
    ];
    for req in no_auth {
        assert_error(&send(req).await, 401, "unauthorized");
    }
    // Bad tokens and malformed headers.
    for header in [
        "Bearer nope",
        "Bearer ark_0000000000000000000000000000",
        "Bearer ",
        "Bearer",
        "Basic YWRtaW46YWRtaW4=",
        "itest-operator-token-0123456789abcdef",
    ] {
        let r = send(
            s.http
                .post(s.url("/v1/events"))
                .header("authorization", header)
                .header("content-type", JSON)
                .body(ev),
        )
        .await;
        assert_error(&r, 401, "unauthorized");
        let r = send(s.http.get(s.url("/v1/events")).header("authorization", header)).await;
        assert_error(&r, 401, "unauthorized");
    }
    // A near miss of the operator token.
    let r = s.poll(&format!("{}x", s.admin), "tenant=acme").await;
    assert_error(&r, 401, "unauthorized");

    // Valid key, missing scope: 403.
    assert_error(&s.post_events(&fx.acme_read, ev, JSON).await, 403, "forbidden");
    assert_error(&s.poll(&fx.acme_ingest, "after=0").await, 403, "forbidden");
    let r = send(s.http.get(s.url("/v1/stream")).bearer_auth(&fx.acme_ingest)).await;
    assert_error(&r, 403, "forbidden");

    // Operator-only routes with a tenant key holding every scope: 403.
    let operator_only = [
        s.http
            .post(s.url("/v1/tenants"))
            .json(&json!({"id": "zed", "name": "Zed"})),
        s.http.get(s.url("/v1/tenants")),
        s.http
            .post(s.url("/v1/tenants/acme/keys"))
            .json(&json!({"scopes": ["read"]})),
        s.http.get(s.url("/v1/tenants/acme/keys")),
        s.http.delete(s.url("/v1/tenants/acme/keys/key_whatever")),
    ];
    for req in operator_only {
        assert_error(&send(req.bearer_auth(&fx.acme)).await, 403, "forbidden");
    }
    // The tenant was not created.
    let r = send(s.http.get(s.url("/v1/tenants/zed")).bearer_auth(&s.admin)).await;
    assert_error(&r, 404, "not_found");

    fx.assert_nothing_stored(&before).await;
}

#[tokio::test]
async fn a_tenant_key_never_reaches_another_tenant() {
    let fx = Fixture::new().await;
    let before = fx.snapshot().await;
    let s = &fx.server;

    // Reading another tenant answers exactly like a tenant that does not exist.
    let other = s.poll(&fx.acme, "tenant=bravo&after=0").await;
    let missing = s.poll(&fx.acme, "tenant=nosuch&after=0").await;
    assert_error(&other, 404, "not_found");
    assert_error(&missing, 404, "not_found");
    assert_eq!(
        other.1.to_string().replace("bravo", "X"),
        missing.1.to_string().replace("nosuch", "X"),
        "another tenant's id must answer like a missing one"
    );
    let r = send(s.http.get(s.url("/v1/stream?tenant=bravo")).bearer_auth(&fx.acme)).await;
    assert_error(&r, 404, "not_found");
    let r = send(s.http.get(s.url("/v1/tenants/bravo")).bearer_auth(&fx.acme)).await;
    assert_error(&r, 404, "not_found");
    let r2 = send(s.http.get(s.url("/v1/tenants/nosuch")).bearer_auth(&fx.acme)).await;
    assert_eq!(
        r.1.to_string().replace("bravo", "X"),
        r2.1.to_string().replace("nosuch", "X")
    );

    // Writing into another tenant: answers 404 like a missing tenant, nothing stored anywhere.
    let r = s
        .post_json(&fx.acme, &json!({"type": "a.b", "tenant_id": "bravo"}))
        .await;
    assert_error(&r, 404, "not_found");
    let r = s
        .post_json(
            &fx.acme,
            &json!([{"type": "a.b", "id": "mine"}, {"type": "a.b", "tenant_id": "acme"}, {"type": "a.b", "tenant_id": "bravo", "id": "theirs"}]),
        )
        .await;
    assert_error(&r, 404, "not_found");
    assert_detail(&r, "index", json!(2));
    let r = s
        .post_events(
            &fx.acme,
            "{\"type\":\"a.b\"}\n{\"type\":\"a.b\",\"tenant_id\":\"bravo\"}\n",
            NDJSON,
        )
        .await;
    assert_error(&r, 404, "not_found");
    let r = s
        .post_events_to("/v1/events?tenant=bravo", &fx.acme, r#"{"type":"a.b"}"#, JSON)
        .await;
    assert_error(&r, 404, "not_found");
    // A tenant that does not exist answers the same as one that does.
    let r2 = s
        .post_events_to("/v1/events?tenant=nosuch", &fx.acme, r#"{"type":"a.b"}"#, JSON)
        .await;
    assert_eq!(r.0, r2.0);
    assert_eq!(r.1["error"]["code"], r2.1["error"]["code"]);

    fx.assert_nothing_stored(&before).await;
    // bravo's key still sees only bravo's events.
    let (status, page) = s.poll(&fx.bravo, "after=0").await;
    assert_eq!(status, 200);
    let evs = page["events"].as_array().expect("events");
    assert!(evs.iter().all(|e| e["tenant_id"] == "bravo"), "{page}");
    assert_eq!(offsets(evs), [1, 2]);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let fx = Fixture::new().await;
    let s = &fx.server;
    for path in ["/v1/nope", "/nope", "/v2/events", "/v1/events/1"] {
        let r = send(s.http.get(s.url(path)).bearer_auth(&s.admin)).await;
        assert_error(&r, 404, "not_found");
        let r = send(s.http.get(s.url(path))).await;
        assert_eq!(r.0, 404, "{path} without a token: {}", r.1);
        assert!(r.1["error"]["code"].is_string(), "{}", r.1);
    }
    let r = send(s.http.delete(s.url("/v1/events")).bearer_auth(&s.admin)).await;
    assert_error(&r, 405, "method_not_allowed");
    let r = send(s.http.put(s.url("/v1/tenants")).bearer_auth(&s.admin)).await;
    assert_error(&r, 405, "method_not_allowed");
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once() {
    let fx = Fixture::new().await;
    let s = &fx.server;
    let (key_id, key) = s.create_key_full("acme", &["ingest", "read"]).await;
    let r = s.post_json(&key, &json!({"type": "a.b"})).await;
    assert_eq!(r.0, 202, "{}", r.1);
    assert_eq!(s.poll(&key, "after=0").await.0, 200);
    let before = fx.snapshot().await;

    let resp = s
        .http
        .delete(s.url(&format!("/v1/tenants/acme/keys/{key_id}")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .expect("revoking");
    assert_eq!(resp.status().as_u16(), 204);

    assert_error(&s.post_json(&key, &json!({"type": "a.b"})).await, 401, "unauthorized");
    assert_error(&s.poll(&key, "after=0").await, 401, "unauthorized");
    let r = send(s.http.get(s.url("/v1/stream")).bearer_auth(&key)).await;
    assert_error(&r, 401, "unauthorized");

    // Unknown key, or a key of another tenant: 404.
    let r = send(
        s.http
            .delete(s.url("/v1/tenants/acme/keys/key_doesnotexist"))
            .bearer_auth(&s.admin),
    )
    .await;
    assert_error(&r, 404, "not_found");
    let (bravo_key_id, bravo_key) = s.create_key_full("bravo", &["read"]).await;
    let r = send(
        s.http
            .delete(s.url(&format!("/v1/tenants/acme/keys/{bravo_key_id}")))
            .bearer_auth(&s.admin),
    )
    .await;
    assert_error(&r, 404, "not_found");
    assert_eq!(s.poll(&bravo_key, "after=0").await.0, 200, "bravo's key must survive");

    fx.assert_nothing_stored(&before).await;
}

#[tokio::test]
async fn bad_query_parameters_and_management_bodies() {
    let fx = Fixture::new().await;
    let s = &fx.server;
    for (query, param) in [
        ("after=abc", "after"),
        ("after=-1", "after"),
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("limit=-5", "limit"),
        ("wait=abc", "wait"),
        ("wait=-1", "wait"),
        ("wait=NaN", "wait"),
        ("types=BAD", "types"),
    ] {
        let r = s.poll(&fx.acme, query).await;
        assert_error(&r, 400, "invalid_parameter");
        assert_detail(&r, "parameter", json!(param));
    }
    // The operator must name the tenant to read.
    let r = s.poll(&s.admin, "after=0").await;
    assert_error(&r, 400, "invalid_parameter");
    assert_detail(&r, "parameter", json!("tenant"));
    let r = s.poll(&s.admin, "tenant=nosuch").await;
    assert_error(&r, 404, "not_found");
    let r = send(
        s.http
            .get(s.url("/v1/stream"))
            .bearer_auth(&fx.acme)
            .header("Last-Event-ID", "abc"),
    )
    .await;
    assert_error(&r, 400, "invalid_parameter");

    // Tenants and keys.
    let admin = &s.admin;
    let post = |path: &str, body: Value| s.http.post(s.url(path)).bearer_auth(admin).json(&body);
    assert_error(&send(post("/v1/tenants", json!({"id": "acme"}))).await, 409, "conflict");
    for bad in ["Bad", "has space", "", &"x".repeat(65)] {
        let r = send(post("/v1/tenants", json!({"id": bad}))).await;
        assert_error(&r, 400, "invalid_request");
        assert_detail(&r, "field", json!("id"));
    }
    let r = send(
        s.http
            .post(s.url("/v1/tenants"))
            .bearer_auth(admin)
            .header("content-type", JSON)
            .body(r#"{"id": "x""#),
    )
    .await;
    assert_error(&r, 400, "invalid_json");
    let r = send(post("/v1/tenants/acme/keys", json!({"scopes": ["root"]}))).await;
    assert_error(&r, 400, "invalid_request");
    assert_detail(&r, "field", json!("scopes"));
    let r = send(post("/v1/tenants/acme/keys", json!({"scopes": []}))).await;
    assert_error(&r, 400, "invalid_request");
    let r = send(post("/v1/tenants/nosuch/keys", json!({"scopes": ["read"]}))).await;
    assert_error(&r, 404, "not_found");
}

/// Far past the limits (100 MiB streamed), the server stops reading at its drain bound and
/// closes the connection (`Connection: close`), as HTTP servers do; a client that reads while it
/// sends sees the 413, others see a reset. Either way nothing is stored and the server stays up.
#[tokio::test]
async fn a_request_far_over_the_drain_bound_is_refused_and_the_server_survives() {
    let fx = Fixture::new().await;
    let before = fx.snapshot().await;
    for _ in 0..2 {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..100).map(|_| Ok(vec![b'\n'; 1024 * 1024])).collect();
        let resp = fx
            .server
            .http
            .post(fx.server.url("/v1/events"))
            .bearer_auth(&fx.acme)
            .header("content-type", NDJSON)
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            .send()
            .await;
        if let Ok(resp) = resp {
            assert_eq!(resp.status().as_u16(), 413);
        }
        assert!(fx.server.healthy().await, "server must keep answering after a flood");
    }
    fx.assert_nothing_stored(&before).await;
}

/// A management body must be a JSON object: serde would read a struct from an array by
/// position, so `[null, null]` used to pass as an empty retention policy and reset the tenant's
/// (found by schemathesis). Every such body is a 400 naming what it got, and nothing changes.
#[tokio::test]
async fn management_bodies_that_are_not_objects_are_refused_and_change_nothing() {
    let s = TestServer::spawn();
    s.create_tenant("acme").await;
    let op = |req: reqwest::RequestBuilder| req.bearer_auth(common::ADMIN_TOKEN);
    let policy = json!({"active_days": 30, "auto_purge": false});
    let put = |body: String| {
        op(s.http
            .put(s.url("/v1/tenants/acme/retention"))
            .header("Content-Type", "application/json")
            .body(body))
    };
    let (status, _) = send(put(policy.to_string())).await;
    assert_eq!(status, 200);
    let (_, before) = send(op(s.http.get(s.url("/v1/tenants/acme/retention")))).await;
    assert_eq!(before["policy"]["active_days"], 30, "{before}");
    for (body, got) in [
        ("[null, null]", "an array"),
        ("[30, false]", "an array"),
        ("null", "null"),
        ("\"x\"", "a string"),
        ("7", "a number"),
        ("", "an empty body"),
    ] {
        let answer = send(put(body.to_owned())).await;
        assert_error(&answer, 400, "invalid_json");
        let message = answer.1["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert!(
            message.contains(&format!("expected a JSON object, got {got}")),
            "{body}: {message}"
        );
    }
    let (_, after) = send(op(s.http.get(s.url("/v1/tenants/acme/retention")))).await;
    assert_eq!(after, before, "a refused body changed the policy");
    // The same rule on another route: creating a tenant from an array.
    let answer = send(
        op(s.http.post(s.url("/v1/tenants")))
            .header("Content-Type", "application/json")
            .body(r#"["beta", "Beta"]"#),
    )
    .await;
    assert_error(&answer, 400, "invalid_json");
}
