//! Helpers shared by the sentinel sink test files (`sentinel_logs_ingestion.rs`,
//! `sentinel_data_collector.rs`, `sentinel_config.rs`): the Azure identities, sink builders, a
//! hand-moved clock, sized events, and the secret-leak check.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use auditrelay_core::StoredEvent;
use auditrelay_format::Format;
use auditrelay_sinks::sentinel::{Clock, SentinelSink};
use auditrelay_sinks::{AttemptReport, Outcome};
use jiff::Timestamp;
use serde_json::{json, Value};

use crate::common::{open_env, secrets};
use auditrelay_testkit::azure_receiver::AzureReceiver;

pub(crate) const DCR: &str = "dcr-0123456789abcdef0123456789abcdef";
pub(crate) const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub(crate) const CLIENT_ID: &str = "00000000-1111-2222-3333-444444444444";
pub(crate) const CLIENT_SECRET: &str = "Xy8Q~fake.client-secret_value+/=";
pub(crate) const WORKSPACE: &str = "b1d3c6a0-1234-4cde-8f00-0123456789ab";
/// The protocols.md test-vector key.
pub(crate) const SHARED_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

pub(crate) fn retry(secs: Option<u64>) -> Outcome {
    Outcome::Retry {
        after: secs.map(Duration::from_secs),
    }
}

pub(crate) fn li_config(endpoint: &str, authority: &str) -> Value {
    json!({
        "endpoint": endpoint,
        "dcr_id": DCR,
        "stream": "Custom-AuditRelay_CL",
        "authority_url": authority,
        "azure_tenant_id": TENANT,
        "client_id": CLIENT_ID,
    })
}

pub(crate) fn li_sink(config: &Value) -> SentinelSink {
    SentinelSink::new(
        config,
        &secrets(&[("client_secret", CLIENT_SECRET)]),
        Format::Json,
        &open_env(),
    )
    .unwrap()
}

pub(crate) fn receiver_sink(receiver: &AzureReceiver) -> SentinelSink {
    li_sink(&li_config(&receiver.base(), &receiver.base()))
}

pub(crate) fn dc_sink(receiver: &AzureReceiver, key: &str) -> SentinelSink {
    let config = json!({
        "mode": "data_collector",
        "url": format!("{}/api/logs?api-version=2016-04-01", receiver.base()),
        "workspace_id": WORKSPACE,
        "log_type": "AuditRelay",
    });
    SentinelSink::new(&config, &secrets(&[("shared_key", key)]), Format::Json, &open_env()).unwrap()
}

/// A clock the test moves by hand, in milliseconds since the epoch.
pub(crate) fn manual_clock(start: &str) -> (Clock, Arc<AtomicI64>) {
    let ms = Arc::new(AtomicI64::new(start.parse::<Timestamp>().unwrap().as_millisecond()));
    let read = ms.clone();
    let clock: Clock = Arc::new(move || Timestamp::from_millisecond(read.load(Ordering::SeqCst)).unwrap());
    (clock, ms)
}

/// An event whose canonical JSON is about `size` bytes.
pub(crate) fn sized_event(offset: u64, size: usize) -> StoredEvent {
    let id = format!("evt_{offset:04}");
    let body = json!({
        "id": id,
        "tenant_id": "acme",
        "type": "file.uploaded",
        "occurred_at": "2026-06-01T10:13:20.000Z",
        "received_at": "2026-06-01T10:13:21.000Z",
        "metadata": {"blob": "x".repeat(size)},
    })
    .to_string();
    StoredEvent {
        tenant_id: "acme".into(),
        offset,
        id,
        event_type: "file.uploaded".into(),
        body,
        chain: None,
    }
}

pub(crate) fn ids_in(body: &[u8]) -> Vec<String> {
    let records: Vec<Value> = serde_json::from_slice(body).unwrap();
    records.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

pub(crate) fn assert_no_secrets(report: &AttemptReport) {
    let error = report.error.clone().unwrap_or_default();
    assert!(!error.contains(CLIENT_SECRET), "client secret leaked: {error}");
    assert!(!error.contains("Xy8Q"), "client secret leaked: {error}");
    assert!(!error.contains(SHARED_KEY), "shared key leaked: {error}");
    assert!(!error.contains("tok-"), "access token leaked: {error}");
}
