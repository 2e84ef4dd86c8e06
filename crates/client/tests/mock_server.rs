//! The client against a small in-process stand-in for the server's `/v1/events` routes (the
//! real server's integration tests live with the server). The mock keeps a per-tenant-less log
//! with offsets 1, 2, 3, …, deduplicates client ids, and can be scripted to fail the next
//! requests with given statuses.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditrelay_client::{
    emit_reader, http_client, tail_to, write_cursor_file, Backoff, ConnectionArgs, EmitError, EmitOptions,
    RequestFailure, TailError, TailOptions,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Mock {
    /// Stored events, offset = index + 1.
    log: Vec<Value>,
    ids: HashMap<String, u64>,
    /// Every request: method, query, authorization, content type, body.
    seen: Vec<Seen>,
    /// Answers to give, in order, before handling requests normally.
    /// `None` lets a request through to the normal handling.
    script: VecDeque<Option<(u16, Option<&'static str>, Value)>>,
}

#[derive(Clone, Debug)]
struct Seen {
    method: &'static str,
    query: HashMap<String, String>,
    auth: String,
    content_type: String,
    lines: usize,
}

type Shared = Arc<Mutex<Mock>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Mock> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn scripted(m: &mut Mock) -> Option<Response> {
    let (status, retry_after, body) = m.script.pop_front()??;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, axum::Json(body)).into_response();
    if let Some(ra) = retry_after {
        resp.headers_mut()
            .insert("retry-after", ra.parse().expect("header value"));
    }
    Some(resp)
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

async fn post_events(
    State(s): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut m = lock(&s);
    m.seen.push(Seen {
        method: "POST",
        query,
        auth: header(&headers, "authorization"),
        content_type: header(&headers, "content-type"),
        lines: body.lines().count(),
    });
    if let Some(resp) = scripted(&mut m) {
        return resp;
    }
    let mut results = Vec::new();
    for line in body.lines() {
        let Ok(mut ev) = serde_json::from_str::<Value>(line) else {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": {"code": "invalid_json", "message": "bad line"}})),
            )
                .into_response();
        };
        let id = ev.get("id").and_then(Value::as_str).map(str::to_string);
        if let Some(offset) = id.as_ref().and_then(|id| m.ids.get(id)).copied() {
            results.push(json!({"id": id, "offset": offset, "duplicate": true}));
            continue;
        }
        let offset = m.log.len() as u64 + 1;
        let id = id.unwrap_or_else(|| format!("gen_{offset}"));
        ev["id"] = json!(id);
        ev["offset"] = json!(offset);
        m.ids.insert(id.clone(), offset);
        m.log.push(ev);
        results.push(json!({"id": id, "offset": offset}));
    }
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"accepted": results.len(), "events": results})),
    )
        .into_response()
}

async fn get_events(
    State(s): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let num = |k: &str, d: u64| query.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let (after, limit, wait) = (num("after", 0), num("limit", 100), num("wait", 0));
    {
        let mut m = lock(&s);
        m.seen.push(Seen {
            method: "GET",
            query: query.clone(),
            auth: header(&headers, "authorization"),
            content_type: String::new(),
            lines: 0,
        });
        if header(&headers, "authorization") != "Bearer secret" {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": {"code": "unauthorized", "message": "bad token"}})),
            )
                .into_response();
        }
        if let Some(resp) = scripted(&mut m) {
            return resp;
        }
    }
    // A short stand-in for the long-poll: wait a little for events, then answer.
    for _ in 0..if wait > 0 { 5 } else { 1 } {
        {
            let m = lock(&s);
            let events: Vec<Value> = m
                .log
                .iter()
                .skip(after as usize)
                .take(limit as usize)
                .cloned()
                .collect();
            if !events.is_empty() || wait == 0 {
                let next = events.last().and_then(|e| e["offset"].as_u64()).unwrap_or(after);
                return axum::Json(json!({"events": events, "next_cursor": next})).into_response();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    axum::Json(json!({"events": [], "next_cursor": after})).into_response()
}

async fn serve_on(listener: tokio::net::TcpListener, state: Shared) {
    let app = Router::new()
        .route("/v1/events", post(post_events).get(get_events))
        .with_state(state);
    let _ = axum::serve(listener, app).await;
}

async fn start() -> (Shared, SocketAddr) {
    let state = Shared::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve_on(listener, state.clone()));
    (state, addr)
}

fn conn(addr: SocketAddr, tenant: Option<&str>) -> ConnectionArgs {
    ConnectionArgs {
        url: format!("http://{addr}"),
        token: "secret".into(),
        tenant: tenant.map(Into::into),
    }
}

fn fast() -> Backoff {
    Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(50),
    }
}

