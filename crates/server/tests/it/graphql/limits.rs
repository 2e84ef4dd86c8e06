//! Depth, cost and page-size limits, and the introspection tools need.

use super::*;

/// `{ __schema { types { fields { type { ofType … { name } } } } } }` with `levels` of `ofType`:
/// 5 + levels deep.
fn introspection_of_depth(depth: usize) -> String {
    let levels = depth - 5;
    format!(
        "{{ __schema {{ types {{ fields {{ type {{ {}name{} }} }} }} }} }}",
        "ofType { ".repeat(levels),
        " }".repeat(levels)
    )
}

/// graphql-js's `getIntrospectionQuery()` with `levels` of `ofType` in `TypeRef` (it has 7).
fn standard_introspection(levels: usize) -> String {
    let type_ref = format!(
        "kind name {}{}",
        "ofType { kind name ".repeat(levels),
        "}".repeat(levels)
    );
    format!(
        "query IntrospectionQuery {{ __schema {{ queryType {{ name }} mutationType {{ name }} subscriptionType {{ name }}
           types {{ ...FullType }} directives {{ name description locations args {{ ...InputValue }} }} }} }}
         fragment FullType on __Type {{ kind name description
           fields(includeDeprecated: true) {{ name description args {{ ...InputValue }} type {{ ...TypeRef }} isDeprecated deprecationReason }}
           inputFields {{ ...InputValue }} interfaces {{ ...TypeRef }}
           enumValues(includeDeprecated: true) {{ name description isDeprecated deprecationReason }}
           possibleTypes {{ ...TypeRef }} }}
         fragment InputValue on __InputValue {{ name description type {{ ...TypeRef }} defaultValue }}
         fragment TypeRef on __Type {{ {type_ref} }}"
    )
}

/// A type reference read to its end names a type (no wrapper left unresolved).
fn resolved(type_ref: &Value) -> bool {
    match type_ref["kind"].as_str() {
        Some("NON_NULL" | "LIST") => resolved(&type_ref["ofType"]),
        Some(_) => type_ref["name"].is_string(),
        None => false,
    }
}

#[tokio::test]
async fn introspection_for_tools_fits_the_depth_limit_with_four_of_type_levels() {
    let s = TestServer::spawn();
    s.create_tenant("acme").await;
    // Tools introspect with whatever key they hold: `read` is enough.
    let reader = s.create_key("acme", &["read"]).await;
    let standard = gql(&s, &reader, &standard_introspection(7), json!({})).await;
    assert_code(&standard, "invalid_request");
    let fitted = gql(&s, &reader, &standard_introspection(4), json!({})).await;
    assert!(fitted.get("errors").is_none(), "{fitted}");
    let types = fitted["data"]["__schema"]["types"].as_array().unwrap();
    let mut refs = 0;
    for t in types {
        for f in t["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(t["inputFields"].as_array().into_iter().flatten())
        {
            assert!(
                resolved(&f["type"]),
                "{}.{} is not fully described: {}",
                t["name"],
                f["name"],
                f["type"]
            );
            refs += 1;
            for a in f["args"].as_array().into_iter().flatten() {
                assert!(
                    resolved(&a["type"]),
                    "{}.{}({}) is not fully described",
                    t["name"],
                    f["name"],
                    a["name"]
                );
            }
        }
    }
    assert!(refs > 100, "only {refs} fields described");
    assert!(types.iter().any(|t| t["name"] == "Sink"));
}

#[tokio::test]
async fn deep_or_costly_queries_are_refused_and_first_is_bounded() {
    let s = TestServer::spawn();
    let ten = gql(&s, &s.admin, &introspection_of_depth(10), json!({})).await;
    assert!(ten.get("errors").is_none(), "depth 10 is accepted: {ten}");
    assert!(ten["data"]["__schema"]["types"].is_array());
    let eleven = gql(&s, &s.admin, &introspection_of_depth(11), json!({})).await;
    assert_code(&eleven, "invalid_request");
    assert!(
        only_error(&eleven)["message"].as_str().unwrap().contains("too deep"),
        "{eleven}"
    );
    assert!(eleven["data"].is_null(), "nothing ran: {eleven}");

    // Cost: every alias of a page read costs 10 more than its fields.
    let aliases = |n: usize| {
        let fields: Vec<String> = (0..n)
            .map(|i| format!("a{i}: sinks {{ edges {{ cursor }} }}"))
            .collect();
        format!("{{ {} }}", fields.join(" "))
    };
    let cheap = gql(&s, &s.admin, &aliases(5), json!({})).await;
    assert!(cheap.get("errors").is_none(), "{cheap}");
    let costly = gql(&s, &s.admin, &aliases(100), json!({})).await;
    assert_code(&costly, "invalid_request");
    assert!(
        only_error(&costly)["message"].as_str().unwrap().contains("complex"),
        "{costly}"
    );
    assert!(costly["data"].is_null());
    // A delivery costs 100 more: ten test deliveries in one request are refused, none is sent.
    let deliveries: Vec<String> = (0..10)
        .map(|i| format!("t{i}: testSink(id: \"snk_x\") {{ delivered }}"))
        .collect();
    let many = gql(
        &s,
        &s.admin,
        &format!("mutation {{ {} }}", deliveries.join(" ")),
        json!({}),
    )
    .await;
    assert_code(&many, "invalid_request");
    assert!(many["data"].is_null(), "{many}");
    let nine = gql(
        &s,
        &s.admin,
        &format!("mutation {{ {} }}", deliveries[..9].join(" ")),
        json!({}),
    )
    .await;
    // Nine are accepted: they run, and fail on the missing sink, not on the cost.
    let errors = nine["errors"].as_array().unwrap();
    assert!(!errors.is_empty(), "{nine}");
    assert!(errors.iter().all(|e| e["extensions"]["code"] == "not_found"), "{nine}");

    // `first` as REST's `limit`: 0 is refused naming it, past 1000 is served as 1000.
    let zero = gql(&s, &s.admin, "{ sinks(first: 0) { edges { cursor } } }", json!({})).await;
    assert_code(&zero, "invalid_parameter");
    assert_eq!(only_error(&zero)["extensions"]["parameter"], "first");
    let huge = gql(&s, &s.admin, "{ sinks(first: 100000) { edges { cursor } } }", json!({})).await;
    assert!(huge.get("errors").is_none(), "{huge}");
}
