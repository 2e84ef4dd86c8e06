//! OCSF: snapshots, and every emitted class validated against the real OCSF 1.8.0 schema
//! (`ocsf-json-schema` + `jsonschema`, tests/peers/validate_ocsf.py).

use std::cell::RefCell;
use std::collections::BTreeMap;

use auditrelay_format::{encode, Format, FormatOptions};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::common::{canonical_ip, check, fixtures, gen_event, gen_options, given, GenEvent, Peer};

fn record(ev: &auditrelay_core::StoredEvent, o: &FormatOptions) -> Value {
    let bytes = encode(Format::Ocsf, ev, o).unwrap();
    assert!(!bytes.contains(&b'\n'), "an OCSF record is one line");
    serde_json::from_slice(&bytes).unwrap()
}

fn validate(peer: &mut Peer, rec: &Value) -> Value {
    peer.ask(rec.to_string().as_bytes())
}

/// The class and activity each type must map to (docs/formats.md), as (class_uid, activity_id).
const CLASS_TABLE: &[(&str, u64, u64)] = &[
    ("auth.login", 3002, 1),
    ("auth.logout", 3002, 2),
    ("user.login_failed", 3002, 1),
    ("user.signed_out", 3002, 2),
    ("session.created", 3002, 1),
    ("session.expired", 3002, 2),
    ("auth.token_issued", 3002, 3),
    ("auth.impersonation_started", 3002, 7),
    ("auth.failed", 3002, 1),
    ("auth.mfa_challenge", 3002, 99),
    ("user.created", 3001, 1),
    ("account.enabled", 3001, 2),
    ("user.password_changed", 3001, 3),
    ("password.changed", 3001, 3),
    ("password.reset", 3001, 4),
    ("user.suspended", 3001, 5),
    ("user.deleted", 3001, 6),
    ("role.assigned", 3001, 7),
    ("role.revoked", 3001, 8),
    ("account.locked", 3001, 9),
    ("mfa.enabled", 3001, 10),
    ("mfa.disabled", 3001, 11),
    ("user.unlocked", 3001, 12),
    ("doc.created", 6003, 1),
    ("doc.viewed", 6003, 2),
    ("doc.updated", 6003, 3),
    ("doc.deleted", 6003, 4),
    ("decision.rejected", 6003, 99),
    ("user.viewed", 6003, 2),
    ("health.ping", 6003, 99),
];

#[test]
fn ocsf_snapshots_are_valid() {
    let mut schema = Peer::start("validate_ocsf.py", &["1.8.0"]);
    for (name, ev) in fixtures() {
        let rec = record(&ev, &FormatOptions::default());
        let verdict = validate(&mut schema, &rec);
        assert_eq!(verdict["ok"], true, "{name}: {verdict}\n{rec:#}");
        insta::assert_json_snapshot!(format!("ocsf_{name}"), rec);
    }
}

/// Every class and activity in the table, for a full event and for one with only a type (where
/// the placeholders must carry the required attributes), passes the schema.
#[test]
fn ocsf_every_class_and_activity_is_valid_even_with_only_a_type() {
    let mut schema = Peer::start("validate_ocsf.py", &["1.8.0"]);
    for (i, (t, class_uid, activity_id)) in CLASS_TABLE.iter().enumerate() {
        let full = crate::common::ingest(
            json!({
                "type": t, "action": "act",
                "actor": {"id": "u1", "type": "service", "name": "n", "email": "e@x.io", "ip_address": "10.0.0.1", "user_agent": "ua"},
                "target": {"type": "user", "id": "u2", "name": "m"}, "outcome": "failure", "severity": 10,
                "request_id": "r", "changes": {"a": [1, 2]}, "metadata": {"m": {}},
                "source": {"service": "s", "version": "1", "instance": "i"}
            }),
            i as u64,
        );
        let bare = crate::common::ingest(json!({ "type": t }), i as u64);
        for ev in [full, bare] {
            let rec = record(&ev, &FormatOptions::default());
            assert_eq!(
                (rec["class_uid"].as_u64(), rec["activity_id"].as_u64()),
                (Some(*class_uid), Some(*activity_id)),
                "{t}"
            );
            assert_eq!(rec["type_uid"].as_u64(), Some(class_uid * 100 + activity_id));
            let verdict = validate(&mut schema, &rec);
            assert_eq!(verdict["ok"], true, "{t}: {verdict}\n{rec:#}");
        }
    }
}