fn emit_opts(batch_size: usize) -> EmitOptions {
    EmitOptions {
        batch_size,
        backoff: fast(),
        progress: false,
        ..EmitOptions::default()
    }
}

fn tail_opts() -> TailOptions {
    TailOptions {
        wait: 0,
        limit: 10,
        follow: false,
        backoff: fast(),
        verbose: false,
        ..TailOptions::default()
    }
}

fn client() -> reqwest::Client {
    http_client(Duration::from_secs(10)).expect("client")
}

fn ndjson(n: usize, with_ids: bool) -> String {
    (1..=n)
        .map(|i| {
            if with_ids {
                format!("{{\"id\":\"ev{i}\",\"type\":\"test.event\",\"n\":{i}}}\n")
            } else {
                format!("{{\"type\":\"test.event\",\"n\":{i}}}\n")
            }
        })
        .collect()
}

fn output_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect()
}

#[tokio::test]
async fn emit_sends_batches_with_auth_tenant_and_ndjson() {
    let (state, addr) = start().await;
    let input = ndjson(25, false);
    let summary = emit_reader(&client(), &conn(addr, Some("acme")), input.as_bytes(), &emit_opts(10))
        .await
        .expect("emit");
    assert_eq!(summary.accepted, 25);
    assert_eq!(summary.requests, 3);
    assert_eq!((summary.first_offset, summary.last_offset), (Some(1), Some(25)));
    assert_eq!(summary.to_string(), "emitted 25 events (0 duplicates), offsets 1..25");
    let m = lock(&state);
    assert_eq!(m.seen.iter().map(|s| s.lines).collect::<Vec<_>>(), [10, 10, 5]);
    for s in &m.seen {
        assert_eq!(s.auth, "Bearer secret");
        assert_eq!(s.content_type, "application/x-ndjson");
        assert_eq!(s.query.get("tenant").map(String::as_str), Some("acme"));
    }
    assert_eq!(m.log[24]["n"], 25);
}

#[tokio::test]
async fn emit_counts_duplicates() {
    let (_state, addr) = start().await;
    let input = ndjson(5, true);
    let c = client();
    let first = emit_reader(&c, &conn(addr, None), input.as_bytes(), &emit_opts(100))
        .await
        .expect("emit");
    assert_eq!(first.duplicates, 0);
    let again = emit_reader(&c, &conn(addr, None), input.as_bytes(), &emit_opts(100))
        .await
        .expect("emit again");
    assert_eq!((again.accepted, again.duplicates), (5, 5));
    assert_eq!((again.first_offset, again.last_offset), (Some(1), Some(5)));
}

#[tokio::test]
async fn emit_parse_error_sends_nothing() {
    let (state, addr) = start().await;
    let input = "{\"type\":\"a.b\"}\n{\"type\":\n";
    let err = emit_reader(&client(), &conn(addr, None), input.as_bytes(), &emit_opts(10))
        .await
        .expect_err("must fail");
    match err {
        EmitError::Parse(e) => assert_eq!(e.line, 2),
        other => panic!("unexpected {other}"),
    }
    assert!(lock(&state).seen.is_empty());
}

#[tokio::test]
async fn emit_retries_429_and_503_honouring_retry_after() {
    let (state, addr) = start().await;
    {
        let mut m = lock(&state);
        let busy = json!({"error": {"code": "rate_limited", "message": "slow down"}});
        m.script.push_back(Some((429, Some("0"), busy.clone())));
        m.script.push_back(Some((503, Some("0"), busy)));
    }
    let summary = emit_reader(
        &client(),
        &conn(addr, None),
        ndjson(3, false).as_bytes(),
        &emit_opts(10),
    )
    .await
    .expect("emit");
    assert_eq!(summary.accepted, 3);
    let m = lock(&state);
    assert_eq!(m.seen.len(), 3);
    assert_eq!(m.log.len(), 3, "nothing stored twice");
}

#[tokio::test]
async fn emit_500_is_retried_only_when_every_event_has_an_id() {
    let (state, addr) = start().await;
    let boom = json!({"error": {"code": "internal", "message": "boom"}});
    lock(&state).script.push_back(Some((500, None, boom.clone())));
    let err = emit_reader(
        &client(),
        &conn(addr, None),
        ndjson(3, false).as_bytes(),
        &emit_opts(10),
    )
    .await
    .expect_err("id-less events are not re-sent after a 500");
    assert!(err.to_string().contains("HTTP 500 internal: boom"), "{err}");
    assert_eq!(lock(&state).seen.len(), 1);

    lock(&state).script.push_back(Some((500, None, boom)));
    let summary = emit_reader(&client(), &conn(addr, None), ndjson(3, true).as_bytes(), &emit_opts(10))
        .await
        .expect("events with ids are safe to re-send");
    assert_eq!(summary.accepted, 3);
    assert_eq!(lock(&state).seen.len(), 3);
}

