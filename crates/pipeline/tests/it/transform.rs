use auditrelay_pipeline::{generate_hash_key, hash_value, Transform, TransformError, REDACTED};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::event;

const KEY: &[u8] = b"k";

fn transform(definition: Value) -> Transform {
    Transform::parse(&definition).unwrap_or_else(|e| panic!("{definition}: {e}"))
}

fn refused(definition: Value) -> TransformError {
    match Transform::parse(&definition) {
        Ok(t) => panic!("{definition} parsed as {t:?}"),
        Err(e) => e,
    }
}

/// HMAC-SHA256 computed here, independently of the crate, over the given canonical bytes.
fn hmac_hex(key: &[u8], canonical: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(canonical);
    format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn drop_removes_nested_members_and_keeps_order() {
    let mut e = event();
    let t = transform(json!({"drop": ["actor.email", "metadata.tags"]}));
    assert!(t.apply(&mut e, KEY));
    assert_eq!(
        e["actor"],
        json!({"id": "usr_123", "ip_address": "192.0.2.7", "type": "user"})
    );
    assert!(e["metadata"].get("tags").is_none());
    let keys: Vec<_> = e["actor"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["id", "ip_address", "type"], "the other members keep their order");
    assert_eq!(e["transformed"], json!(true));
}

#[test]
fn redact_replaces_the_value_whatever_its_type() {
    let mut e = event();
    let t = transform(json!({"redact": ["actor.ip_address", "metadata.tags", "severity"]}));
    assert!(t.apply(&mut e, KEY));
    assert_eq!(e["actor"]["ip_address"], json!(REDACTED));
    assert_eq!(e["metadata"]["tags"], json!("[REDACTED]"));
    assert_eq!(e["severity"], json!("[REDACTED]"));
    assert_eq!(e["actor"]["email"], json!("ada@example.com"));
}

#[test]
fn hash_matches_an_independent_hmac_over_canonical_json() {
    let mut e = event();
    let t = transform(json!({"hash": ["actor.id", "metadata", "severity"]}));
    assert!(t.apply(&mut e, KEY));
    // A string is hashed with its quotes.
    assert_eq!(e["actor"]["id"], json!(hmac_hex(b"k", br#""usr_123""#)));
    assert_eq!(e["severity"], json!(hmac_hex(b"k", b"8")));
    // An object: sorted keys, no whitespace, ECMAScript numbers.
    let canonical = br#"{"domain":"finance","env":"staging","score":0.75,"tags":["a","b"]}"#;
    assert_eq!(e["metadata"], json!(hmac_hex(b"k", canonical)));
}

#[test]
fn hash_known_vector() {
    // HMAC-SHA256(key "k", "\"usr_123\""), computed with `openssl dgst -sha256 -hmac k`.
    assert_eq!(
        hash_value(b"k", &json!("usr_123")),
        "hmac-sha256:1a0e988a621da1e73aacebadf36d25db54f941181d260c34f095608b5bfa727f"
    );
}

#[test]
fn hashes_are_stable_and_keyed() {
    let a = hash_value(KEY, &json!({"b": 1, "a": [1.0, "x"]}));
    // Same value, other member order and number spelling: same hash.
    let b = hash_value(KEY, &serde_json::from_str(r#"{"a":[1,"x"],"b":1.0}"#).unwrap());
    assert_eq!(a, b);
    assert_ne!(a, hash_value(b"other key", &json!({"b": 1, "a": [1.0, "x"]})));
    // A string and a number with the same digits differ.
    assert_ne!(hash_value(KEY, &json!("8")), hash_value(KEY, &json!(8)));
    // Across events: the same actor hashes the same.
    let t = transform(json!({"hash": ["actor.id"]}));
    let (mut e1, mut e2) = (event(), event());
    e2["offset"] = json!(43);
    t.apply(&mut e1, KEY);
    t.apply(&mut e2, KEY);
    assert_eq!(e1["actor"]["id"], e2["actor"]["id"]);
}

#[test]
fn rename_moves_values_and_creates_intermediate_objects() {
    let mut e = event();
    let t =
        transform(json!({"rename": {"metadata.domain": "metadata.folder", "actor.ip_address": "network.client.ip"}}));
    assert!(t.apply(&mut e, KEY));
    assert!(e["metadata"].get("domain").is_none());
    assert_eq!(e["metadata"]["folder"], json!("finance"));
    assert!(e["actor"].get("ip_address").is_none());
    assert_eq!(e["network"], json!({"client": {"ip": "192.0.2.7"}}));
}

#[test]
fn rename_runs_in_written_order_and_can_nest_under_itself() {
    let mut e = json!({"a": 1, "b": 2});
    // b → c first, then a → b: both values survive.
    assert!(transform(json!({"rename": {"b": "c", "a": "b"}})).apply(&mut e, KEY));
    assert_eq!(e, json!({"c": 2, "b": 1, "transformed": true}));
    let mut e = json!({"a": 1});
    assert!(transform(json!({"rename": {"a": "a.b"}})).apply(&mut e, KEY));
    assert_eq!(e, json!({"a": {"b": 1}, "transformed": true}));
}

#[test]
fn rename_into_a_non_object_leaves_the_event_alone() {
    let mut e = json!({"a": 1, "s": "text"});
    assert!(!transform(json!({"rename": {"a": "s.x"}})).apply(&mut e, KEY));
    assert_eq!(e, json!({"a": 1, "s": "text"}));
    let keys: Vec<_> = e.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["a", "s"]);
}

#[test]
fn set_writes_any_json_value_and_creates_objects() {
    let mut e = event();
    let t = transform(
        json!({"set": {"metadata.env": "prod", "labels.routing.team": ["soc", 1], "actor.type": {"k": null}}}),
    );
    assert!(t.apply(&mut e, KEY));
    assert_eq!(e["metadata"]["env"], json!("prod"));
    assert_eq!(e["labels"], json!({"routing": {"team": ["soc", 1]}}));
    assert_eq!(e["actor"]["type"], json!({"k": null}));
    // Through a non-object: nothing.
    let mut e = json!({"s": 1});
    assert!(!transform(json!({"set": {"s.x": 2}})).apply(&mut e, KEY));
    assert_eq!(e, json!({"s": 1}));
}

#[test]
fn missing_paths_are_no_ops_and_leave_no_mark() {
    let mut e = event();
    let before = e.clone();
    let t = transform(json!({
        "drop": ["actor.phone", "nothing.here"],
        "redact": ["target.owner", "severity.x"],
        "hash": ["metadata.user.id"],
        "rename": {"actor.phone": "actor.mobile"}
    }));
    assert!(!t.apply(&mut e, KEY));
    assert_eq!(e, before, "no `transformed` member either");
}

#[test]
fn equal_values_are_not_changes() {
    let mut e = event();
    let t = transform(json!({"set": {"metadata.env": "staging"}}));
    assert!(!t.apply(&mut e, KEY));
    assert!(e.get("transformed").is_none());
    let mut e = json!({"x": "[REDACTED]"});
    assert!(!transform(json!({"redact": ["x"]})).apply(&mut e, KEY));
    assert!(e.get("transformed").is_none());
}

#[test]
fn every_op_in_order_keeps_identity_and_marks_the_event() {
    let mut e = event();
    let t = transform(json!({
        "drop": ["actor.email"],
        "redact": ["actor.ip_address"],
        "hash": ["actor.id"],
        "rename": {"metadata.domain": "metadata.folder"},
        "set": {"metadata.env": "prod"}
    }));
    assert!(t.apply(&mut e, KEY));
    let original = event();
    for identity in ["offset", "id", "tenant_id", "chain", "type", "occurred_at"] {
        assert_eq!(e[identity], original[identity], "{identity}");
    }
    assert_eq!(e["transformed"], json!(true));
    let text = e.to_string();
    for gone in ["ada@example.com", "192.0.2.7", "usr_123"] {
        assert!(!text.contains(gone), "{gone} in {text}");
    }
    assert_eq!(e["metadata"]["folder"], json!("finance"));
    assert_eq!(e["metadata"]["env"], json!("prod"));
    // Set runs after rename: it can write where a rename moved things.
    let mut e = json!({"a": 1});
    transform(json!({"rename": {"a": "b"}, "set": {"b": 2}})).apply(&mut e, KEY);
    assert_eq!(e, json!({"b": 2, "transformed": true}));
    // Drop runs before hash: a dropped member is not hashed into existence.
    let mut e = json!({"a": {"b": 1}});
    transform(json!({"drop": ["a"], "hash": ["a.b"]})).apply(&mut e, KEY);
    assert_eq!(e, json!({"transformed": true}));
}

#[test]
fn non_objects_are_left_alone() {
    let mut v = json!([1, 2]);
    assert!(!transform(json!({"set": {"a": 1}})).apply(&mut v, KEY));
    assert_eq!(v, json!([1, 2]));
}

#[test]
fn bad_definitions_name_the_field() {
    let cases = [
        (json!([]), "transform"),
        (json!({"frobnicate": ["a"]}), "transform.frobnicate"),
        (json!({"drop": "actor.email"}), "transform.drop"),
        (json!({"drop": ["a", ""]}), "transform.drop[1]"),
        (json!({"redact": ["actor..ip"]}), "transform.redact[0]"),
        (json!({"hash": [".id"]}), "transform.hash[0]"),
        (json!({"hash": ["id."]}), "transform.hash[0]"),
        (json!({"hash": [7]}), "transform.hash[0]"),
        (json!({"rename": ["a"]}), "transform.rename"),
        (json!({"rename": {"a": ""}}), "transform.rename.a"),
        (json!({"rename": {"a": 1}}), "transform.rename.a"),
        (json!({"rename": {"a": "a"}}), "transform.rename.a"),
        (json!({"set": {"": 1}}), "transform.set."),
        (json!({"set": "x"}), "transform.set"),
        (json!({"drop": ["actor.id"], "hash": ["actor.id"]}), "transform.hash[0]"),
        (json!({"hash": ["a", "a"]}), "transform.hash[1]"),
    ];
    for (definition, field) in cases {
        assert_eq!(refused(definition.clone()).field, field, "{definition}");
    }
}

#[test]
fn identity_members_are_protected() {
    for (definition, field) in [
        (json!({"drop": ["offset"]}), "transform.drop[0]"),
        (json!({"redact": ["tenant_id"]}), "transform.redact[0]"),
        (json!({"hash": ["id"]}), "transform.hash[0]"),
        (json!({"drop": ["chain"]}), "transform.drop[0]"),
        (json!({"set": {"transformed": false}}), "transform.set.transformed"),
        (json!({"set": {"offset.x": 1}}), "transform.set.offset.x"),
        (json!({"rename": {"offset": "x"}}), "transform.rename.offset"),
        (json!({"rename": {"x": "tenant_id"}}), "transform.rename.x"),
    ] {
        let e = refused(definition.clone());
        assert_eq!(e.field, field, "{definition}");
        assert!(e.message.contains("cannot be changed"), "{e}");
    }
    // Deeper members with those names are ordinary.
    assert!(Transform::parse(&json!({"hash": ["actor.id"], "set": {"metadata.offset": 1}})).is_ok());
}

#[test]
fn serde_round_trip_and_errors() {
    let definition = json!({
        "drop": ["actor.email"],
        "redact": ["actor.ip_address"],
        "hash": ["actor.id"],
        "rename": {"metadata.domain": "metadata.folder"},
        "set": {"metadata.env": "prod"}
    });
    let t: Transform = serde_json::from_value(definition.clone()).unwrap();
    assert_eq!(serde_json::to_value(&t).unwrap(), definition);
    assert!(!t.is_empty());
    assert!(transform(json!({})).is_empty());
    let err = serde_json::from_value::<Transform>(json!({"nope": []})).unwrap_err();
    assert!(err.to_string().contains("transform.nope"), "{err}");
}

#[test]
fn generated_keys_are_64_hex_digits_and_differ() {
    let (a, b) = (generate_hash_key(), generate_hash_key());
    assert_eq!(a.len(), 64);
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_ne!(a, b);
}
