//! The API reference is generated from the handlers (`src/api/doc.rs`); here it stays true to
//! the router and to itself: `docs/openapi.json` is exactly the generated document (a
//! snapshot), it is OpenAPI 3.1, every registered route and method is documented and nothing
//! else is, path parameters are declared, every `$ref` resolves, links name real operations,
//! and a sink's `config` is a `oneOf` discriminated by `kind`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

const ROUTER: &str = include_str!("../../src/api/mod.rs");

const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];

/// How to refresh the snapshot after a deliberate change of the API.
const UPDATE_HINT: &str = "UPDATE_OPENAPI=1 cargo nextest run -p auditrelay-server -E 'test(/^openapi::/)'";

fn doc() -> Value {
    serde_json::from_str(auditrelay_server::api::doc::document_json()).expect("the generated document is valid JSON")
}

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

/// `docs/openapi.json` is what `GET /openapi.json` serves, byte for byte.
#[test]
fn the_committed_snapshot_is_the_generated_document() {
    let generated = auditrelay_server::api::doc::document_json();
    let path = snapshot_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        std::fs::write(&path, generated).expect("writing docs/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let first_difference = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map(|i| i + 1)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()) + 1);
        panic!(
            "docs/openapi.json is not the document generated from the code (first difference at line \
             {first_difference}).\nIf the API change is deliberate, regenerate it and commit the result:\n    {UPDATE_HINT}"
        );
    }
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
        if !registered.contains_key(path) {
            problems.push(format!("{path} is documented but not registered in src/api/mod.rs"));
        }
    }
    assert!(
        problems.is_empty(),
        "the generated document vs the router (annotate the handler and list it in src/api/doc.rs):\n{}",
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
            let needs_token = path.starts_with("/v1/") || path.starts_with("/otlp/");
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

/// Operations named by links exist, and the documented chains are there: a created key's `id`
/// feeds revoking it, a created sink's `id` feeds getting, changing and deleting it.
#[test]
fn links_name_existing_operations() {
    let doc = doc();
    let mut operation_ids = BTreeSet::new();
    let mut links = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("`paths` is an object") {
        for (method, op) in item.as_object().expect("a path item is an object") {
            let id = op["operationId"].as_str().unwrap_or_default().to_owned();
            operation_ids.insert(id.clone());
            for (status, response) in op["responses"].as_object().into_iter().flatten() {
                for (name, link) in response["links"].as_object().into_iter().flatten() {
                    links.push((format!("{method} {path} {status} {name}"), id.clone(), link.clone()));
                }
            }
        }
    }
    let mut targets = BTreeSet::new();
    for (at, from, link) in &links {
        let to = link["operationId"].as_str().unwrap_or_default();
        assert!(operation_ids.contains(to), "{at}: links to unknown operation `{to}`");
        assert!(link["parameters"].is_object(), "{at}: no parameters");
        targets.insert((from.clone(), to.to_owned()));
    }
    for (from, to) in [
        ("createKey", "revokeKey"),
        ("createSink", "getSink"),
        ("createSink", "updateSink"),
        ("createSink", "deleteSink"),
    ] {
        assert!(
            targets.contains(&(from.to_owned(), to.to_owned())),
            "no link from {from} to {to}"
        );
    }
    let revoke = &doc["paths"]["/v1/tenants/{tenant}/keys"]["post"]["responses"]["201"]["links"]["RevokeKey"];
    assert_eq!(revoke["parameters"]["key"], "$response.body#/id");
}

/// `config` depends on `kind`: the sink schemas are a `oneOf` with a `kind` discriminator and
/// one variant per kind of this build, each fixing `kind`.
#[test]
fn sink_config_is_one_of_by_kind() {
    let doc = doc();
    let kinds: Vec<&str> = doc["components"]["schemas"]["SinkKind"]["enum"]
        .as_array()
        .expect("SinkKind is an enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(kinds.contains(&"webhook") && kinds.contains(&"syslog"), "{kinds:?}");
    for base in ["SinkCreate", "Sink"] {
        let schema = &doc["components"]["schemas"][base];
        assert_eq!(schema["discriminator"]["propertyName"], "kind", "{base}: {schema}");
        let variants = schema["oneOf"].as_array().expect("a oneOf");
        assert_eq!(variants.len(), kinds.len(), "{base}: one variant per kind");
        for kind in &kinds {
            let reference = schema["discriminator"]["mapping"][*kind].as_str().expect("mapped");
            let variant = resolve(&doc, reference).expect("the variant exists");
            assert_eq!(variant["properties"]["kind"]["const"], *kind, "{base} {kind}");
            assert!(variant["properties"]["config"].is_object(), "{base} {kind}: config");
        }
    }
}

/// Every error status answers the `Error` body (`/readyz` answers its own `Readiness`; the OTLP
/// route may answer OTLP's `Status`, as OTLP/HTTP requires).
#[test]
fn error_statuses_answer_the_error_body() {
    let doc = doc();
    let mut problems = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("`paths` is an object") {
        for (method, op) in item.as_object().expect("a path item is an object") {
            for (status, response) in op["responses"].as_object().into_iter().flatten() {
                if !status.starts_with('4') && !status.starts_with('5') || path == "/readyz" {
                    continue;
                }
                let response = match response["$ref"].as_str() {
                    Some(r) => resolve(&doc, r).unwrap_or(&Value::Null),
                    None => response,
                };
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                // OTLP/HTTP answers a malformed export with its own `google.rpc.Status`.
                let otlp_status = path.starts_with("/otlp/") && schema == "#/components/schemas/OtlpStatus";
                if schema != "#/components/schemas/Error" && !otlp_status {
                    problems.push(format!("{method} {path} {status}: body {schema}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The rules the server enforces on paging are the documented ones.
#[test]
fn paging_limits_are_documented() {
    let doc = doc();
    let params = doc["paths"]["/v1/events"]["get"]["parameters"]
        .as_array()
        .expect("parameters");
    let find = |name: &str| {
        params
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` parameter"))
            .clone()
    };
    assert_eq!(find("limit")["schema"]["maximum"], 1000);
    assert_eq!(find("limit")["schema"]["minimum"], 1);
    assert_eq!(find("wait")["schema"]["maximum"], 60);
    let tenants = doc["paths"]["/v1/tenants"]["get"]["parameters"]
        .as_array()
        .expect("parameters");
    let limit = tenants.iter().find(|p| p["name"] == "limit").expect("limit");
    assert_eq!(limit["schema"]["maximum"], 1000);
}

/// One source of truth, two projections: each kind's `config` in the document is the schema the
/// sinks crate parses `config` with (and `GET /v1/sink-kinds` serves), once the components it
/// was split into are folded back into `$defs`.
#[test]
fn each_kinds_config_in_the_document_is_the_sinks_crates_schema() {
    let doc = doc();
    let components = doc["components"]["schemas"].as_object().expect("components.schemas");
    let kinds = auditrelay_sinks::sink_kinds();
    assert!(kinds.len() >= 8, "the sinks crate lists its kinds");
    for info in kinds {
        let kind = info.kind;
        let mut documented = components
            .get(&format!("SinkConfig_{kind}"))
            .unwrap_or_else(|| panic!("no SinkConfig_{kind} in the document"))
            .clone();
        let prefix = format!("#/components/schemas/{kind}_");
        let mut defs = serde_json::Map::new();
        fold_refs(&mut documented, &prefix, components, &mut defs);
        let mut expected = info.config_schema.clone();
        let expected_obj = expected.as_object_mut().expect("a schema object");
        expected_obj.remove("$schema");
        let expected_defs = expected_obj
            .remove("$defs")
            .unwrap_or(Value::Object(Default::default()));
        assert_eq!(
            documented, expected,
            "{kind}: config in the document vs the sinks crate"
        );
        assert_eq!(Value::Object(defs), expected_defs, "{kind}: $defs");
    }
}

/// Rewrites `$ref`s to `<prefix>X` as `#/$defs/X`, collecting each such component (folded too).
fn fold_refs(
    schema: &mut Value,
    prefix: &str,
    components: &serde_json::Map<String, Value>,
    defs: &mut serde_json::Map<String, Value>,
) {
    match schema {
        Value::Object(object) => {
            for (key, value) in object.iter_mut() {
                if let (true, Value::String(target)) = (key == "$ref", &mut *value) {
                    if let Some(name) = target.strip_prefix(prefix).map(str::to_owned) {
                        *target = format!("#/$defs/{name}");
                        if !defs.contains_key(&name) {
                            let component_name =
                                format!("{}{name}", prefix.trim_start_matches("#/components/schemas/"));
                            let mut def = components
                                .get(&component_name)
                                .unwrap_or_else(|| panic!("{component_name} is referenced but missing"))
                                .clone();
                            defs.insert(name.clone(), Value::Null);
                            fold_refs(&mut def, prefix, components, defs);
                            defs.insert(name, def);
                        }
                    }
                } else {
                    fold_refs(value, prefix, components, defs);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| fold_refs(item, prefix, components, defs)),
        _ => {}
    }
}
