//! The API reference (OpenAPI 3.1), generated from the handlers' `#[utoipa::path]` annotations
//! and the types they answer with, then finished by [`finish`] with what annotations cannot
//! say: the scope of each operation as an extension, the links between operations, and each
//! sink kind's `config` schema. `GET /openapi.json` serves it; `docs/openapi.json` is a
//! snapshot of it kept by `tests/openapi.rs`.
//!
//! Adding a route: annotate its handler and add it to `paths(...)` below (one line).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, OpenApi, ToResponse};

use super::{admin, consume, export, health, ingest, integrity, otlp, retention, sink_kinds, sinks, sources, tenants};

#[derive(OpenApi)]
#[openapi(
    paths(
        ingest::post_events,
        otlp::export_logs,
        consume::long_poll,
        consume::stream,
        tenants::create_tenant,
        tenants::list_tenants,
        tenants::get_tenant,
        tenants::create_key,
        tenants::list_keys,
        tenants::revoke_key,
        retention::get_retention,
        retention::put_retention,
        retention::delete_retention,
        sink_kinds::list_sink_kinds,
        sinks::create_sink,
        sinks::preview_sink,
        sinks::list_sinks,
        sinks::get_sink,
        sinks::patch_sink,
        sinks::delete_sink,
        sinks::test_sink,
        sinks::sink_health,
        sinks::pause_sink,
        sinks::resume_sink,
        sinks::replay_sink,
        sinks::get_replay,
        sinks::list_deliveries,
        sinks::sink_stats,
        sinks::list_dead_letters,
        sinks::get_dead_letter,
        sinks::delete_dead_letter,
        sinks::retry_dead_letter,
        sources::list_source_kinds,
        sources::create_source,
        sources::list_sources,
        sources::get_source,
        sources::patch_source,
        sources::delete_source,
        sources::pause_source,
        sources::resume_source,
        sources::source_health,
        crate::graphql::post_graphql,
        admin::rotate_token,
        export::export,
        integrity::public_key,
        integrity::list_checkpoints,
        health::healthz,
        health::readyz,
        health::metrics,
        health::openapi,
    ),
    components(
        schemas(
            crate::error::ErrorBody,
            crate::error::ErrorCode,
            super::event_doc::Event,
            // Named by query parameters, whose schemas the derive does not collect.
            export::ExportBound,
            export::ExportFormatName,
        ),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            RequestTimeout,
            PayloadTooLarge,
            UnsupportedMediaType,
            TooManyRequests,
            Internal,
            Unavailable,
        )
    ),
    info(title = "auditrelay API", version = "1"),
    servers((url = "http://127.0.0.1:8080", description = "The default listen address (`--listen`, `AUDITRELAY_LISTEN`).")),
    tags(
        (name = "events", description = "Append events to a tenant's log and read them back by offset."),
        (name = "tenants", description = "Tenants, their API keys and their retention policy."),
        (name = "sinks", description = "Delivery of events to external receivers. A sink is a consumer of the log with its own committed cursor per tenant it reads: a tenant's sink reads its own tenant; an operator sink reads every tenant (present and future) or a list. Routes: definitions with write-only secrets, health, pause and resume, test delivery, replay, dead letters and the delivery log. Scope `manage` (or the operator token). A sink whose stored definition or secrets cannot be read (e.g. the master key changed) answers `500 internal`."),
        (name = "sources", description = "Sources: listeners and pollers that append events through the same validation, dedup, limits and durability as `POST /v1/events` (a `syslog` listener over TCP or TLS). Operator token only. A change restarts the source without restarting the server; on PostgreSQL each source runs on one node at a time (leases)."),
        (name = "integrity", description = "The tamper-evident log: per-tenant hash chains, signed checkpoints and the compliance export (docs/integrity.md)."),
        (name = "admin", description = "Administration of the server itself (operator token)."),
        (name = "operations", description = "Unauthenticated liveness, readiness, metrics and this document."),
    ),
)]
pub struct ApiDoc;

/// The finished document.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|e| {
        // The document is built from static annotations: this cannot fail at run time for a
        // build whose tests passed (tests/openapi.rs renders it).
        tracing::error!(error = %e, "rendering the OpenAPI document");
        Value::Null
    });
    finish(&mut doc);
    doc
}

/// The finished document as served, rendered once per process.
pub fn document_json() -> &'static str {
    static RENDERED: OnceLock<String> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
        text.push('\n');
        text
    })
}

const DESCRIPTION: &str = include_str!("doc_description.md");

