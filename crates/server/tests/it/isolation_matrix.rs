//! The isolation matrix: every route of the router, one row each, against
//! - no token (401),
//! - a key of tenant A missing the route's scope, and every tenant key on operator-only routes (403),
//! - a key of tenant A with every scope against tenant B's objects (404, answered exactly like
//!   an object that does not exist: same status, code and message but for the id),
//! - and, as the control that keeps the other cells honest, the right principal on its own
//!   objects (the route's success status).
//!
//! The table must list exactly the routes of `docs/openapi.json` (which `tests/openapi.rs`
//! checks against the router), with the same scope: a new route without a row fails here.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::receiver::{Fault, Receiver};
use common::{send, TestServer};
use serde_json::{json, Value};

const DOC: &str = include_str!("../../../../docs/openapi.json");

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Need {
    Ingest,
    Read,
    Manage,
    /// Any key of the tenant named in the path.
    Any,
    Operator,
    /// No token at all.
    Public,
}

impl Need {
    fn doc_name(self) -> &'static str {
        match self {
            Need::Ingest => "ingest",
            Need::Read => "read",
            Need::Manage => "manage",
            Need::Any => "any",
            Need::Operator => "operator",
            Need::Public => "none",
        }
    }
}

/// How a tenant key reaches another tenant's object on this route.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cross {
    /// The object is named in the path (`{tenant}`, `{id}`, `{dl}`, `{replay}`).
    Path,
    /// `?tenant=` names the tenant.
    Query,
    /// The body's `tenant` names it.
    Body,
    /// Not applicable (operator-only or public routes).
    None,
}

struct Row {
    method: &'static str,
    /// Template with `{tenant}`, `{key}`, `{id}`, `{dl}`, `{replay}`; `?` query allowed.
    path: &'static str,
    need: Need,
    cross: Cross,
    body: Option<fn(&Objects) -> Value>,
    /// The control's expected status with the right principal on its own objects.
    ok: u16,
    /// Runs after the others in the control pass (it removes what later rows use).
    destructive: bool,
    /// `{id}` names the tenant's source (`src_…`), not its sink.
    source: bool,
}

const fn row(method: &'static str, path: &'static str, need: Need, cross: Cross, ok: u16) -> Row {
    Row {
        method,
        path,
        need,
        cross,
        body: None,
        ok,
        destructive: false,
        source: false,
    }
}

impl Row {
    const fn body(mut self, f: fn(&Objects) -> Value) -> Row {
        self.body = Some(f);
        self
    }
    const fn destructive(mut self) -> Row {
        self.destructive = true;
        self
    }
    const fn source(mut self) -> Row {
        self.source = true;
        self
    }
    /// The documented path (without a query string).
    fn doc_path(&self) -> &str {
        self.path.split('?').next().unwrap_or(self.path)
    }
}

