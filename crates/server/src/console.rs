//! The web console (api.md "The web console"): static files from `crates/server/console/`,
//! embedded at build time so the binary needs nothing beside it, served under `/ui/` with a
//! strict Content-Security-Policy. `/` redirects there. The console talks to the public API
//! only; these routes carry no data and need no token (the page signs in by itself).
//!
//! These are not API routes, so they are not in the OpenAPI document: they live in their own
//! router, merged beside the API's.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// No inline script or style, no other origin: the console is same-origin files and the API.
/// `img-src data:` allows the inline SVG icons built by the scripts.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                       img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Path under `/ui/`, content type, bytes. `index.html` also answers `/ui/`.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../console/index.html"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../console/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/api.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/dom.js"),
    ),
    (
        "form.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/form.js"),
    ),
    (
        "overview.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/overview.js"),
    ),
    (
        "sinks.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/sinks.js"),
    ),
    (
        "sink_detail.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/sink_detail.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/live.js"),
    ),
    (
        "tenants.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/tenants.js"),
    ),
    (
        "integrity.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/integrity.js"),
    ),
    (
        "sources.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/sources.js"),
    ),
    ("favicon.svg", "image/svg+xml", include_bytes!("../console/favicon.svg")),
];

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { file("index.html") }))
        .route(
            "/ui/{*path}",
            get(|Path(path): Path<String>| async move { file(&path) }),
        )
}

fn file(path: &str) -> Response {
    let Some((_, content_type, body)) = FILES.iter().find(|(name, _, _)| *name == path) else {
        return crate::error::ApiError::not_found("no such console file").into_response();
    };
    let mut response = (StatusCode::OK, *body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The files change with the binary: revalidate each load rather than serve a stale console.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
