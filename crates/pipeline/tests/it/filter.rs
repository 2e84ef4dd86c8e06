use auditrelay_pipeline::{EvalError, Filter, FilterError};
use serde_json::json;

use super::event;

fn matches(src: &str, event: &serde_json::Value) -> Result<bool, EvalError> {
    Filter::compile(src)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .matches(event)
}

fn compile_error(src: &str) -> FilterError {
    match Filter::compile(src) {
        Ok(_) => panic!("{src:?} compiled"),
        Err(e) => e,
    }
}

const EXAMPLE: &str = r#"event.severity >= 7 && event.metadata.domain in ["finance", "hr"]"#;

#[test]
fn the_example_filter_matches_on_severity_and_domain() {
    let filter = Filter::compile(EXAMPLE).unwrap();
    let mut e = event();
    assert_eq!(filter.matches(&e), Ok(true));
    e["metadata"]["domain"] = json!("hr");
    assert_eq!(filter.matches(&e), Ok(true));
    e["metadata"]["domain"] = json!("sales");
    assert_eq!(filter.matches(&e), Ok(false));
    e["metadata"]["domain"] = json!("finance");
    e["severity"] = json!(6);
    assert_eq!(filter.matches(&e), Ok(false));
    e["severity"] = json!(7);
    assert_eq!(filter.matches(&e), Ok(true));
}

