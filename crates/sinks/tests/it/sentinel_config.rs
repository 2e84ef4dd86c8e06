//! The sentinel sink's configuration: validation, the SSRF guard, and secret-free debug output,
//! for both Logs Ingestion and Data Collector modes.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use crate::common;
use crate::sentinel_support as support;

use auditrelay_format::Format;
use auditrelay_sinks::sentinel::SentinelSink;
use auditrelay_sinks::{build, validate_config, Outcome, Secrets, Sink};
use common::{batch, events, guarded_env, open_env, secrets};
use serde_json::{json, Value};
use support::*;

// ---------------------------------------------------------------------------------------------
// Configuration.

#[tokio::test]
async fn validation_names_the_field() {
    let env = open_env();
    let good = li_config(
        "https://my-dce.westeurope-1.ingest.monitor.azure.com",
        "https://login.microsoftonline.com",
    );
    let li_secrets = secrets(&[("client_secret", CLIENT_SECRET)]);
    let mut s = li_secrets.clone();
    assert!(validate_config("sentinel", &good, &mut s, &env)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s, li_secrets, "nothing generated");
    assert!(build("sentinel", &good, &li_secrets, "json", &env).is_ok());
    assert!(build("sentinel", &good, &li_secrets, "ocsf", &env).is_ok());

    let with = |patch: Value| {
        let mut c = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let field = |config: Value, secrets: Secrets| {
        let env = env.clone();
        async move {
            let mut secrets = secrets;
            validate_config("sentinel", &config, &mut secrets, &env)
                .await
                .unwrap_err()
        }
    };
    for (config, want) in [
        (with(json!({"mode": "v2"})), "config.mode"),
        (with(json!({"endpoint": null})), "config.endpoint"),
        (
            with(json!({"endpoint": "https://u:p@dce.example.com"})),
            "config.endpoint",
        ),
        (with(json!({"dcr_id": "my-rule"})), "config.dcr_id"),
        (with(json!({"stream": "AuditRelay_CL"})), "config.stream"),
        (with(json!({"authority_url": "gopher://x"})), "config.authority_url"),
        (with(json!({"azure_tenant_id": null})), "config.azure_tenant_id"),
        (with(json!({"client_id": ""})), "config.client_id"),
        (with(json!({"scope": 5})), "config.scope"),
        (with(json!({"log_type": "X"})), "config.log_type"),
        (with(json!({"url": "https://x.example.com"})), "config.url"),
        (with(json!({"token": "x"})), "config.token"),
        (with(json!({"leef_delimiter": "ab"})), "config.leef_delimiter"),
    ] {
        let e = field(config.clone(), li_secrets.clone()).await;
        assert_eq!(e.field, want, "{config}: {e}");
    }
    assert_eq!(field(good.clone(), Secrets::new()).await.field, "secrets.client_secret");
    assert_eq!(
        field(
            good.clone(),
            secrets(&[("client_secret", "x"), ("shared_key", SHARED_KEY)])
        )
        .await
        .field,
        "secrets.shared_key"
    );
    assert_eq!(
        field(good.clone(), secrets(&[("api_key", "x")])).await.field,
        "secrets.api_key"
    );

    let dc = json!({"mode": "data_collector", "workspace_id": WORKSPACE});
    let dc_secrets = secrets(&[("shared_key", SHARED_KEY)]);
    let mut s = dc_secrets.clone();
    assert!(validate_config("sentinel", &dc, &mut s, &env).await.is_ok());
    assert!(build("sentinel", &dc, &dc_secrets, "json", &env).is_ok());
    assert_eq!(
        field(json!({"mode": "data_collector"}), dc_secrets.clone()).await.field,
        "config.workspace_id"
    );
    assert_eq!(
        field(
            json!({"mode": "data_collector", "workspace_id": WORKSPACE, "log_type": "bad-name"}),
            dc_secrets.clone()
        )
        .await
        .field,
        "config.log_type"
    );
    assert_eq!(
        field(
            json!({"mode": "data_collector", "workspace_id": WORKSPACE, "dcr_id": DCR}),
            dc_secrets.clone()
        )
        .await
        .field,
        "config.dcr_id"
    );
    let e = field(dc.clone(), secrets(&[("shared_key", "hunter2 is not base64!")])).await;
    assert_eq!(e.field, "secrets.shared_key");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert_eq!(
        field(
            dc.clone(),
            secrets(&[("shared_key", SHARED_KEY), ("client_secret", "x")])
        )
        .await
        .field,
        "secrets.client_secret"
    );

    // Formats: JSON records only.
    for format in ["cef", "leef", "raw"] {
        let e = build("sentinel", &good, &li_secrets, format, &env).err().unwrap();
        assert_eq!(e.field, "format", "{format}");
    }
}

#[tokio::test]
async fn the_ssrf_guard_applies_to_every_address_the_sink_calls() {
    let env = guarded_env();
    let secrets = secrets(&[("client_secret", CLIENT_SECRET)]);
    let loopback_dce = li_config("http://127.0.0.1:9", "https://login.microsoftonline.com");
    let mut s = secrets.clone();
    let e = validate_config("sentinel", &loopback_dce, &mut s, &env)
        .await
        .unwrap_err();
    assert_eq!(e.field, "config.endpoint");
    let loopback_authority = li_config("https://93.184.216.34", "http://127.0.0.1:9");
    let mut s = secrets.clone();
    let e = validate_config("sentinel", &loopback_authority, &mut s, &env)
        .await
        .unwrap_err();
    assert_eq!(e.field, "config.authority_url");
    let dc = json!({"mode": "data_collector", "workspace_id": WORKSPACE, "url": "http://10.0.0.1/api/logs"});
    let mut s = common::secrets(&[("shared_key", SHARED_KEY)]);
    assert_eq!(
        validate_config("sentinel", &dc, &mut s, &env).await.unwrap_err().field,
        "config.url"
    );

    // At send time too (a sink built before the policy changed): paused, nothing sent.
    let sink = SentinelSink::new(&loopback_authority, &secrets, Format::Json, &env).unwrap();
    let report = sink.deliver(&batch("b", &events("acme", 1..=1))).await;
    assert_eq!(report.outcome, Outcome::Misconfigured, "{report:?}");
    assert!(report.error.as_deref().unwrap().contains("loopback"), "{report:?}");
}

#[test]
fn debug_output_hides_every_secret() {
    let li = li_sink(&li_config(
        "https://dce.example.com",
        "https://login.microsoftonline.com",
    ));
    let debug = format!("{li:?}");
    assert!(!debug.contains("Xy8Q") && debug.contains("dce.example.com"), "{debug}");
    let config = json!({"mode": "data_collector", "workspace_id": WORKSPACE});
    let dc = SentinelSink::new(
        &config,
        &secrets(&[("shared_key", SHARED_KEY)]),
        Format::Json,
        &open_env(),
    )
    .unwrap();
    let debug = format!("{dc:?}");
    assert!(!debug.contains(SHARED_KEY) && !debug.contains("48, 49, 50"), "{debug}");
    assert!(debug.contains("data_collector"), "{debug}");
}