/// What the annotations cannot carry, added to the generated document.
fn finish(doc: &mut Value) {
    doc["info"]["summary"] = json!(
        "Self-hosted audit-event streaming: ingest audit events, read them back by cursor, deliver them to external receivers (sinks)."
    );
    doc["info"]["description"] = json!(DESCRIPTION);
    doc["components"]["securitySchemes"] = json!({
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "description": "The operator token, or a tenant key (`ark_…`) with the scopes the route needs. The roles an operation lists in its security requirement are the scope it needs: `ingest`, `read`, `manage` (a tenant key with that scope, or the operator token) or `operator` (the operator token only); none listed: any valid token."
        }
    });
    // utoipa's schema model has no `contentSchema` nor `const`: the SSE event is put back as
    // written, so that each event's `data` is checked against `StoredEvent`.
    doc["components"]["schemas"]["SseEvent"] = super::consume::SseEvent::json();
    required_scopes(doc);
    links(doc);
    sink_config(doc);
}

/// `x-required-scope` on every operation, read from its security requirement so that the two
/// cannot disagree: the role listed for `bearerAuth`, `any` when none is, `none` without one.
fn required_scopes(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            let scope = match op.get("security").and_then(Value::as_array) {
                None => "none".to_owned(),
                Some(reqs) => reqs
                    .iter()
                    .find_map(|r| r["bearerAuth"].as_array())
                    .and_then(|roles| roles.first())
                    .and_then(Value::as_str)
                    .unwrap_or("any")
                    .to_owned(),
            };
            op["x-required-scope"] = json!(scope);
        }
    }
}

/// OpenAPI links: where one operation's answer names the resource another acts on, so clients
/// (and the stateful phase of the schema fuzzer) can follow them.
fn links(doc: &mut Value) {
    let sink_id = json!({ "id": "$response.body#/id" });
    let sink_ops = [
        ("GetSink", "getSink"),
        ("UpdateSink", "updateSink"),
        ("DeleteSink", "deleteSink"),
        ("TestSink", "testSink"),
        ("GetSinkHealth", "getSinkHealth"),
        ("PauseSink", "pauseSink"),
        ("ResumeSink", "resumeSink"),
        ("StartReplay", "startReplay"),
        ("ListDeadLetters", "listDeadLetters"),
        ("ListDeliveries", "listDeliveries"),
    ];
    let sink_links: Map<String, Value> = sink_ops
        .iter()
        .map(|(name, op)| {
            (
                (*name).to_owned(),
                json!({ "operationId": op, "parameters": sink_id, "description": "The sink this answer describes." }),
            )
        })
        .collect();
    let tenant_from_body = json!({ "tenant": "$response.body#/id" });
    let table: Vec<(&str, &str, &str, Value)> = vec![
        ("/v1/sinks", "post", "201", Value::Object(sink_links.clone())),
        ("/v1/sinks/{id}", "get", "200", Value::Object(sink_links.clone())),
        ("/v1/sinks/{id}", "patch", "200", Value::Object(sink_links)),
        (
            "/v1/tenants/{tenant}/keys",
            "post",
            "201",
            json!({ "RevokeKey": {
                "operationId": "revokeKey",
                "parameters": { "tenant": "$request.path.tenant", "key": "$response.body#/id" },
                "description": "Revoke the key just created."
            }}),
        ),
        (
            "/v1/tenants",
            "post",
            "201",
            json!({
                "GetTenant": { "operationId": "getTenant", "parameters": tenant_from_body },
                "CreateKey": { "operationId": "createKey", "parameters": tenant_from_body },
                "ListKeys": { "operationId": "listKeys", "parameters": tenant_from_body },
                "GetRetention": { "operationId": "getRetention", "parameters": tenant_from_body },
            }),
        ),
        (
            "/v1/sinks/{id}/replay",
            "post",
            "202",
            json!({ "GetReplay": {
                "operationId": "getReplay",
                "parameters": { "id": "$request.path.id", "replay": "$response.body#/id" },
                "description": "Follow the replay's progress."
            }}),
        ),
    ];
    for (path, method, status, links) in table {
        if let Some(response) = doc
            .pointer_mut(&format!("/paths/{}/{method}/responses/{status}", escape(path)))
            .and_then(Value::as_object_mut)
        {
            response.insert("links".into(), links);
        }
    }
}

/// A JSON pointer token for `s` (RFC 6901).
fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// The `config` schema of each sink kind this build has, from the sinks crate: the same
/// JSON Schema `GET /v1/sink-kinds` serves and the server parses `config` with. Each kind's
/// `$defs` move into the document's components (as `<kind>_<name>`), since a `$ref` inside
/// an OpenAPI component resolves against the whole document.
pub fn sink_config_schemas() -> Vec<KindConfigSchema> {
    auditrelay_sinks::sink_kinds()
        .into_iter()
        .map(|info| {
            let mut schema = info.config_schema;
            let mut defs = Vec::new();
            if let Some(object) = schema.as_object_mut() {
                object.remove("$schema");
                if let Some(Value::Object(found)) = object.remove("$defs") {
                    defs = found.into_iter().collect();
                }
            }
            let prefix = info.kind;
            rewrite_defs_refs(&mut schema, prefix);
            let defs = defs
                .into_iter()
                .map(|(name, mut def)| {
                    rewrite_defs_refs(&mut def, prefix);
                    (format!("{prefix}_{name}"), def)
                })
                .collect();
            KindConfigSchema {
                kind: info.kind,
                schema,
                defs,
            }
        })
        .collect()
}

