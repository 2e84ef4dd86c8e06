//! The API reference (`docs/openapi.json`) stays true to the router: it parses, it is OpenAPI
//! 3.1, every registered route and method is documented, nothing undocumented-by-the-router is
//! documented, path parameters are declared, and every `$ref` resolves.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

const DOC: &str = include_str!("../../../../docs/openapi.json");
const ROUTER: &str = include_str!("../../src/api/mod.rs");

/// Served by the lead's `/openapi.json` route; tolerated as undocumented-by-the-router only
/// while `mod.rs` does not register it (the check turns strict once it does).
const SELF_ROUTE: &str = "/openapi.json";

const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];

fn doc() -> Value {
    serde_json::from_str(DOC).expect("docs/openapi.json is valid JSON")
}

/// `mod.rs` without `//` comments (none of its string literals contain `//`).
fn router_source() -> String {
    ROUTER
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text between the `(` at `open` and its matching `)`.
fn balanced_args(src: &str, open: usize) -> &str {
    let mut depth = 0usize;
    for (i, c) in src[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &src[open + 1..open + i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses in .route( at byte {open} of src/api/mod.rs");
}

/// HTTP methods named by axum method-router calls (`get(`, `.post(`, …) in a route's arguments.
fn methods_in(args: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for m in METHODS {
        let call = format!("{m}(");
        let mut from = 0;
        while let Some(pos) = args[from..].find(&call) {
            let at = from + pos;
            let before = args[..at].chars().next_back();
            // A bare or chained call, not part of a longer name or a path (`tenants::get_x(`).
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                found.insert(m.to_owned());
            }
            from = at + call.len();
        }
    }
    found
}

/// Every `.route("…", …)` in `src/api/mod.rs` with its methods.
fn registered_routes() -> BTreeMap<String, BTreeSet<String>> {
    let src = router_source();
    for unsupported in [".nest(", ".merge(", ".route_service(", ".nest_service("] {
        assert!(
            !src.contains(unsupported),
            "src/api/mod.rs uses `{unsupported}`; teach tests/openapi.rs to read it"
        );
    }
    let mut routes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut from = 0;
    while let Some(pos) = src[from..].find(".route(") {
        let open = from + pos + ".route".len();
        let args = balanced_args(&src, open);
        let start = args.find('"').expect("a .route( call starts with its path literal") + 1;
        let len = args[start..].find('"').expect("the path literal is closed");
        let path = args[start..start + len].to_owned();
        let methods = methods_in(&args[start + len + 1..]);
        assert!(!methods.is_empty(), "no method found for route {path}");
        let entry = routes.entry(path.clone()).or_default();
        for m in methods {
            assert!(entry.insert(m.clone()), "{m} {path} is registered twice");
        }
        from = open + args.len();
    }
    routes
}

fn documented_routes(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let paths = doc["paths"].as_object().expect("`paths` is an object");
    paths
        .iter()
        .map(|(path, item)| {
            let item = item.as_object().expect("a path item is an object");
            let methods = item.keys().filter(|k| METHODS.contains(&k.as_str())).cloned().collect();
            (path.clone(), methods)
        })
        .collect()
}

#[test]
fn is_openapi_3_1() {
    let doc = doc();
    let version = doc["openapi"].as_str().expect("`openapi` is a string");
    assert!(version.starts_with("3.1"), "openapi version is {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert!(doc["paths"].is_object() && doc["components"].is_object());
}

#[test]
fn the_router_parser_sees_the_known_routes() {
    let routes = registered_routes();
    let events = routes.get("/v1/events").expect("/v1/events is registered");
    assert!(events.contains("post") && events.contains("get"), "{events:?}");
    let keys = routes
        .get("/v1/tenants/{tenant}/keys")
        .expect("multi-line .route( is parsed");
    assert!(keys.contains("post") && keys.contains("get"), "{keys:?}");
    assert_eq!(
        methods_in("get(tenants::get_tenant)"),
        BTreeSet::from(["get".to_owned()])
    );
}

#[test]
fn every_route_is_documented_and_no_other() {
    let registered = registered_routes();
    let documented = documented_routes(&doc());
    let mut problems = Vec::new();
    for (path, methods) in &registered {
        match documented.get(path) {
            None => problems.push(format!("{path} is registered but not in docs/openapi.json")),
            Some(doc_methods) => {
                for m in methods.difference(doc_methods) {
                    problems.push(format!("{} {path} is registered but not documented", m.to_uppercase()));
                }
                for m in doc_methods.difference(methods) {
                    problems.push(format!("{} {path} is documented but not registered", m.to_uppercase()));
                }
            }
        }
    }
    for path in documented.keys() {
        let tolerated = path == SELF_ROUTE && !registered.contains_key(SELF_ROUTE);
        if !registered.contains_key(path) && !tolerated {
            problems.push(format!("{path} is documented but not registered in src/api/mod.rs"));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/openapi.json vs the router:\n{}",
        problems.join("\n")
    );
}

/// Follows a local `$ref` (`#/components/...`) to what it names.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    reference.strip_prefix('#').and_then(|pointer| doc.pointer(pointer))
}

fn collect_refs<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if k == "$ref" {
                    if let Some(r) = child.as_str() {
                        out.push((at.clone(), r));
                        continue;
                    }
                }
                collect_refs(child, format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                collect_refs(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_ref_resolves_to_a_component() {
    let doc = doc();
    let mut refs = Vec::new();
    collect_refs(&doc, String::new(), &mut refs);
    assert!(!refs.is_empty(), "the document uses no $ref at all");
    let bad: Vec<String> = refs
        .iter()
        .filter(|(_, r)| !r.starts_with("#/components/") || resolve(&doc, r).is_none())
        .map(|(at, r)| format!("{at}: {r}"))
        .collect();
    assert!(bad.is_empty(), "unresolved $ref:\n{}", bad.join("\n"));
}

#[test]
fn path_parameters_are_declared_and_operations_are_complete() {
    let doc = doc();
    let mut problems = Vec::new();
    let mut operation_ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("`paths` is an object") {
        let templated: BTreeSet<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, op) in item.as_object().expect("a path item is an object") {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let mut declared = BTreeSet::new();
            for p in op["parameters"].as_array().into_iter().flatten() {
                let p = match p.get("$ref").and_then(Value::as_str) {
                    Some(r) => resolve(&doc, r).unwrap_or(&Value::Null),
                    None => p,
                };
                if p["in"] == "path" {
                    declared.insert(p["name"].as_str().unwrap_or_default());
                }
            }
            if declared != templated {
                problems.push(format!(
                    "{method} {path}: path parameters {declared:?}, template {templated:?}"
                ));
            }
            match op["operationId"].as_str() {
                Some(id) if operation_ids.insert(id.to_owned()) => {}
                other => problems.push(format!("{method} {path}: missing or repeated operationId {other:?}")),
            }
            if op["responses"].as_object().is_none_or(|r| r.is_empty()) {
                problems.push(format!("{method} {path}: no responses"));
            }
            if !op["x-required-scope"].is_string() {
                problems.push(format!("{method} {path}: no x-required-scope"));
            }
            let needs_token = path.starts_with("/v1/");
            let has_bearer = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|req| req.get("bearerAuth").is_some()));
            if needs_token != has_bearer {
                problems.push(format!(
                    "{method} {path}: bearer security is {has_bearer}, expected {needs_token}"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