#[tokio::test]
async fn emit_error_reports_server_message_and_what_was_accepted() {
    let (state, addr) = start().await;
    {
        let mut m = lock(&state);
        m.script.push_back(None); // request 1 goes through
        m.script.push_back(Some((
            400,
            None,
            json!({"error": {"code": "invalid_event", "message": "bad type",
                   "detail": {"index": 3, "field": "type"}}}),
        )));
    }
    let err = emit_reader(
        &client(),
        &conn(addr, None),
        ndjson(25, false).as_bytes(),
        &emit_opts(10),
    )
    .await
    .expect_err("request 2 fails");
    match &err {
        EmitError::Failed {
            batch,
            batches,
            events,
            summary,
            cause,
        } => {
            assert_eq!((*batch, *batches, events.clone()), (2, 3, 10..20));
            assert_eq!(summary.accepted, 10);
            assert_eq!((summary.first_offset, summary.last_offset), (Some(1), Some(10)));
            match cause.as_ref() {
                RequestFailure::Api(api) => {
                    assert_eq!((api.status, api.code.as_str()), (400, "invalid_event"))
                }
                other => panic!("unexpected {other}"),
            }
        }
        other => panic!("unexpected {other}"),
    }
    let text = err.to_string();
    assert!(text.contains("HTTP 400 invalid_event: bad type"), "{text}");
    assert!(text.contains("[that is input event #14]"), "{text}");
    assert!(
        text.contains("10 events were accepted before the failure (offsets 1..10)"),
        "{text}"
    );
    assert_eq!(lock(&state).seen.len(), 2, "a 400 is not retried, request 3 never sent");
}