fn table() -> Vec<Row> {
    use Cross as C;
    use Need as N;
    vec![
        row("POST", "/v1/events?tenant={tenant}", N::Ingest, C::Query, 202).body(|_| json!({ "type": "matrix.check" })),
        row("GET", "/v1/events?tenant={tenant}", N::Read, C::Query, 200),
        row("POST", "/otlp/v1/logs?tenant={tenant}", N::Ingest, C::Query, 200)
            .body(|_| json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"eventName": "matrix.check"}]}]}]})),
        row("GET", "/v1/stream?tenant={tenant}", N::Read, C::Query, 200),
        row("GET", "/v1/export?tenant={tenant}", N::Read, C::Query, 200),
        row("GET", "/v1/integrity/key", N::Any, C::None, 200),
        row("GET", "/v1/sink-kinds", N::Any, C::None, 200),
        row(
            "GET",
            "/v1/integrity/checkpoints?tenant={tenant}",
            N::Read,
            C::Query,
            200,
        ),
        row("POST", "/v1/tenants", N::Operator, C::None, 201).body(|o| json!({ "id": format!("{}-new", o.tenant) })),
        row("GET", "/v1/tenants", N::Operator, C::None, 200),
        row("GET", "/v1/tenants/{tenant}", N::Any, C::Path, 200),
        row("POST", "/v1/tenants/{tenant}/keys", N::Operator, C::None, 201).body(|_| json!({ "scopes": ["read"] })),
        row("GET", "/v1/tenants/{tenant}/keys", N::Operator, C::None, 200),
        row("DELETE", "/v1/tenants/{tenant}/keys/{key}", N::Operator, C::None, 204).destructive(),
        row("GET", "/v1/tenants/{tenant}/retention", N::Any, C::Path, 200),
        row("PUT", "/v1/tenants/{tenant}/retention", N::Operator, C::None, 200).body(|_| json!({ "active_days": 30 })),
        row("DELETE", "/v1/tenants/{tenant}/retention", N::Operator, C::None, 200),
        row("POST", "/v1/sinks", N::Manage, C::Body, 201).body(|o| sink_body(&o.tenant, &o.receiver_url)),
        row("GET", "/v1/sinks?tenant={tenant}", N::Manage, C::Query, 200),
        row("GET", "/v1/sinks/{id}", N::Manage, C::Path, 200),
        row("PATCH", "/v1/sinks/{id}", N::Manage, C::Path, 200).body(|_| json!({ "name": "renamed" })),
        row("POST", "/v1/sinks/{id}/test", N::Manage, C::Path, 200),
        // No events given: the preview reads the named tenant's latest, so it is a read of B's log.
        row("POST", "/v1/sinks/preview", N::Manage, C::Body, 200)
            .body(|o| json!({ "sink": sink_body(&o.tenant, &o.receiver_url) })),
        row("GET", "/v1/sinks/{id}/health", N::Manage, C::Path, 200),
        row("POST", "/v1/sinks/{id}/pause", N::Manage, C::Path, 200),
        row("POST", "/v1/sinks/{id}/resume", N::Manage, C::Path, 200),
        row("POST", "/v1/sinks/{id}/replay", N::Manage, C::Path, 202).body(|_| json!({ "from": 1 })),
        row("GET", "/v1/sinks/{id}/replays/{replay}", N::Manage, C::Path, 200),
        row("GET", "/v1/sinks/{id}/deliveries", N::Manage, C::Path, 200),
        row("GET", "/v1/sinks/{id}/stats", N::Manage, C::Path, 200),
        row("GET", "/v1/sinks/{id}/dead-letters", N::Manage, C::Path, 200),
        row("GET", "/v1/sinks/{id}/dead-letters/{dl}", N::Manage, C::Path, 200),
        // The receiver refuses everything: the retry is made and fails (502), which is the
        // route working for its owner.
        row(
            "POST",
            "/v1/sinks/{id}/dead-letters/{dl}/retry",
            N::Manage,
            C::Path,
            502,
        ),
        row("DELETE", "/v1/sinks/{id}/dead-letters/{dl}", N::Manage, C::Path, 204).destructive(),
        // Any valid token reaches the schema; each sink field then applies its REST route's
        // scope and tenant rules, answering 200 with GraphQL errors (tests/it/graphql.rs).
        row("POST", "/v1/graphql", N::Any, C::None, 200)
            .body(|o| json!({ "query": "query($id: ID!) { sink(id: $id) { id } }", "variables": { "id": o.sink } })),
        // After the rows that use the sink.
        row("DELETE", "/v1/sinks/{id}", N::Manage, C::Path, 204).destructive(),
        // Sources are the operator's: a listener opens a port on the server, which no tenant decides.
        row("GET", "/v1/source-kinds", N::Operator, C::None, 200),
        row("POST", "/v1/sources", N::Operator, C::None, 201).body(|o| source_body(&o.tenant)),
        row("GET", "/v1/sources", N::Operator, C::None, 200),
        row("GET", "/v1/sources/{id}", N::Operator, C::None, 200).source(),
        row("PATCH", "/v1/sources/{id}", N::Operator, C::None, 200)
            .body(|_| json!({ "name": "renamed" }))
            .source(),
        row("GET", "/v1/sources/{id}/health", N::Operator, C::None, 200).source(),
        row("POST", "/v1/sources/{id}/pause", N::Operator, C::None, 200).source(),
        row("POST", "/v1/sources/{id}/resume", N::Operator, C::None, 200).source(),
        row("DELETE", "/v1/sources/{id}", N::Operator, C::None, 204)
            .source()
            .destructive(),
        row("POST", "/v1/admin/token/rotate", N::Operator, C::None, 200).destructive(),
        row("GET", "/healthz", N::Public, C::None, 200),
        row("GET", "/readyz", N::Public, C::None, 200),
        row("GET", "/metrics", N::Public, C::None, 200),
        row("GET", "/openapi.json", N::Public, C::None, 200),
    ]
}

/// A syslog source of `tenant` on a free port.
fn source_body(tenant: &str) -> Value {
    let port = auditrelay_testkit::peer_process::free_port();
    json!({ "name": "matrix", "kind": "syslog", "tenant": tenant, "config": { "listen": format!("127.0.0.1:{port}") } })
}

fn sink_body(tenant: &str, url: &str) -> Value {
    json!({
        "name": "matrix", "kind": "webhook", "tenant": tenant,
        "config": { "url": url }, "start_at": "earliest",
        "batch": { "max_events": 10, "flush_interval_ms": 0 },
        "retry": { "max_attempts": 1, "initial_backoff_ms": 1, "max_backoff_ms": 1 },
        "timeout_ms": 500,
    })
}