/// One kind's `config` schema, with its `$defs` as named components.
pub struct KindConfigSchema {
    pub kind: &'static str,
    pub schema: Value,
    pub defs: Vec<(String, Value)>,
}

/// `#/$defs/X` → `#/components/schemas/<prefix>_X`, everywhere in `schema`.
fn rewrite_defs_refs(schema: &mut Value, prefix: &str) {
    match schema {
        Value::Object(object) => {
            for (key, value) in object.iter_mut() {
                match value {
                    Value::String(target) if key == "$ref" => {
                        if let Some(name) = target.strip_prefix("#/$defs/") {
                            *target = format!("#/components/schemas/{prefix}_{name}");
                        }
                    }
                    other => rewrite_defs_refs(other, prefix),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| rewrite_defs_refs(item, prefix)),
        _ => {}
    }
}

/// `config` as a `oneOf` discriminated by `kind`: each of `SinkCreate` and `Sink` becomes one
/// variant per kind (`SinkCreate_webhook`, …) with `kind` fixed and that kind's `config`.
fn sink_config(doc: &mut Value) {
    let kinds = sink_config_schemas();
    let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else {
        return;
    };
    schemas.insert(
        "SinkKind".into(),
        json!({ "type": "string", "enum": kinds.iter().map(|k| k.kind).collect::<Vec<_>>() }),
    );
    for k in &kinds {
        for (name, def) in &k.defs {
            schemas.insert(name.clone(), def.clone());
        }
        schemas.insert(format!("SinkConfig_{}", k.kind), k.schema.clone());
    }
    for base in ["SinkCreate", "Sink"] {
        let Some(template) = schemas.get(base).cloned() else {
            continue;
        };
        let mut one_of = Vec::new();
        let mut mapping = Map::new();
        for KindConfigSchema { kind, .. } in &kinds {
            let mut variant = template.clone();
            variant["title"] = json!(format!("{base} ({kind})"));
            variant["properties"]["kind"] = json!({ "type": "string", "const": kind });
            variant["properties"]["config"] = json!({ "$ref": format!("#/components/schemas/SinkConfig_{kind}") });
            // A kind whose `config` cannot be empty needs it on create (and in a preview): the
            // kind's own parser says so, not a list kept here.
            let empty_config_refused = auditrelay_sinks::SinkConfig::parse(kind, &json!({})).is_err();
            if base == "SinkCreate" && empty_config_refused {
                if let Some(required) = variant["required"].as_array_mut() {
                    required.push(json!("config"));
                }
            }
            // An example belongs to the variant of its own kind only.
            if let Some(object) = variant.as_object_mut() {
                if object.get("example").is_some_and(|e| e["kind"] != *kind) {
                    object.remove("example");
                }
            }
            let name = format!("{base}_{kind}");
            let reference = format!("#/components/schemas/{name}");
            mapping.insert((*kind).to_owned(), json!(reference));
            one_of.push(json!({ "$ref": reference }));
            schemas.insert(name, variant);
        }
        let description = template.get("description").cloned().unwrap_or(json!(""));
        schemas.insert(
            base.into(),
            json!({
                "description": description,
                "oneOf": one_of,
                "discriminator": { "propertyName": "kind", "mapping": mapping },
            }),
        );
    }
}

/// A schema component written as JSON Schema, for what the derive cannot say (a string's
/// length bounds beside its pattern, a union of a number and a string). The document's
/// snapshot test shows each one as rendered.
macro_rules! json_schema {
    ($(#[$meta:meta])* $vis:vis struct $name:ident = $schema:tt) => {
        $(#[$meta])*
        // Serialize only so that the doc-only types holding it may derive it for `serde`'s
        // attributes (`rename`, `untagged`), which the schema derive reads.
        #[derive(serde::Serialize)]
        $vis struct $name;

        impl $name {
            /// The schema exactly as written (utoipa's model drops keywords it does not know).
            #[allow(dead_code)]
            pub fn json() -> serde_json::Value {
                serde_json::json!($schema)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                serde_json::from_value(serde_json::json!($schema)).unwrap_or_else(|e| {
                    panic!("the JSON Schema of {} does not parse: {e}", stringify!($name))
                })
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
    };
}
pub(crate) use json_schema;

/// An error answer as a reusable response (`#/components/responses/<name>`), with the `Error`
/// body and the headers that status carries.
macro_rules! error_response {
    ($name:ident, $description:expr $(, $header:expr)*) => {
        pub struct $name;

        impl<'s> ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<Response>) {
                #[allow(unused_mut)]
                let mut builder = ResponseBuilder::new().description($description).content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build(),
                );
                $(
                    let (header_name, header) = $header;
                    builder = builder.header(header_name, header);
                )*
                (stringify!($name), builder.build().into())
            }
        }
    };
}

/// A set of error answers a group of routes shares, as one `IntoResponses` for their
/// `responses(...)`: each status a reference to its reusable response.
macro_rules! error_responses {
    ($(#[$meta:meta])* $name:ident { $($status:literal => $response:ident,)* }) => {
        $(#[$meta])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                BTreeMap::from([$(response_ref::<$response>($status),)*])
            }
        }
    };
}

error_responses! {
    /// The error answers of an authenticated read whose query parameters (a page, a cursor, a
    /// window) can be wrong, of a resource that can be missing.
    QueryReadErrors {
        "400" => BadRequest,
        "401" => Unauthorized,
        "403" => Forbidden,
        "404" => NotFound,
        "429" => TooManyRequests,
        "503" => Unavailable,
    }
}

error_responses! {
    /// The error answers of an authenticated route that reads a request body naming a tenant or
    /// a resource that can be missing (`408`: the body came too slowly). The route adds its own
    /// `400` and whether it can answer `500` or `503`.
    BodyRequestErrors {
        "401" => Unauthorized,
        "403" => Forbidden,
        "404" => NotFound,
        "408" => RequestTimeout,
        "413" => PayloadTooLarge,
        "415" => UnsupportedMediaType,
        "429" => TooManyRequests,
    }
}

/// `status` answered with the reusable response `R` (`#/components/responses/<name>`).
fn response_ref<'s, R: ToResponse<'s>>(status: &str) -> (String, RefOr<Response>) {
    (status.to_owned(), Ref::from_response_name(R::response().0).into())
}

fn retry_after() -> (&'static str, utoipa::openapi::header::Header) {
    (
        "Retry-After",
        HeaderBuilder::new()
            .schema(
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::Type::Integer)
                    .minimum(Some(0)),
            )
            .description(Some("Seconds to wait before trying again."))
            .build(),
    )
}

fn connection_close() -> (&'static str, utoipa::openapi::header::Header) {
    (
        "Connection",
        HeaderBuilder::new()
            .schema(utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String))
            .description(Some(
                "`close`: the rest of the body may be unread, so the connection is not reused.",
            ))
            .build(),
    )
}

error_response!(
    BadRequest,
    "The request is invalid: `invalid_request` (a body field, `detail.field` names it), `invalid_parameter` (a query parameter or header, `detail.parameter`), `invalid_json` (`detail.line`, `detail.column`), or for events `invalid_event`, `invalid_utf8`, `empty_request` (`detail.index`, `detail.field`)."
);
error_response!(
    Unauthorized,
    "`unauthorized`: the `Authorization: Bearer` token is missing, malformed, unknown or revoked."
);
error_response!(
    Forbidden,
    "`forbidden`: the token is valid but lacks the scope this operation needs (or a tenant key called an operator-only operation)."
);
error_response!(
    NotFound,
    "`not_found`: no such resource. A resource of another tenant answers exactly the same, so ids cannot be probed."
);
error_response!(
    Conflict,
    "`conflict`: the resource already exists or the change conflicts with the current state; `sink_misconfigured`: the stored sink configuration does not work (`detail.field`)."
);
error_response!(
    RequestTimeout,
    "`request_timeout`: the body did not arrive in time (`detail.timeout_secs`); the connection is closed.",
    connection_close()
);
error_response!(
    PayloadTooLarge,
    "Over a limit: `request_too_large`, `event_too_large` or `too_many_events`, with `detail.limit`. The connection is closed.",
    connection_close()
);
error_response!(
    UnsupportedMediaType,
    "`unsupported_media_type`: the `Content-Type` is not one this operation reads (`detail.content_type`)."
);
error_response!(
    TooManyRequests,
    "`rate_limited`: this tenant key is over its request rate; `too_many_streams`: it holds its maximum of open streams. `Retry-After` says when to try again.",
    retry_after()
);
error_response!(
    Internal,
    "`internal`: the server could not read a stored resource (e.g. a sink sealed under another master key)."
);
error_response!(
    Unavailable,
    "`unavailable`: the store cannot take the request now (nothing from it was stored), or the server is shutting down; `audit_unavailable`: the action was done but its audit event could not be stored.",
    retry_after()
);
