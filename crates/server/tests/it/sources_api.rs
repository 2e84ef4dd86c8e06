//! The sources resource (api.md "Sources"): operator only, typed `config` with errors naming the
//! field, write-only secrets, pause/resume/delete that really stop and start the listener, the
//! listen address checked at save time, and health counters.

use std::time::{Duration, Instant};

use auditrelay_testkit::peer_process::free_port;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::common::{assert_error, send, TestServer};

pub(crate) async fn create(s: &TestServer, body: &Value) -> (u16, Value) {
    send(s.http.post(s.url("/v1/sources")).bearer_auth(&s.admin).json(body)).await
}

pub(crate) fn syslog_body(tenant: &str, port: u16) -> Value {
    json!({"name": "fw", "kind": "syslog", "tenant": tenant, "config": {"listen": format!("127.0.0.1:{port}")}})
}

/// Polls the source's health until `done` holds (or fails the test after 20 s).
pub(crate) async fn wait_health(s: &TestServer, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, health) = s.get_as_operator(&format!("/v1/sources/{id}/health")).await;
        assert_eq!(status, 200, "{health}");
        if done(&health) {
            return health;
        }
        assert!(Instant::now() < deadline, "waiting for {what}: last health {health}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn connects(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
}

#[tokio::test]
async fn crud_pause_resume_and_delete_drive_the_listener() {
    let s = TestServer::spawn();
    s.create_tenant("acme").await;
    let port = free_port();

    let (status, kinds) = s.get_as_operator("/v1/source-kinds").await;
    assert_eq!(status, 200, "{kinds}");
    assert_eq!(kinds["kinds"][0]["kind"], "syslog");
    assert_eq!(kinds["kinds"][0]["needs_tenant"], true);
    assert!(
        kinds["kinds"][0]["config_schema"]["properties"]["listen"].is_object(),
        "{kinds}"
    );
    assert_eq!(kinds["kinds"][0]["config_schema"]["additionalProperties"], false);

    let (status, created) = create(&s, &syslog_body("acme", port)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("src_"), "{id}");
    assert_eq!(created["config"]["listen"], format!("127.0.0.1:{port}"));
    assert_eq!(created["secrets_set"], json!([]));
    assert_eq!(created["revision"], 1);
    // Listening by the time the create answered.
    assert!(connects(port).await, "nothing listens on {port} after the create");
    wait_health(&s, &id, "running", |h| h["state"] == "running").await;

    let (status, one) = s.get_as_operator(&format!("/v1/sources/{id}")).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one, created);
    let (status, page) = s.get_as_operator("/v1/sources?limit=10").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    // One message counts as received and appended.
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    c.write_all(b"<13>1 - h app - api.check - hello\n").await.unwrap();
    c.shutdown().await.unwrap();
    let health = wait_health(&s, &id, "one appended event", |h| h["appended"] == 1).await;
    assert_eq!(health["received"], 1);
    assert_eq!(health["malformed"], 0);
    assert_eq!(health["last_error"], Value::Null);

    // Pause: the port is closed when the answer comes; resume opens it again.
    let (status, paused) = send(
        s.http
            .post(s.url(&format!("/v1/sources/{id}/pause")))
            .bearer_auth(&s.admin),
    )
    .await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["paused"], true);
    assert!(!connects(port).await, "a paused source still listens");
    let (_, health) = s.get_as_operator(&format!("/v1/sources/{id}/health")).await;
    assert_eq!(health["state"], "paused");
    let (status, resumed) = send(
        s.http
            .post(s.url(&format!("/v1/sources/{id}/resume")))
            .bearer_auth(&s.admin),
    )
    .await;
    assert_eq!(status, 200, "{resumed}");
    assert!(connects(port).await, "a resumed source does not listen");

    // A change of address moves the listener without a restart of the server.
    let new_port = free_port();
    let (status, patched) = send(
        s.http
            .patch(s.url(&format!("/v1/sources/{id}")))
            .bearer_auth(&s.admin)
            .json(&json!({"name": "moved", "config": {"listen": format!("127.0.0.1:{new_port}")}})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], "moved");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !connects(new_port).await || connects(port).await {
        assert!(Instant::now() < deadline, "the listener did not move to {new_port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let deleted = s
        .http
        .delete(s.url(&format!("/v1/sources/{id}")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(!connects(new_port).await, "a deleted source still listens");
    let got = s.get_as_operator(&format!("/v1/sources/{id}")).await;
    assert_error(&got, 404, "not_found");
    let got = send(s.http.delete(s.url(&format!("/v1/sources/{id}"))).bearer_auth(&s.admin)).await;
    assert_error(&got, 404, "not_found");
}

#[tokio::test]
async fn bad_definitions_are_400_naming_the_field() {
    let s = TestServer::spawn();
    s.create_tenant("acme").await;
    let port = free_port();
    let field = |got: &(u16, Value)| {
        assert_eq!(got.0, 400, "{}", got.1);
        assert_eq!(got.1["error"]["code"], "invalid_request", "{}", got.1);
        got.1["error"]["detail"]["field"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let listen = format!("127.0.0.1:{port}");
    let cases = [
        (
            json!({"name": "x", "kind": "syslog", "tenant": "acme", "config": {}}),
            "config.listen",
        ),
        (
            json!({"name": "x", "kind": "syslog", "tenant": "acme", "config": {"listen": "nope"}}),
            "config.listen",
        ),
        // A privileged port is refused with a clear reason, never a silent failure as non-root.
        (
            json!({"name": "x", "kind": "syslog", "tenant": "acme", "config": {"listen": "127.0.0.1:514"}}),
            "config.listen",
        ),
        (
            json!({"name": "x", "kind": "syslog", "tenant": "acme", "config": {"listen": listen, "colour": 1}}),
            "config.colour",
        ),
        (
            json!({"name": "x", "kind": "syslog", "tenant": "acme", "config": {"listen": listen, "framing": "lines"}}),
            "config.framing",
        ),
        (
            json!({"name": "x", "kind": "syslog", "tenant": "acme", "config": {"listen": listen, "tls": true}}),
            "config.cert_file",
        ),
        (
            json!({"name": "x", "kind": "syslog", "tenant": "acme", "config": {"listen": listen, "tls": true, "cert_file": "/nonexistent.pem", "key_file": "/nonexistent.key"}}),
            "config.cert_file",
        ),
        (
            json!({"name": "x", "kind": "syslog", "tenant": "acme", "config": {"listen": listen, "type_from": "Not A Type"}}),
            "config.type_from",
        ),
        (
            json!({"name": "x", "kind": "syslog", "tenant": "acme", "config": {"listen": listen, "max_message_bytes": 10}}),
            "config.max_message_bytes",
        ),
        (
            json!({"name": "x", "kind": "syslog", "config": {"listen": listen}}),
            "tenant",
        ),
        (
            json!({"name": "x", "kind": "syslog", "tenant": "acme", "config": {"listen": listen}, "secrets": {"password": "x"}}),
            "secrets.password",
        ),
        (
            json!({"name": "x", "kind": "carrier_pigeon", "tenant": "acme", "config": {}}),
            "kind",
        ),
        (
            json!({"name": "", "kind": "syslog", "tenant": "acme", "config": {"listen": listen}}),
            "name",
        ),
        (
            json!({"name": "x", "kind": "syslog", "tenant": "acme", "config": {"listen": listen}, "extra": 1}),
            "extra",
        ),
    ];
    for (body, expected) in cases {
        let got = create(&s, &body).await;
        assert_eq!(field(&got), expected, "{body}");
    }
    // Nothing of those was stored.
    let (_, page) = s.get_as_operator("/v1/sources").await;
    assert_eq!(page["items"], json!([]));

    // The address is taken by another process: a clear error naming it.
    let holder = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let got = create(&s, &syslog_body("acme", port)).await;
    assert_eq!(field(&got), "config.listen");
    assert!(
        got.1["error"]["message"].as_str().unwrap().contains("already in use"),
        "{}",
        got.1
    );
    drop(holder);
    // … or by another source.
    let (status, first) = create(&s, &syslog_body("acme", port)).await;
    assert_eq!(status, 201, "{first}");
    let got = create(
        &s,
        &json!({"name": "y", "kind": "syslog", "tenant": "acme", "config": {"listen": format!("0.0.0.0:{port}")}}),
    )
    .await;
    assert_eq!(field(&got), "config.listen");
    assert!(got.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains(first["id"].as_str().unwrap()));

    // An unknown tenant is a 404, as for sinks.
    let got = create(&s, &syslog_body("nobody", free_port())).await;
    assert_error(&got, 404, "not_found");
}

#[tokio::test]
async fn tenant_keys_are_refused_on_every_source_route() {
    let s = TestServer::spawn();
    s.create_tenant("acme").await;
    let key = s.create_key("acme", &["ingest", "read", "manage"]).await;
    let (status, created) = create(&s, &syslog_body("acme", free_port())).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let routes = [
        ("GET", "/v1/source-kinds".to_owned()),
        ("POST", "/v1/sources".to_owned()),
        ("GET", "/v1/sources".to_owned()),
        ("GET", format!("/v1/sources/{id}")),
        ("PATCH", format!("/v1/sources/{id}")),
        ("DELETE", format!("/v1/sources/{id}")),
        ("POST", format!("/v1/sources/{id}/pause")),
        ("POST", format!("/v1/sources/{id}/resume")),
        ("GET", format!("/v1/sources/{id}/health")),
    ];
    for (method, path) in routes {
        let req = s
            .http
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), s.url(&path))
            .bearer_auth(&key)
            .json(&syslog_body("acme", 6000));
        let got = send(req).await;
        assert_error(&got, 403, "forbidden");
    }
    // Still there, still running.
    wait_health(&s, id, "running", |h| h["state"] == "running").await;
}