/// One tenant's objects, each of them real.
struct Objects {
    tenant: String,
    key: String,
    sink: String,
    source: String,
    dl: String,
    replay: String,
    receiver_url: String,
}

impl Objects {
    /// The row's path with this tenant's objects.
    fn fill_row(&self, row: &Row) -> String {
        if row.source {
            self.fill(&row.path.replace("{id}", &self.source))
        } else {
            self.fill(row.path)
        }
    }

    fn fill(&self, template: &str) -> String {
        template
            .replace("{tenant}", &self.tenant)
            .replace("{key}", &self.key)
            .replace("{id}", &self.sink)
            .replace("{dl}", &self.dl)
            .replace("{replay}", &self.replay)
    }

    /// Ids that exist nowhere, shaped like the real ones.
    fn missing() -> Objects {
        Objects {
            tenant: "nosuchtenant".into(),
            key: "key_00000000000000000000000000000000".into(),
            sink: "snk_00000000000000000000000000000000".into(),
            source: "src_00000000000000000000000000000000".into(),
            dl: "dl_00000000000000000000000000000000".into(),
            replay: "rpl_00000000000000000000000000000000".into(),
            receiver_url: String::new(),
        }
    }
}

async fn make_objects(s: &TestServer, tenant: &str, receiver: &Receiver) -> Objects {
    s.create_tenant(tenant).await;
    let (key, _) = s.create_key_full(tenant, &["read"]).await;
    let (status, sink) = send(
        s.http
            .post(s.url("/v1/sinks"))
            .bearer_auth(&s.admin)
            .json(&sink_body(tenant, &receiver.url())),
    )
    .await;
    assert_eq!(status, 201, "{sink}");
    let sink = sink["id"].as_str().expect("sink id").to_owned();
    let (status, body) = s
        .post_json(&s.admin, &json!({ "type": "matrix.seed", "tenant_id": tenant }))
        .await;
    assert_eq!(status, 202, "{body}");
    // The receiver refuses (400) with one attempt allowed: the batch becomes a dead letter.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let dl = loop {
        let (status, page) = s.get_as_operator(&format!("/v1/sinks/{sink}/dead-letters")).await;
        assert_eq!(status, 200, "{page}");
        if let Some(id) = page["items"][0]["id"].as_str() {
            break id.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no dead letter for {tenant}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (status, replay) = send(
        s.http
            .post(s.url(&format!("/v1/sinks/{sink}/replay")))
            .bearer_auth(&s.admin)
            .json(&json!({ "from": 1 })),
    )
    .await;
    assert_eq!(status, 202, "{replay}");
    let (status, source) = send(
        s.http
            .post(s.url("/v1/sources"))
            .bearer_auth(&s.admin)
            .json(&source_body(tenant)),
    )
    .await;
    assert_eq!(status, 201, "{source}");
    Objects {
        tenant: tenant.into(),
        key,
        sink,
        source: source["id"].as_str().expect("source id").to_owned(),
        dl,
        replay: replay["id"].as_str().expect("replay id").to_owned(),
        receiver_url: receiver.url(),
    }
}

/// Sends one request; the body is JSON when the answer is JSON (SSE is not read).
async fn call(s: &TestServer, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = s.http.request(method, s.url(path)).timeout(Duration::from_secs(30));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("sending");
    let status = resp.status().as_u16();
    let is_json = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    if !is_json {
        return (status, Value::Null);
    }
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Asserts status and error code, with the cell named in the message.
#[track_caller]
fn expect(cell: &str, got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "{cell}: status, body {}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{cell}: error code, body {}", got.1);
    assert!(got.1["error"]["detail"].is_object(), "{cell}: detail, body {}", got.1);
}

/// A body naming the other tenant, for `Cross::Body` rows.
/// Names `tenant` in a body: a sink definition's own field, or the nested definition of a
/// preview (`{"sink": {...}}`).
fn with_tenant(mut body: Value, tenant: &str) -> Value {
    match body.get_mut("sink") {
        Some(sink) => sink["tenant"] = json!(tenant),
        None => body["tenant"] = json!(tenant),
    }
    body
}

#[test]
fn the_table_lists_every_documented_route_with_its_scope() {
    let doc: Value = serde_json::from_str(DOC).expect("openapi.json");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if let Some(scope) = op.get("x-required-scope").and_then(Value::as_str) {
                documented.insert((method.to_uppercase(), path.clone(), scope.to_owned()));
            }
        }
    }
    let listed: BTreeSet<(String, String, String)> = table()
        .iter()
        .map(|r| {
            (
                r.method.to_owned(),
                r.doc_path().to_owned(),
                r.need.doc_name().to_owned(),
            )
        })
        .collect();
    let missing: Vec<_> = documented.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&documented).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the isolation table and docs/openapi.json differ\nroutes (or scopes) without a row: {missing:?}\nrows not documented: {extra:?}"
    );
    assert_eq!(listed.len(), table().len(), "a route has two rows");
}