fn ocsf_severity(s: Option<u64>) -> u64 {
    match s {
        None => 0,
        Some(0) => 1,
        Some(1..=3) => 2,
        Some(4..=6) => 3,
        Some(7..=8) => 4,
        Some(_) => 5,
    }
}

/// Hostile events of every class: each record passes the OCSF 1.8.0 schema, and the values it
/// carries are the event's own, unaltered (JSON needs no sanitising).
#[test]
fn ocsf_hostile_events_of_every_class_pass_the_schema() {
    let schema = RefCell::new(Peer::start("validate_ocsf.py", &["1.8.0"]));
    let seen: RefCell<BTreeMap<u64, u32>> = RefCell::default();
    check(
        400,
        (gen_event(), gen_options()),
        |(ev, o): (GenEvent, FormatOptions)| {
            let rec = record(&ev.stored(), &o);
            let verdict = validate(&mut schema.borrow_mut(), &rec);
            prop_assert_eq!(&verdict["ok"], &json!(true), "{}\n{:#}", verdict, rec);

            let class_uid = rec["class_uid"].as_u64().unwrap_or(0);
            *seen.borrow_mut().entry(class_uid).or_default() += 1;
            if let Some((_, c, a)) = CLASS_TABLE.iter().find(|(t, _, _)| *t == ev.event_type) {
                if *c != 6003 {
                    // API Activity's activity may come from the action instead of the type.
                    prop_assert_eq!((class_uid, rec["activity_id"].as_u64()), (*c, Some(*a)));
                } else {
                    prop_assert_eq!(class_uid, 6003);
                }
            }
            let m = &rec["metadata"];
            prop_assert_eq!(&m["uid"], &json!(ev.id));
            prop_assert_eq!(&m["tenant_uid"], &json!(ev.tenant_id));
            prop_assert_eq!(&m["version"], &json!(o.ocsf_version));
            prop_assert_eq!(&m["sequence"], &json!(ev.offset));
            prop_assert_eq!(
                &m["product"],
                &json!({"name": o.product, "vendor_name": o.vendor, "version": o.product_version})
            );
            prop_assert_eq!(
                m.get("correlation_uid").cloned(),
                given(&ev.request_id).map(|r| json!(r))
            );
            prop_assert_eq!(&rec["time"], &json!(ev.time_ms().unwrap_or(0)));
            prop_assert_eq!(rec["severity_id"].as_u64(), Some(ocsf_severity(ev.severity())));
            let status = match given(&ev.outcome) {
                Some("success") => 1,
                Some("failure") => 2,
                _ => 0,
            };
            prop_assert_eq!(rec["status_id"].as_u64(), Some(status));
            let ip = ev
                .actor
                .as_ref()
                .and_then(|a| given(&a.ip_address))
                .and_then(canonical_ip);
            prop_assert_eq!(
                rec["src_endpoint"].get("ip").cloned(),
                ip.map(|ip| json!(ip.to_string()))
            );
            // Nothing of changes / metadata / source is lost: they travel verbatim under unmapped.
            let stored: Value = serde_json::from_str(&ev.stored().body).unwrap();
            for k in ["changes", "metadata", "source"] {
                prop_assert_eq!(rec["unmapped"].get(k), stored.get(k), "unmapped.{}", k);
            }
            // The actor's identity is carried unaltered.
            if let Some(a) = &ev.actor {
                if let (Some(id), Some(user)) = (given(&a.id), rec["actor"].get("user")) {
                    prop_assert_eq!(&user["uid"], &json!(id));
                }
            }
            Ok(())
        },
    );
    let seen = seen.into_inner();
    for class in [3001, 3002, 6003] {
        assert!(
            seen.get(&class).copied().unwrap_or(0) >= 20,
            "too few {class} events: {seen:?}"
        );
    }
}