#[tokio::test]
async fn emit_connection_refused_is_retried_then_reported() {
    // A port with nothing listening.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let mut opts = emit_opts(10);
    opts.max_attempts = 3;
    let err = emit_reader(&client(), &conn(addr, None), ndjson(1, false).as_bytes(), &opts)
        .await
        .expect_err("nothing listens");
    match &err {
        EmitError::Failed { cause, summary, .. } => {
            assert!(matches!(cause.as_ref(), RequestFailure::Transport(_)), "{cause}");
            assert_eq!(summary.accepted, 0);
        }
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn tail_no_follow_pages_through_and_resumes_from_cursor_file() {
    let (state, addr) = start().await;
    emit_reader(
        &client(),
        &conn(addr, None),
        ndjson(25, false).as_bytes(),
        &emit_opts(100),
    )
    .await
    .expect("emit");
    let dir = tempfile::tempdir().expect("tempdir");
    let cursor = dir.path().join("cursor");
    let opts = TailOptions {
        cursor_file: Some(cursor.clone()),
        ..tail_opts()
    };
    let mut out = Vec::new();
    let done = tail_to(
        &client(),
        &conn(addr, Some("acme")),
        &opts,
        &mut out,
        &CancellationToken::new(),
    )
    .await
    .expect("tail");
    assert_eq!((done.printed, done.cursor), (25, 25));
    let lines = output_lines(&out);
    let offsets: Vec<u64> = lines.iter().filter_map(|e| e["offset"].as_u64()).collect();
    assert_eq!(offsets, (1..=25).collect::<Vec<_>>());
    assert_eq!(std::fs::read_to_string(&cursor).expect("cursor").trim(), "25");
    {
        let m = lock(&state);
        let gets: Vec<&Seen> = m.seen.iter().filter(|s| s.method == "GET").collect();
        assert_eq!(gets.len(), 4, "10 + 10 + 5 + one empty poll");
        assert_eq!(gets[1].query.get("after").map(String::as_str), Some("10"));
        assert_eq!(gets[0].query.get("wait").map(String::as_str), Some("0"));
        assert_eq!(gets[0].query.get("tenant").map(String::as_str), Some("acme"));
    }

    // More events, then a second run starting from the stored cursor.
    emit_reader(
        &client(),
        &conn(addr, None),
        ndjson(3, false).as_bytes(),
        &emit_opts(100),
    )
    .await
    .expect("emit");
    let opts = TailOptions { after: 25, ..opts };
    let mut out = Vec::new();
    let done = tail_to(&client(), &conn(addr, None), &opts, &mut out, &CancellationToken::new())
        .await
        .expect("tail again");
    assert_eq!((done.printed, done.cursor), (3, 28));
    assert_eq!(std::fs::read_to_string(&cursor).expect("cursor").trim(), "28");
}

#[tokio::test]
async fn tail_forwards_types_and_retries_transient_errors() {
    let (state, addr) = start().await;
    emit_reader(
        &client(),
        &conn(addr, None),
        ndjson(5, false).as_bytes(),
        &emit_opts(100),
    )
    .await
    .expect("emit");
    {
        let mut m = lock(&state);
        let down = json!({"error": {"code": "unavailable", "message": "restarting"}});
        m.script.push_back(Some((503, None, down.clone())));
        m.script.push_back(Some((502, None, down)));
    }
    let opts = TailOptions {
        types: vec!["test.*".into(), " other.thing ".into()],
        ..tail_opts()
    };
    let mut out = Vec::new();
    let done = tail_to(&client(), &conn(addr, None), &opts, &mut out, &CancellationToken::new())
        .await
        .expect("tail");
    assert_eq!(done.printed, 5);
    assert_eq!(output_lines(&out).len(), 5);
    let m = lock(&state);
    let gets: Vec<&Seen> = m.seen.iter().filter(|s| s.method == "GET").collect();
    assert_eq!(
        gets[0].query.get("types").map(String::as_str),
        Some("test.*,other.thing")
    );
    assert!(gets
        .iter()
        .all(|g| g.query.get("after").map(String::as_str) == Some("0")
            || g.query.get("after").map(String::as_str) == Some("5")));
}

#[tokio::test]
async fn tail_stops_on_401_with_the_server_message() {
    let (_state, addr) = start().await;
    let mut c = conn(addr, None);
    c.token = "wrong".into();
    let err = tail_to(&client(), &c, &tail_opts(), &mut Vec::new(), &CancellationToken::new())
        .await
        .expect_err("401");
    match &err {
        TailError::Api(api) => assert_eq!((api.status, api.code.as_str()), (401, "unauthorized")),
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("bad token"), "{err}");
}

#[tokio::test]
async fn tail_no_follow_gives_up_when_nothing_listens() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let err = tail_to(
        &client(),
        &conn(addr, None),
        &tail_opts(),
        &mut Vec::new(),
        &CancellationToken::new(),
    )
    .await
    .expect_err("nothing listens");
    assert!(matches!(err, TailError::GaveUp { attempts: 5, .. }), "{err}");
}

/// Follow mode: the server is not there at first (as during a restart), comes up, events arrive
/// in two rounds; every event is printed exactly once, and cancelling ends the tail cleanly with
/// the cursor stored.
#[tokio::test]
async fn tail_follow_survives_a_missing_server_and_stops_on_shutdown() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let dir = tempfile::tempdir().expect("tempdir");
    let cursor = dir.path().join("cursor");
    write_cursor_file(&cursor, 0).expect("cursor");
    let opts = TailOptions {
        wait: 1,
        follow: true,
        cursor_file: Some(cursor.clone()),
        ..tail_opts()
    };
    let shutdown = CancellationToken::new();
    let state = Shared::default();
    let driver = {
        let state = state.clone();
        let shutdown = shutdown.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
            tokio::spawn(serve_on(listener, state.clone()));
            let c = client();
            emit_reader(&c, &conn(addr, None), ndjson(12, false).as_bytes(), &emit_opts(100))
                .await
                .expect("emit 1");
            tokio::time::sleep(Duration::from_millis(150)).await;
            emit_reader(&c, &conn(addr, None), ndjson(3, false).as_bytes(), &emit_opts(100))
                .await
                .expect("emit 2");
            for _ in 0..200 {
                if std::fs::read_to_string(&cursor)
                    .map(|s| s.trim() == "15")
                    .unwrap_or(false)
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            shutdown.cancel();
        }
    };
    let mut out = Vec::new();
    let (tail_client, tail_conn) = (client(), conn(addr, None));
    let (result, ()) = tokio::join!(tail_to(&tail_client, &tail_conn, &opts, &mut out, &shutdown), driver);
    let done = result.expect("tail ends cleanly on shutdown");
    assert_eq!((done.printed, done.cursor), (15, 15));
    let offsets: Vec<u64> = output_lines(&out).iter().filter_map(|e| e["offset"].as_u64()).collect();
    assert_eq!(offsets, (1..=15).collect::<Vec<_>>());
}