#[tokio::test]
async fn every_route_refuses_the_wrong_principal_and_hides_other_tenants() {
    let s = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    let receiver = Receiver::start().await;
    receiver.set_default(Some(Fault::status(400)));
    let a = make_objects(&s, "tenant-a", &receiver).await;
    let b = make_objects(&s, "tenant-b", &receiver).await;
    let missing = Objects::missing();
    let full = s.create_key(&a.tenant, &["ingest", "read", "manage"]).await;
    let lacking = [
        (Need::Ingest, s.create_key(&a.tenant, &["read", "manage"]).await),
        (Need::Read, s.create_key(&a.tenant, &["ingest", "manage"]).await),
        (Need::Manage, s.create_key(&a.tenant, &["ingest", "read"]).await),
    ];
    let mut cells = 0usize;

    for r in table() {
        let name = format!("{} {}", r.method, r.path);
        let own_path = a.fill_row(&r);
        let body = r.body.map(|f| f(&a));
        if r.need == Need::Public {
            continue; // The control pass checks these answer without a token.
        }
        // No token.
        let got = call(&s, r.method, &own_path, None, body.clone()).await;
        expect(&format!("{name} without a token"), &got, 401, "unauthorized");
        cells += 1;
        // Keys that must be refused with 403.
        for (scope, key) in &lacking {
            let refused = match r.need {
                Need::Operator => true,
                Need::Any => false,
                need => need == *scope,
            };
            if refused {
                let got = call(&s, r.method, &own_path, Some(key), body.clone()).await;
                expect(&format!("{name} with a key lacking {scope:?}"), &got, 403, "forbidden");
                cells += 1;
            }
        }
        if r.need == Need::Operator {
            let got = call(&s, r.method, &own_path, Some(&full), body.clone()).await;
            expect(&format!("{name} with an all-scope tenant key"), &got, 403, "forbidden");
            cells += 1;
            continue;
        }
        if r.cross == Cross::None {
            // Names no tenant object (the integrity public key): nothing of B's to reach.
            continue;
        }
        // Tenant A's key against tenant B's objects, next to the same route on missing ones.
        let (other, absent) = match r.cross {
            Cross::Path | Cross::Query => (
                call(&s, r.method, &b.fill_row(&r), Some(&full), body.clone()).await,
                call(&s, r.method, &missing.fill_row(&r), Some(&full), body.clone()).await,
            ),
            Cross::Body => (
                call(
                    &s,
                    r.method,
                    &own_path,
                    Some(&full),
                    body.clone().map(|v| with_tenant(v, &b.tenant)),
                )
                .await,
                call(
                    &s,
                    r.method,
                    &own_path,
                    Some(&full),
                    body.clone().map(|v| with_tenant(v, &missing.tenant)),
                )
                .await,
            ),
            Cross::None => unreachable!("{name}: skipped above"),
        };
        expect(&format!("{name}: A's key on B's object"), &other, 404, "not_found");
        expect(
            &format!("{name}: A's key on a missing object"),
            &absent,
            404,
            "not_found",
        );
        let mut normalized = other.1["error"]["message"].as_str().unwrap_or_default().to_owned();
        for (theirs, none) in [
            (&b.tenant, &missing.tenant),
            (&b.sink, &missing.sink),
            (&b.dl, &missing.dl),
            (&b.replay, &missing.replay),
        ] {
            normalized = normalized.replace(theirs.as_str(), none);
        }
        assert_eq!(
            normalized, absent.1["error"]["message"],
            "{name}: B's object must answer exactly like a missing one"
        );
        assert_eq!(
            other.1["error"]["detail"], absent.1["error"]["detail"],
            "{name}: detail"
        );
        cells += 2;
    }

    // The control: the right principal on its own objects succeeds (non-destructive first).
    let mut rows = table();
    rows.sort_by_key(|r| r.destructive);
    for r in rows {
        let name = format!("{} {}", r.method, r.path);
        let token = match r.need {
            Need::Public => None,
            Need::Operator => Some(s.admin.clone()),
            _ => Some(full.clone()),
        };
        let got = call(&s, r.method, &a.fill_row(&r), token.as_deref(), r.body.map(|f| f(&a))).await;
        assert_eq!(got.0, r.ok, "{name}: the owner's call, body {}", got.1);
        cells += 1;
    }
    assert!(cells > 100, "only {cells} cells were checked");
}