#[test]
fn string_functions_and_has() {
    let e = event();
    assert_eq!(matches(r#"event.type.startsWith("auth.")"#, &e), Ok(true));
    assert_eq!(matches(r#"event.type.startsWith("billing.")"#, &e), Ok(false));
    assert_eq!(matches(r#"event.type.endsWith(".succeeded")"#, &e), Ok(true));
    assert_eq!(matches(r#"event.actor.email.contains("@example.")"#, &e), Ok(true));
    assert_eq!(matches("has(event.actor.email)", &e), Ok(true));
    assert_eq!(matches("has(event.actor.phone)", &e), Ok(false));
    assert_eq!(matches("!has(event.actor.phone)", &e), Ok(true));
}

#[test]
fn numbers_lists_macros_and_index() {
    let e = event();
    // JSON integers are CEL ints, so arithmetic with int literals works.
    assert_eq!(matches("event.severity + 1 == 9", &e), Ok(true));
    assert_eq!(matches("event.metadata.score > 0.5", &e), Ok(true));
    assert_eq!(matches("event.severity > 7.5", &e), Ok(true));
    assert_eq!(matches(r#"event.metadata.tags.exists(t, t == "b")"#, &e), Ok(true));
    assert_eq!(matches(r#"event.metadata.tags.all(t, t == "b")"#, &e), Ok(false));
    assert_eq!(matches("size(event.metadata.tags) == 2", &e), Ok(true));
    assert_eq!(matches(r#"event["type"] == "auth.login.succeeded""#, &e), Ok(true));
    assert_eq!(matches(r#"event.actor["type"] == "user""#, &e), Ok(true));
    assert_eq!(matches(r#""metadata" in event && size(event) > 5"#, &e), Ok(true));
    assert_eq!(matches("event.offset == 42 ? true : false", &e), Ok(true));
    assert_eq!(matches("type(event.severity) == int", &e), Ok(true));
    assert_eq!(matches(r#"string(event.severity) == "8""#, &e), Ok(true));
    assert_eq!(matches(r#"event.metadata.tags.exists_one(t, t == "a")"#, &e), Ok(true));
    assert_eq!(
        matches(r#"event.metadata.tags.filter(t, t != "a").size() == 1"#, &e),
        Ok(true)
    );
    assert_eq!(
        matches(r#"event.metadata.tags.map(t, t + "!") == ["a!", "b!"]"#, &e),
        Ok(true)
    );
    assert_eq!(
        matches(r#""domain" in event.metadata && !("nope" in event.metadata)"#, &e),
        Ok(true)
    );
    // RFC 3339 times compare as text.
    assert_eq!(
        matches(r#"event.occurred_at >= "2026-12-01" && event.occurred_at < "2027""#, &e),
        Ok(true)
    );
    assert_eq!(
        matches(r#"event.actor.id + "@" + event.tenant_id == "usr_123@acme""#, &e),
        Ok(true)
    );
    assert_eq!(
        matches(
            "event.metadata == {'domain': 'finance', 'env': 'staging', 'tags': ['a', 'b'], 'score': 0.75}",
            &e
        ),
        Ok(true)
    );
    assert!(matches("event.severity / 0 == 1", &e).is_err());
    // A macro variable that hides `event` still sees its own values.
    assert_eq!(matches("[1, 2].exists(event, event == 2)", &e), Ok(true));
}

#[test]
fn known_functions_are_callable() {
    // Every name the static check lets through exists in this build of `cel`.
    let e = event();
    for src in [
        "size(event.type) > 0",
        r#"event.type.contains("login")"#,
        r#"event.type.startsWith("a")"#,
        r#"event.type.endsWith("d")"#,
        "int(event.severity) == 8",
        "uint(event.severity) == 8u",
        "double(event.severity) == 8.0",
        r#"string(event.severity) == "8""#,
        r#"bool("true")"#,
        r#"bytes("a") == b"a""#,
        "type(event) == map",
        "dyn(event.severity) == 8",
    ] {
        assert_eq!(matches(src, &e), Ok(true), "{src}");
    }
}

#[test]
fn runtime_errors_are_errors_not_false() {
    let e = event();
    // A missing top-level member, and a missing member of a missing object.
    assert!(matches!(matches("event.missing == 1", &e), Err(EvalError::Runtime(_))));
    assert!(matches!(
        matches("has(event.nope.email)", &e),
        Err(EvalError::Runtime(_))
    ));
    // Wrong type for the operator.
    assert!(matches!(
        matches(r#"event.type + 1 == 2"#, &e),
        Err(EvalError::Runtime(_))
    ));
    // A non-bool result that only a run can reveal.
    assert_eq!(matches("event.severity", &e), Err(EvalError::NotBool("int".to_owned())));
    assert_eq!(matches("event.actor", &e), Err(EvalError::NotBool("map".to_owned())));
    // Not an object.
    assert_eq!(
        Filter::compile("true").unwrap().matches(&json!([1])),
        Err(EvalError::NotAnObject)
    );
    // The example on an event without metadata: an error, which the caller counts as false.
    let mut bare = event();
    bare.as_object_mut().unwrap().remove("metadata");
    assert!(matches!(matches(EXAMPLE, &bare), Err(EvalError::Runtime(m)) if m.contains("metadata")));
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let e = compile_error("event.severity >= 7 &&");
    assert_eq!((e.line, e.column), (1, 23), "{e}");
    assert!(e.message.contains("Syntax error"), "{e}");
    let e = compile_error("event.severity >= 7\n  && )");
    assert_eq!((e.line, e.column), (2, 6), "{e}");
    // Columns count characters, not bytes.
    let e = compile_error(r#""é" == )"#);
    assert_eq!((e.line, e.column), (1, 8), "{e}");
    assert_eq!(e.to_string(), format!("line 1, column 8: {}", e.message));
}

#[test]
fn non_bool_results_are_refused_when_known() {
    for (src, column) in [
        ("1", 1),
        (r#""yes""#, 1),
        ("[true]", 1),
        ("{'a': true}", 1),
        ("null", 1),
        ("event.severity + 1", 16),
        ("size(event.metadata)", 5),
        (r#"event.severity > 3 ? true : "no""#, 29),
        ("event.metadata.tags.map(t, t == 'a')", 24),
        ("event.severity >= 7 && 5", 24),
        ("!event.type.size()", 17),
        ("1 ? true : false", 1),
    ] {
        let e = compile_error(src);
        assert!(e.message.contains("must be a bool"), "{src}: {e}");
        assert_eq!((e.line, e.column), (1, column), "{src}: {e}");
    }
}

#[test]
fn unknown_identifiers_and_functions_are_refused() {
    let e = compile_error("evnt.severity >= 7");
    assert!(e.message.contains("'evnt'"), "{e}");
    assert_eq!((e.line, e.column), (1, 1));
    let e = compile_error(r#"event.type.startswith("auth.")"#);
    assert!(e.message.contains("unknown function 'startswith'"), "{e}");
    // Not in this build (no regex feature): refused up front rather than failing per event.
    let e = compile_error(r#"event.type.matches("^auth")"#);
    assert!(e.message.contains("'matches'"), "{e}");
    let e = compile_error(r#"event.x == 1 &&  frobnicate(event)"#);
    assert_eq!((e.line, e.column), (1, 28), "{e}");
    // Macro variables are in scope only inside their macro.
    assert!(Filter::compile("event.metadata.tags.exists(t, t == 'a')").is_ok());
    let e = compile_error("event.metadata.tags.exists(t, t == 'a') && t == 'b'");
    assert!(e.message.contains("'t'"), "{e}");
}

#[test]
fn filters_are_shareable_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Filter>();
    let filter = std::sync::Arc::new(Filter::compile(EXAMPLE).unwrap());
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let filter = filter.clone();
            std::thread::spawn(move || filter.matches(&event()))
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().unwrap(), Ok(true));
    }
    assert_eq!(filter.source(), EXAMPLE);
}

#[test]
fn macro_misuse_is_a_compile_error() {
    for (src, column, message) in [
        ("has(event)", 5, "invalid argument to has() macro"),
        (
            "event.metadata.tags.exists(1, true)",
            28,
            "argument must be a simple name",
        ),
        ("event.a == 1 && has(event.b[0])", 28, "invalid argument to has() macro"),
    ] {
        let e = compile_error(src);
        assert_eq!((e.line, e.column, e.message.as_str()), (1, column, message), "{src}");
    }
}
